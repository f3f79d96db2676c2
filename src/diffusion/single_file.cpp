#include "diffusion/single_file.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>

#include "core/assets.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/state_dict.h"
#include "core/strings.h"
#include "diffusion/single_file_keys.h"

namespace fairdiff {
namespace fs = std::filesystem;
namespace {

// --- The file itself ------------------------------------------------------------------------------------------

// PyTorch's torch.save writes a zip archive (since 1.6) or a bare pickle (protocol 2..5); a safetensors file has
// a JSON header starting at byte 8.
bool looks_like_pickle(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char head[9] = {};
  in.read(reinterpret_cast<char*>(head), sizeof(head));
  if (in.gcount() < 2) return false;
  if (in.gcount() == 9 && head[8] == '{') return false;
  const bool zip = in.gcount() >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
  const bool pickle = head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;
  return zip || pickle;
}

void refuse_unreadable(const fs::path& file) {
  if (!fs::exists(file)) throw InputError("model file " + file.string() + " does not exist");
  if (!fs::is_regular_file(file)) throw InputError("model " + file.string() + " is neither a folder nor a file");
  const std::string extension = to_lower(file.extension().string());
  const bool pickle_name =
      extension == ".ckpt" || extension == ".pt" || extension == ".pth" || extension == ".bin" || extension == ".pkl";
  if (!pickle_name && !looks_like_pickle(file)) return;
  fs::path converted = file;
  converted.replace_extension(".safetensors");
  throw InputError(
      file.string() + " is a PyTorch pickle checkpoint" +
      (pickle_name ? " (" + extension + ")" : " (so its first bytes say, whatever its name)") +
      ": fairdiff never unpickles a file, because loading a pickle can run any code it holds. Convert it to "
      ".safetensors once, on a machine where you trust the file, e.g.\n"
      "  python3 -c \"import torch, safetensors.torch as st; sd = torch.load('" +
      file.string() +
      "', map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); "
      "st.save_file({k: v.contiguous().clone() for k, v in sd.items() if torch.is_tensor(v)}, '" +
      converted.string() +
      "')\"\n"
      "(weights_only=True refuses pickled code), then pass the .safetensors file; or convert it to a diffusers "
      "folder with diffusers' scripts/convert_original_stable_diffusion_to_diffusers.py --checkpoint_path FILE "
      "--dump_path DIR and pass DIR");
}

TensorShapes read_shapes(const fs::path& file) {
  refuse_unreadable(file);
  TensorShapes shapes;
  for (const auto& [name, info] : read_safetensors_header(file)) shapes[name] = info.shape;
  return shapes;
}

// --- Weights --------------------------------------------------------------------------------------------------

// Every missing, unexpected and mis-shaped tensor of one component, by its name in the file.
void check_component(const torch::nn::Module& module, const ConvertedComponent& converted, const fs::path& file,
                     const std::string& component, const std::string& arch) {
  const TensorMap targets = module_state_dict(module);
  std::vector<std::string> missing, unexpected = converted.unplaced, misshaped;
  for (const auto& [name, tensor] : converted.weights) {
    auto it = targets.find(name);
    if (it == targets.end()) {
      unexpected.push_back(converted.source.at(name));
    } else if (it->second.sizes() != tensor.sizes()) {
      misshaped.push_back(converted.source.at(name) + " (file " + shape_string(tensor.sizes().vec()) + ", model " +
                          shape_string(it->second.sizes().vec()) + ")");
    }
  }
  for (const auto& [name, tensor] : targets) {
    if (!converted.weights.count(name)) missing.push_back(name);
  }
  if (missing.empty() && unexpected.empty() && misshaped.empty()) return;
  std::ostringstream message;
  message << file.string() << ": its " << component << " does not match a " << component << " of " << arch << ":";
  auto list = [&](const std::string& what, std::vector<std::string> names) {
    if (names.empty()) return;
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    message << "\n  " << names.size() << " " << what << ":";
    for (size_t i = 0; i < std::min<size_t>(names.size(), 20); ++i) message << "\n    " << names[i];
    if (names.size() > 20) message << "\n    ... and " << names.size() - 20 << " more";
  };
  list("missing tensor(s) (diffusers names)", missing);
  list("unexpected tensor(s)", unexpected);
  list("tensor(s) with the wrong shape", misshaped);
  throw InputError(message.str());
}

ConvertedComponent convert_text_encoder(const TensorMap& checkpoint, const SingleFileModel& model) {
  return model.family == "sd1" ? convert_ldm_clip_text(checkpoint)
                               : convert_ldm_open_clip_text(checkpoint, model.arch.text_encoder);
}

// The CLIP vocabulary shipped with fairdiff (a single-file checkpoint has no tokenizer).
fs::path shipped_vocabulary_dir() {
  const fs::path dir = find_asset_dir("models/builtin/tokenizer", "vocab.json");
  if (!fs::is_regular_file(dir / "vocab.json") || !fs::is_regular_file(dir / "merges.txt")) {
    throw InputError("a single-file checkpoint carries no tokenizer, and the CLIP vocabulary fairdiff ships (" +
                     (dir / "vocab.json").string() +
                     " and merges.txt) was not found; run fairdiff from its "
                     "source tree, or restore models/builtin/tokenizer from git");
  }
  return dir;
}

void write_tokenizer_folder(const fs::path& dir, const Json& config) {
  const fs::path vocabulary = shipped_vocabulary_dir();
  ensure_directory(dir, "tokenizer folder");
  fs::copy_file(vocabulary / "vocab.json", dir / "vocab.json", fs::copy_options::overwrite_existing);
  fs::copy_file(vocabulary / "merges.txt", dir / "merges.txt", fs::copy_options::overwrite_existing);
  write_json_file(dir / "tokenizer_config.json", config);
}

// ClipTokenizer reads a folder: the shipped vocabulary with this model's config, in a temporary one.
ClipTokenizer load_tokenizer(const Json& config) {
  static std::atomic<int> counter{0};
  const fs::path dir = fs::temp_directory_path() /
                       ("fairdiff-tokenizer-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  write_tokenizer_folder(dir, config);
  return ClipTokenizer::from_directory(dir);
}

// Moves the weights of one converted component out of `checkpoint`, so memory is freed as modules are built.
void release(TensorMap& checkpoint, const ConvertedComponent& converted) {
  for (const auto& [name, key] : converted.source) checkpoint.erase(key);
}

TensorMap cast(const TensorMap& weights, std::optional<torch::Dtype> dtype, const std::string& prefix = "") {
  TensorMap out;
  for (const auto& [name, t] : weights) out[prefix + name] = dtype && t.is_floating_point() ? t.to(*dtype) : t;
  return out;
}

}  // namespace

bool is_single_file_checkpoint(const fs::path& model) {
  return !model.empty() && !fs::is_directory(model) &&
         (fs::is_regular_file(model) || to_lower(model.extension().string()) == ".safetensors" ||
          to_lower(model.extension().string()) == ".ckpt");
}

SingleFileModel inspect_single_file(const fs::path& file, const SingleFileOptions& options) {
  return detect_single_file_architecture(file, read_shapes(file), options);
}

SingleFileComponents load_single_file(const fs::path& file, const SingleFileOptions& options, torch::Dtype dtype) {
  SingleFileComponents out{inspect_single_file(file, options), {}, nullptr, nullptr, nullptr};
  const SingleFileModel& model = out.model;
  const std::string arch = model.title();
  out.tokenizer = load_tokenizer(model.tokenizer_config);
  TensorMap checkpoint = read_safetensors(file).tensors;
  torch::NoGradGuard no_grad;
  {
    const ConvertedComponent converted = convert_ldm_unet(checkpoint, model.arch.unet);
    out.unet = UNet2DConditionModel(model.arch.unet);
    check_component(*out.unet, converted, file, "UNet", arch);
    load_state_dict_strict(*out.unet, converted.weights, file.string() + " (UNet)");
    release(checkpoint, converted);
    out.unet->to(dtype);
    out.unet->eval();
  }
  {
    const ConvertedComponent converted = convert_ldm_vae(checkpoint, model.arch.vae);
    out.vae = AutoencoderKL(model.arch.vae);
    check_component(*out.vae, converted, file, "VAE", arch);
    load_state_dict_strict(*out.vae, converted.weights, file.string() + " (VAE)");
    release(checkpoint, converted);
    out.vae->to(torch::kFloat32);
    out.vae->eval();
  }
  {
    const ConvertedComponent converted = convert_text_encoder(checkpoint, model);
    out.text_encoder = ClipTextModel(model.arch.text_encoder);
    check_component(*out.text_encoder, converted, file, "text encoder", arch);
    load_state_dict_strict(*out.text_encoder, converted.weights, file.string() + " (text encoder)");
    out.text_encoder->to(dtype);
    out.text_encoder->eval();
  }
  return out;
}

void write_single_file_as_diffusers(const fs::path& file, const fs::path& dir, const SingleFileOptions& options,
                                    std::optional<torch::Dtype> weights_dtype,
                                    const std::set<std::string>& skip_weights) {
  const SingleFileModel model = inspect_single_file(file, options);
  const std::string arch = model.title();
  for (const char* component : {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}) {
    ensure_directory(dir / component, "model component folder");
  }
  // The configs: the config folder's own files when one was given (as diffusers' from_single_file(config=...)
  // keeps them), else the detected ones.
  const fs::path config_dir = options.config_dir;
  auto write_config = [&](const std::string& component, const std::string& name, const Json& detected) {
    const fs::path given = config_dir / component / name;
    if (!config_dir.empty() && fs::is_regular_file(given)) {
      fs::copy_file(given, dir / component / name, fs::copy_options::overwrite_existing);
    } else {
      write_json_file(dir / component / name, detected);
    }
  };
  write_config("unet", "config.json", model.arch.unet.to_json());
  write_config("vae", "config.json", model.arch.vae.to_json());
  write_config("text_encoder", "config.json", model.arch.text_encoder.to_json());
  write_config("scheduler", "scheduler_config.json", model.arch.scheduler.to_json("PNDMScheduler"));
  write_tokenizer_folder(dir / "tokenizer", model.tokenizer_config);
  const Json scheduler = read_json_file(dir / "scheduler" / "scheduler_config.json");
  const std::string scheduler_class = json_get<std::string>(scheduler, "_class_name", "PNDMScheduler", "scheduler");

  TensorMap checkpoint = read_safetensors(file).tensors;
  const std::map<std::string, std::string> metadata{{"format", "pt"}};
  if (!skip_weights.count("unet")) {
    const ConvertedComponent converted = convert_ldm_unet(checkpoint, model.arch.unet);
    check_component(*UNet2DConditionModel(model.arch.unet), converted, file, "UNet", arch);
    write_safetensors(dir / "unet" / "diffusion_pytorch_model.safetensors", cast(converted.weights, weights_dtype),
                      metadata);
    release(checkpoint, converted);
  }
  if (!skip_weights.count("vae")) {
    const ConvertedComponent converted = convert_ldm_vae(checkpoint, model.arch.vae);
    check_component(*AutoencoderKL(model.arch.vae), converted, file, "VAE", arch);
    write_safetensors(dir / "vae" / "diffusion_pytorch_model.safetensors", cast(converted.weights, weights_dtype),
                      metadata);
    release(checkpoint, converted);
  }
  if (!skip_weights.count("text_encoder")) {
    const ConvertedComponent converted = convert_text_encoder(checkpoint, model);
    check_component(*ClipTextModel(model.arch.text_encoder), converted, file, "text encoder", arch);
    // transformers' CLIPTextModel keys carry the "text_model." prefix.
    write_safetensors(dir / "text_encoder" / "model.safetensors", cast(converted.weights, weights_dtype, "text_model."),
                      metadata);
  }
  write_json_file(dir / "model_index.json", Json{{"_class_name", "StableDiffusionPipeline"},
                                                 {"_diffusers_version", "0.30.0"},
                                                 {"fairdiff_architecture", model.arch.name},
                                                 {"fairdiff_converted_from", fs::absolute(file).string()},
                                                 {"requires_safety_checker", false},
                                                 {"feature_extractor", {nullptr, nullptr}},
                                                 {"safety_checker", {nullptr, nullptr}},
                                                 {"scheduler", {"diffusers", scheduler_class}},
                                                 {"text_encoder", {"transformers", "CLIPTextModel"}},
                                                 {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                                 {"unet", {"diffusers", "UNet2DConditionModel"}},
                                                 {"vae", {"diffusers", "AutoencoderKL"}}});
}

SingleFileModel convert_single_file(const fs::path& file, const fs::path& out, const SingleFileOptions& options,
                                    std::optional<torch::Dtype> weights_dtype) {
  if (fs::exists(out)) throw FieldInputError("out", out.string() + " already exists; choose a new folder");
  // Everything that can be told from the header, before any folder is made.
  const SingleFileModel model = inspect_single_file(file, options);
  const fs::path staging = fs::path(out.string() + ".partial");
  fs::remove_all(staging);
  try {
    write_single_file_as_diffusers(file, staging, options, weights_dtype);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);  // no half-written folder left behind
    throw;
  }
  fs::rename(staging, out);
  return model;
}

}  // namespace fairdiff