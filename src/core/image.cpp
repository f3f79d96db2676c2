#include "core/image.h"

#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff {
namespace {

bool is_png(const std::vector<uint8_t>& bytes) {
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  return bytes.size() >= 8 && std::memcmp(bytes.data(), signature, 8) == 0;
}

bool is_jpeg(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF;
}

bool over_pixel_limit(uint64_t width, uint64_t height, int64_t max_pixels) {
  return width * height > static_cast<uint64_t>(max_pixels);
}

InputError pixel_limit_error(uint64_t width, uint64_t height, int64_t max_pixels, const std::string& source) {
  return InputError("image " + source + " is " + std::to_string(width) + "x" + std::to_string(height) + " = " +
                    std::to_string(width * height) + " pixels, over the limit of " + std::to_string(max_pixels));
}

Image decode_png(const std::vector<uint8_t>& bytes, const std::string& source, int64_t max_pixels) {
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    std::string message = png.message;
    png_image_free(&png);
    throw InputError("corrupt PNG " + source + ": " + message);
  }
  if (over_pixel_limit(png.width, png.height, max_pixels)) {
    png_image_free(&png);
    throw pixel_limit_error(png.width, png.height, max_pixels, source);
  }
  png.format = PNG_FORMAT_RGB;
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.channels = 3;
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    std::string message = png.message;
    png_image_free(&png);
    throw InputError("corrupt PNG " + source + ": " + message);
  }
  return image;
}

struct JpegErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr info) {
  auto* manager = reinterpret_cast<JpegErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

void on_jpeg_message(j_common_ptr, int) {}  // silence libjpeg's warnings on stderr

Image decode_jpeg(const std::vector<uint8_t>& bytes, const std::string& source, int64_t max_pixels) {
  jpeg_decompress_struct info;
  JpegErrorManager errors;
  info.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = on_jpeg_error;
  errors.base.emit_message = on_jpeg_message;
  errors.message[0] = '\0';
  Image image;
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&info);
    throw InputError("corrupt JPEG " + source + ": " + errors.message);
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&info, TRUE);
  if (over_pixel_limit(info.image_width, info.image_height, max_pixels)) {
    const InputError error = pixel_limit_error(info.image_width, info.image_height, max_pixels, source);
    jpeg_destroy_decompress(&info);
    throw error;
  }
  info.out_color_space = JCS_RGB;
  jpeg_start_decompress(&info);
  image.width = static_cast<int>(info.output_width);
  image.height = static_cast<int>(info.output_height);
  image.channels = 3;
  image.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image.pixels.data() + static_cast<size_t>(info.output_scanline) * image.width * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return image;
}

std::vector<uint8_t> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open image " + path.string() + " (expected an existing, readable file)");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& image) {
  if (image.channels != 1 && image.channels != 3 && image.channels != 4) {
    throw std::invalid_argument("encode_png: channels must be 1, 3 or 4");
  }
  png_image png;
  std::memset(&png, 0, sizeof(png));
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = image.channels == 1 ? PNG_FORMAT_GRAY : image.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.pixels.data(), 0, nullptr)) {
    throw std::runtime_error(std::string("PNG encoding failed: ") + png.message);
  }
  std::vector<uint8_t> bytes(size);
  if (!png_image_write_to_memory(&png, bytes.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    throw std::runtime_error(std::string("PNG encoding failed: ") + png.message);
  }
  bytes.resize(size);
  return bytes;
}

void write_png(const std::filesystem::path& path, const Image& image) {
  std::vector<uint8_t> bytes = encode_png(image);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  if (image.channels != 3) throw std::invalid_argument("encode_jpeg: expected an RGB image");
  if (quality < 1 || quality > 100) throw std::invalid_argument("encode_jpeg: quality must be in [1, 100]");
  jpeg_compress_struct info;
  JpegErrorManager errors;
  info.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = on_jpeg_error;
  errors.base.emit_message = on_jpeg_message;
  errors.message[0] = '\0';
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (setjmp(errors.jump)) {
    jpeg_destroy_compress(&info);
    std::free(buffer);
    throw std::runtime_error(std::string("JPEG encoding failed: ") + errors.message);
  }
  jpeg_create_compress(&info);
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(image.width);
  info.image_height = static_cast<JDIMENSION>(image.height);
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, quality, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row =
        const_cast<uint8_t*>(image.pixels.data()) + static_cast<size_t>(info.next_scanline) * image.width * 3;
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

void write_jpeg(const std::filesystem::path& path, const Image& image, int quality) {
  std::vector<uint8_t> bytes = encode_jpeg(image, quality);
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

Image decode_image(const std::vector<uint8_t>& bytes, const std::string& source, int64_t max_pixels) {
  if (is_png(bytes)) return decode_png(bytes, source, max_pixels);
  if (is_jpeg(bytes)) return decode_jpeg(bytes, source, max_pixels);
  throw InputError("not an image: " + source + " (expected a PNG or JPEG file)");
}

Image read_image(const std::filesystem::path& path, int64_t max_pixels) {
  return decode_image(read_bytes(path), path.string(), max_pixels);
}

bool looks_like_image_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::vector<uint8_t> head(8, 0);
  in.read(reinterpret_cast<char*>(head.data()), 8);
  head.resize(static_cast<size_t>(in.gcount()));
  return is_png(head) || is_jpeg(head);
}

Image to_rgb(const Image& image) {
  if (image.channels == 3) return image;
  Image out;
  out.width = image.width;
  out.height = image.height;
  out.channels = 3;
  out.pixels.resize(static_cast<size_t>(image.width) * image.height * 3);
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      for (int c = 0; c < 3; ++c) {
        out.at(y, x, c) = image.channels == 1 ? image.at(y, x, 0) : image.at(y, x, c);
      }
    }
  }
  return out;
}

}  // namespace fairdiff
