#include "core/name_conversion.h"

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff {

TensorMap convert_clip_text_keys(TensorMap weights) {
  TensorMap out;
  for (auto& [name, tensor] : weights) {
    std::string key = starts_with(name, "text_model.") ? name.substr(std::string("text_model.").size()) : name;
    if (key == "embeddings.position_ids") continue;  // a constant arange buffer, not a weight
    out[key] = tensor;
  }
  return out;
}

TensorMap convert_vae_keys(TensorMap weights) {
  static const std::pair<const char*, const char*> renames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  TensorMap out;
  for (auto& [name, tensor] : weights) {
    std::string key = name;
    bool renamed = false;
    if (key.find(".attentions.") != std::string::npos) {
      for (const auto& [from, to] : renames) {
        size_t at = key.find(from);
        if (at != std::string::npos) {
          key.replace(at, std::string(from).size(), to);
          renamed = true;
          break;
        }
      }
    }
    torch::Tensor t = tensor;
    if (renamed && t.dim() == 4 && t.size(2) == 1 && t.size(3) == 1) t = t.flatten(1);  // 1x1 conv -> linear
    out[key] = t;
  }
  return out;
}

std::filesystem::path find_component_weights(const std::filesystem::path& dir, const std::string& base) {
  for (const std::string& name : {base + ".safetensors", base + ".fp16.safetensors"}) {
    if (std::filesystem::is_regular_file(dir / name)) return dir / name;
  }
  std::string hint;
  if (std::filesystem::exists(dir / (base + ".bin"))) {
    hint = " (found " + base + ".bin: PyTorch pickle weights are not read; download the .safetensors files)";
  }
  throw InputError("no weights in " + dir.string() + ": expected " + base + ".safetensors" + hint);
}

}  // namespace fairdiff
