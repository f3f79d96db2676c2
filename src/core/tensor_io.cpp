#include "core/tensor_io.h"

namespace fairdiff {

Image image_from_unit_tensor(const torch::Tensor& hwc) {
  TORCH_CHECK(hwc.dim() == 3, "image_from_unit_tensor expects [H, W, C]");
  torch::Tensor bytes =
      (hwc.to(torch::kCPU, torch::kFloat32).clamp(0, 1) * 255.0).round().to(torch::kUInt8).contiguous();
  Image image;
  image.height = static_cast<int>(bytes.size(0));
  image.width = static_cast<int>(bytes.size(1));
  image.channels = static_cast<int>(bytes.size(2));
  const uint8_t* data = bytes.data_ptr<uint8_t>();
  image.pixels.assign(data, data + bytes.numel());
  return image;
}

}  // namespace fairdiff
