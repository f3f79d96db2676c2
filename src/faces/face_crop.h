// Cutting network inputs out of an image: letterboxing for detectors, square face crops for classifiers.
//
// Shape legend: pixels [H, W, 3] float 0..255; network inputs [1, S, S, 3] (NHWC, TensorFlow's layout).
#pragma once

#include <torch/torch.h>

#include "faces/face_types.h"

namespace fairdiff {

// Maps network-input pixel coordinates back to the image: image = input * scale - offset.
struct LetterboxTransform {
  float scale = 1, offset_x = 0, offset_y = 0;
  float to_image_x(float x) const { return x * scale - offset_x; }
  float to_image_y(float y) const { return y * scale - offset_y; }
};

// Pads the image to a centred square with `fill` and resizes it to size x size (bilinear, antialiased when
// shrinking). Returns [1, size, size, 3] float 0..255.
torch::Tensor letterbox(const torch::Tensor& pixels, int size, float fill, LetterboxTransform* transform);

// A square of side `scale` * max(box width, height) centred on the box (moved down by `shift_y` times the
// side), padded with zeros where it leaves the image, resized to size x size. Returns [1, size, size, 3].
torch::Tensor crop_square(const torch::Tensor& pixels, const FaceBox& box, float scale, int size, float shift_y = 0);

// A rectangle [x0, x1) x [y0, y1) in pixels, zero-padded outside the image, resized to width x height.
torch::Tensor crop_resize(const torch::Tensor& pixels, int x0, int y0, int x1, int y1, int width, int height);

// The image surrounded by a border of `fraction` times its larger side on every side, filled with `fill`
// (gray by default): tight face crops give detectors the context they were trained with.
FaceImage pad_image(const FaceImage& image, float fraction, uint8_t fill, int* offset);

}  // namespace fairdiff
