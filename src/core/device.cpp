#include "core/device.h"

#include <cstdlib>
#include <thread>

#include "core/error.h"

namespace fairdiff {

std::string resolve_device_name(const std::string& name) {
  if (name != "auto") return name;
  return torch::cuda::is_available() ? "cuda" : "cpu";
}

std::string resolve_inference_dtype(const std::string& dtype, const std::string& resolved_device) {
  if (dtype != "auto") return dtype;
  return resolved_device == "cpu" ? "fp32" : "fp16";
}

std::string resolve_mixed_precision(const std::string& mixed_precision, const std::string& resolved_device) {
  if (mixed_precision != "auto") return mixed_precision;
  return resolved_device == "cpu" ? "no" : "bf16";
}

torch::Device parse_device(const std::string& name) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name == "cuda" || name.rfind("cuda:", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw UnsupportedError("device " + name + ": CUDA is not available in this build or on this machine (use cpu)");
    }
    try {
      torch::Device device(name);
      if (device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count())) {
        throw UnsupportedError("device " + name + ": only " + std::to_string(torch::cuda::device_count()) +
                               " CUDA device(s) present");
      }
      return device;
    } catch (const c10::Error&) {
      throw FieldError("device", name + ": expected cpu, cuda or cuda:N");
    }
  }
  throw FieldError("device", name + ": expected cpu, cuda or cuda:N");
}

torch::Dtype parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  throw FieldError("dtype", name + ": expected fp32, fp16 or bf16");
}

std::string dtype_flag_name(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32:
      return "fp32";
    case torch::kFloat16:
      return "fp16";
    case torch::kBFloat16:
      return "bf16";
    default:
      return c10::toString(dtype);
  }
}

void require_dtype_supported(torch::Device device, torch::Dtype dtype) {
  try {
    torch::NoGradGuard no_grad;
    auto options = torch::TensorOptions().device(device).dtype(dtype);
    torch::Tensor x = torch::ones({1, 32, 4, 4}, options);
    torch::Tensor w = torch::ones({32, 32, 3, 3}, options);
    torch::Tensor y = torch::conv2d(x, w, {}, 1, 1);
    y = torch::group_norm(y, 32, torch::ones({32}, options), torch::zeros({32}, options), 1e-5);
    y = torch::matmul(y.flatten(2), y.flatten(2).transpose(1, 2));
    y = torch::softmax(y, -1);
    (void)y.sum().item<float>();
  } catch (const c10::Error& e) {
    throw UnsupportedError(
        "dtype " + dtype_flag_name(dtype) + " cannot run on device " + device.str() +
        " with this LibTorch build (try fp32 on the CPU): " + std::string(e.what_without_backtrace()).substr(0, 200));
  }
}

void configure_cpu_threads() {
  if (std::getenv("OMP_NUM_THREADS")) return;
  const unsigned threads = std::thread::hardware_concurrency();
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
}

}  // namespace fairdiff
