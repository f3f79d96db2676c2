// Conversions between Image (uint8 HWC) and tensors.
#pragma once

#include <torch/torch.h>

#include "core/image.h"

namespace fairdiff {

// [H, W, C] float in [0, 1] (any device/dtype) -> 8-bit image, rounding as PIL's (x * 255).round().
Image image_from_unit_tensor(const torch::Tensor& hwc);

}  // namespace fairdiff
