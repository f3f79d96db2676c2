#include "faces/face_crop.h"

#include <algorithm>
#include <cmath>

namespace fairdiff {
namespace {

namespace F = torch::nn::functional;

// [H, W, 3] -> [1, height, width, 3]
torch::Tensor resize_hwc(const torch::Tensor& hwc, int height, int width) {
  if (hwc.size(0) == height && hwc.size(1) == width) return hwc.unsqueeze(0).contiguous();
  const bool shrinking = hwc.size(0) > height || hwc.size(1) > width;
  torch::Tensor nchw = hwc.permute({2, 0, 1}).unsqueeze(0).contiguous();  // [1, 3, H, W]
  torch::Tensor out = F::interpolate(nchw, F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{height, width})
                                               .mode(torch::kBilinear)
                                               .align_corners(false)
                                               .antialias(shrinking));
  return out.permute({0, 2, 3, 1}).contiguous();  // [1, height, width, 3]
}

}  // namespace

torch::Tensor letterbox(const torch::Tensor& pixels, int size, float fill, LetterboxTransform* transform) {
  const int64_t h = pixels.size(0), w = pixels.size(1), side = std::max(h, w);
  const int64_t top = (side - h) / 2, left = (side - w) / 2;
  torch::Tensor square = pixels;
  if (h != w) {
    square = torch::constant_pad_nd(pixels, {0, 0, left, side - w - left, top, side - h - top}, fill);
  }
  if (transform) {
    transform->scale = static_cast<float>(side) / static_cast<float>(size);
    transform->offset_x = static_cast<float>(left);
    transform->offset_y = static_cast<float>(top);
  }
  return resize_hwc(square, size, size);
}

torch::Tensor crop_resize(const torch::Tensor& pixels, int x0, int y0, int x1, int y1, int width, int height) {
  const int64_t h = pixels.size(0), w = pixels.size(1);
  x1 = std::max(x1, x0 + 1);
  y1 = std::max(y1, y0 + 1);
  const int64_t cx0 = std::clamp<int64_t>(x0, 0, w), cx1 = std::clamp<int64_t>(x1, 0, w);
  const int64_t cy0 = std::clamp<int64_t>(y0, 0, h), cy1 = std::clamp<int64_t>(y1, 0, h);
  torch::Tensor inside = pixels.slice(0, cy0, cy1).slice(1, cx0, cx1);
  torch::Tensor crop = torch::constant_pad_nd(inside, {0, 0, cx0 - x0, x1 - cx1, cy0 - y0, y1 - cy1}, 0.0);
  return resize_hwc(crop, height, width);
}

torch::Tensor crop_square(const torch::Tensor& pixels, const FaceBox& box, float scale, int size, float shift_y) {
  const float side = scale * std::max(box.width(), box.height());
  const float cx = 0.5f * (box.x0 + box.x1), cy = 0.5f * (box.y0 + box.y1) + shift_y * side;
  const int x0 = static_cast<int>(std::lround(cx - side / 2)), y0 = static_cast<int>(std::lround(cy - side / 2));
  const int s = std::max(1, static_cast<int>(std::lround(side)));
  return crop_resize(pixels, x0, y0, x0 + s, y0 + s, size, size);
}

FaceImage pad_image(const FaceImage& image, float fraction, uint8_t fill, int* offset) {
  const int border = static_cast<int>(std::lround(fraction * std::max(image.width(), image.height())));
  Image padded;
  padded.width = image.width() + 2 * border;
  padded.height = image.height() + 2 * border;
  padded.channels = 3;
  padded.pixels.assign(static_cast<size_t>(padded.width) * padded.height * 3, fill);
  for (int y = 0; y < image.height(); ++y) {
    std::copy_n(&image.rgb.pixels[static_cast<size_t>(y) * image.width() * 3], static_cast<size_t>(image.width()) * 3,
                &padded.pixels[(static_cast<size_t>(y + border) * padded.width + border) * 3]);
  }
  *offset = border;
  return FaceImage::from(padded);
}

}  // namespace fairdiff
