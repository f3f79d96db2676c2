// libFuzzer harness: PNG and JPEG decoding through fairdiff's image loader (core/image.h), with the pixel limit
// that is checked from the header. A decoded image must be RGB of the size it claims, within the limit, and the
// same bytes must be refused (InputError) under a limit one pixel smaller.
#include <vector>

#include "core/image.h"
#include "fuzz_support.h"

namespace {

// Small enough that a forged header cannot make one input decode for seconds (libjpeg and libpng fill a huge
// image from a few bytes), large enough for the seed images.
constexpr int64_t kMaxPixels = int64_t{1} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fairdiff::fuzz::report_finding;
  const std::vector<uint8_t> bytes(data, data + size);
  fairdiff::Image image;
  const bool ok = fairdiff::fuzz::expect_clear_errors(
      "decode_image", [&] { image = fairdiff::decode_image(bytes, "input.img", kMaxPixels); });
  if (!ok) return 0;
  const int64_t pixels = static_cast<int64_t>(image.width) * image.height;
  if (image.width <= 0 || image.height <= 0 || image.channels != 3) {
    report_finding("decode_image", "decoded an image of " + std::to_string(image.width) + "x" +
                                       std::to_string(image.height) + "x" + std::to_string(image.channels));
  }
  if (pixels > kMaxPixels) report_finding("decode_image", "decoded more pixels than the limit");
  if (image.pixels.size() != static_cast<size_t>(pixels) * 3) {
    report_finding("decode_image", "pixel buffer of " + std::to_string(image.pixels.size()) + " bytes for " +
                                       std::to_string(pixels) + " RGB pixels");
  }
  bool refused = false;
  try {
    fairdiff::decode_image(bytes, "input.img", pixels - 1);
  } catch (const fairdiff::InputError&) {
    refused = true;
  } catch (const std::exception& e) {
    report_finding("decode_image", std::string("under a smaller limit: ") + e.what());
  }
  if (!refused) report_finding("decode_image", "an image over max_pixels was decoded");
  return 0;
}
