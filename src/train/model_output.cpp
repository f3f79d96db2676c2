#include "train/model_output.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/strings.h"

namespace fairdiff::train {
namespace fs = std::filesystem;
namespace {

bool is_weight_file(const fs::path& path) {
  const std::string ext = to_lower(path.extension().string());
  return ext == ".safetensors" || ext == ".bin" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" ||
         ext == ".msgpack" || ext == ".onnx" || ext == ".h5";
}

void link_or_copy(const fs::path& link_or_file, const fs::path& to) {
  std::error_code ec;
  // A Hugging Face cache snapshot is made of relative symlinks into blobs/: link the file they point at (a hard
  // link to the symlink itself would dangle in the new folder).
  const fs::path from = fs::is_symlink(link_or_file) ? fs::canonical(link_or_file) : link_or_file;
  fs::create_hard_link(from, to, ec);
  if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

}  // namespace

void link_base_model(const fs::path& base_dir, const fs::path& staging, const std::set<std::string>& trained) {
  ensure_directory(staging, "output staging folder");
  for (auto it = fs::recursive_directory_iterator(base_dir); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path rel = it->path().lexically_relative(base_dir);  // lexically: fs::relative follows symlinks
    const std::string top = rel.begin()->string();
    if (top.empty() || top[0] == '.') {  // .git, .cache, ...
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory()) {
      fs::create_directories(staging / rel);
      continue;
    }
    if (!it->is_regular_file()) continue;
    const bool top_level = std::distance(rel.begin(), rel.end()) == 1;
    if (is_weight_file(rel) && (top_level || trained.count(top))) continue;
    if (trained.count(top) && rel.filename() != "config.json") continue;
    link_or_copy(it->path(), staging / rel);
  }
}

void write_component_weights(const fs::path& staging, const std::string& component, const TensorMap& weights) {
  const fs::path dir = staging / component;
  ensure_directory(dir, "output component folder");
  if (component == "unet") {
    write_safetensors(dir / "diffusion_pytorch_model.safetensors", weights, {{"format", "pt"}});
  } else if (component == "text_encoder") {
    // transformers' CLIPTextModel keys carry the "text_model." prefix.
    TensorMap prefixed;
    for (const auto& [name, tensor] : weights) prefixed["text_model." + name] = tensor;
    write_safetensors(dir / "model.safetensors", prefixed, {{"format", "pt"}});
  } else {
    throw std::invalid_argument("write_component_weights: unknown component " + component);
  }
}

void publish_output(const fs::path& staging, const fs::path& out) {
  if (fs::is_directory(out) && fs::is_empty(out)) fs::remove(out);
  if (fs::exists(out))
    throw FieldError("out", out.string() + " appeared while training; the finished model is in " + staging.string());
  fs::rename(staging, out);
}

}  // namespace fairdiff::train
