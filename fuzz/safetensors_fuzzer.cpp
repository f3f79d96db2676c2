// libFuzzer harness: the safetensors reader (core/safetensors.h) on arbitrary file bytes. Whatever it accepts
// must agree with its header-only reader and survive a write/read round trip byte for byte.
#include <cstring>

#include "core/safetensors.h"
#include "fuzz_support.h"

namespace {

using fairdiff::fuzz::report_finding;

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  const size_t bytes = static_cast<size_t>(ca.numel()) * ca.element_size();
  return bytes == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), bytes) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = fairdiff::fuzz::write_scratch_file("input.safetensors", data, size);
  std::map<std::string, fairdiff::SafetensorsInfo> header;
  const bool header_ok = fairdiff::fuzz::expect_clear_errors("read_safetensors_header",
                                                             [&] { header = fairdiff::read_safetensors_header(path); });
  fairdiff::SafetensorsFile file;
  const bool file_ok =
      fairdiff::fuzz::expect_clear_errors("read_safetensors", [&] { file = fairdiff::read_safetensors(path); });
  if (header_ok != file_ok) report_finding("read_safetensors", "the header reader and the full reader disagree");
  if (!file_ok) return 0;

  if (header.size() != file.tensors.size()) report_finding("read_safetensors", "header and tensors differ in count");
  for (const auto& [name, tensor] : file.tensors) {
    auto it = header.find(name);
    if (it == header.end() || it->second.shape != tensor.sizes().vec() ||
        it->second.dtype != fairdiff::safetensors_dtype_name(tensor.scalar_type())) {
      report_finding("read_safetensors", "tensor '" + name + "' differs between the header and the data");
    }
  }
  const auto copy = fairdiff::fuzz::scratch_dir() / "copy.safetensors";
  fairdiff::fuzz::expect_no_error("write_safetensors round trip", [&] {
    fairdiff::write_safetensors(copy, file.tensors, file.metadata);
    const fairdiff::SafetensorsFile again = fairdiff::read_safetensors(copy);
    if (again.metadata != file.metadata || again.tensors.size() != file.tensors.size()) {
      report_finding("write_safetensors round trip", "metadata or tensor count changed");
    }
    for (const auto& [name, tensor] : file.tensors) {
      auto it = again.tensors.find(name);
      if (it == again.tensors.end() || !same_bytes(tensor, it->second)) {
        report_finding("write_safetensors round trip", "tensor '" + name + "' changed");
      }
    }
  });
  return 0;
}
