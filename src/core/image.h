// 8-bit images in memory (rows top to bottom, interleaved HWC RGB or gray) and PNG/JPEG files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;             // 1 (gray), 3 (RGB) or 4 (RGBA)
  std::vector<uint8_t> pixels;  // [height, width, channels]

  uint8_t& at(int y, int x, int c) { return pixels[(static_cast<size_t>(y) * width + x) * channels + c]; }
  uint8_t at(int y, int x, int c) const { return pixels[(static_cast<size_t>(y) * width + x) * channels + c]; }
};

// Encodes as PNG (deterministic bytes for the same pixels).
std::vector<uint8_t> encode_png(const Image& image);
// Writes a PNG atomically (temporary file + rename), so an interrupted write never leaves a partial image.
void write_png(const std::filesystem::path& path, const Image& image);

// Encodes an RGB image as baseline JPEG (libjpeg, 4:2:0) at `quality` in [1, 100].
std::vector<uint8_t> encode_jpeg(const Image& image, int quality);
// Writes a JPEG atomically, as write_png.
void write_jpeg(const std::filesystem::path& path, const Image& image, int quality);

// The most pixels a decoded image may have (100 megapixels: 300 MB as RGB); checked from the header, before any
// pixel memory is allocated.
constexpr int64_t kMaxImagePixels = 100000000;

// Decodes PNG or JPEG (by signature) into RGB; InputError naming `source` when the bytes are not a
// readable image or its header declares more than `max_pixels` pixels.
Image decode_image(const std::vector<uint8_t>& bytes, const std::string& source, int64_t max_pixels = kMaxImagePixels);
Image read_image(const std::filesystem::path& path, int64_t max_pixels = kMaxImagePixels);
// True when the file starts with a PNG or JPEG signature (cheap check before decoding).
bool looks_like_image_file(const std::filesystem::path& path);

// Converts gray/RGBA to RGB.
Image to_rgb(const Image& image);

}  // namespace fairdiff
