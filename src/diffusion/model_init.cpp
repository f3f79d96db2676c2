#include "diffusion/model_init.h"

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "core/strings.h"

namespace fairdiff {
namespace {

TensorMap to_dtype(const TensorMap& weights, torch::Dtype dtype) {
  TensorMap out;
  for (const auto& [name, t] : weights) out[name] = t.is_floating_point() ? t.to(dtype) : t;
  return out;
}

}  // namespace

SchedulerConfig stable_diffusion_scheduler_config() {
  SchedulerConfig s;
  s.num_train_timesteps = 1000;
  s.beta_start = 0.00085;
  s.beta_end = 0.012;
  s.beta_schedule = "scaled_linear";
  s.steps_offset = 1;
  s.set_alpha_to_one = false;
  s.skip_prk_steps = true;
  s.clip_sample = false;
  return s;
}

std::vector<std::string> architecture_names() {
  return {"sd21-base", "sd15", "tiny-sd2", "tiny-sd1", "builtin"};
}

ModelArchitecture architecture(const std::string& name) {
  ModelArchitecture a;
  a.name = name;
  a.scheduler = stable_diffusion_scheduler_config();
  if (name == "sd21-base" || name == "sd15") {
    a.unet.block_out_channels = {320, 640, 1280, 1280};
    a.unet.sample_size = 64;
    a.vae.block_out_channels = {128, 256, 512, 512};
    a.vae.sample_size = 512;
    if (name == "sd21-base") {
      a.unet.num_attention_heads = {5, 10, 20, 20};
      a.unet.cross_attention_dim = 1024;
      a.unet.use_linear_projection = true;
      a.text_encoder.hidden_size = 1024;
      a.text_encoder.intermediate_size = 4096;
      a.text_encoder.num_hidden_layers = 23;
      a.text_encoder.num_attention_heads = 16;
      a.text_encoder.hidden_act = "gelu";
      a.pad_token = "!";
    } else {
      a.unet.num_attention_heads = {8, 8, 8, 8};
      a.unet.cross_attention_dim = 768;
      a.unet.use_linear_projection = false;
      a.text_encoder.hidden_size = 768;
      a.text_encoder.intermediate_size = 3072;
      a.text_encoder.num_hidden_layers = 12;
      a.text_encoder.num_attention_heads = 12;
      a.text_encoder.hidden_act = "quick_gelu";
      a.pad_token = "<|endoftext|>";
    }
    return a;
  }
  if (name == "tiny-sd2" || name == "tiny-sd1") {
    // The shapes of ../shared/fixtures/tiny-sd{1,2}.
    a.unet.block_out_channels = {32, 64};
    a.unet.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
    a.unet.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
    a.unet.sample_size = 16;
    a.unet.cross_attention_dim = 32;
    a.vae.block_out_channels = {32, 64};
    a.vae.layers_per_block = 1;
    a.vae.sample_size = 32;
    a.text_encoder.hidden_size = 32;
    a.text_encoder.intermediate_size = 37;
    a.text_encoder.num_attention_heads = 4;
    if (name == "tiny-sd2") {
      a.unet.num_attention_heads = {2, 4};
      a.unet.use_linear_projection = true;
      a.text_encoder.num_hidden_layers = 3;
      a.text_encoder.hidden_act = "gelu";
      a.pad_token = "!";
    } else {
      a.unet.num_attention_heads = {8, 8};
      a.unet.use_linear_projection = false;
      a.text_encoder.num_hidden_layers = 2;
      a.text_encoder.hidden_act = "quick_gelu";
      a.pad_token = "<|endoftext|>";
    }
    return a;
  }
  if (name == "builtin") {
    // fairdiff's built-in model (docs/toy-model.md): 64x64 images, a VAE with f = 4 (16x16x4 latents, 2.7M
    // parameters), a UNet of 4.7M parameters (channels 64/96/128, one layer per block; 64/128/128 with two
    // layers made it 8.6M and the model 31 MB) and a 4-layer, 64-wide CLIP text encoder (its 49,408 x 64 token
    // embedding is most of its 3.4M): about 23 MB in fp16 with the tokenizer files, within the 25 MB the
    // repository can carry.
    a.unet.block_out_channels = {64, 96, 128};
    a.unet.down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"};
    a.unet.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"};
    a.unet.num_attention_heads = {2, 4, 4};
    a.unet.layers_per_block = 1;
    a.unet.sample_size = 16;
    a.unet.cross_attention_dim = 64;
    a.unet.use_linear_projection = true;
    a.vae.block_out_channels = {32, 64, 128};
    a.vae.layers_per_block = 1;
    a.vae.sample_size = 64;
    a.text_encoder.hidden_size = 64;
    a.text_encoder.intermediate_size = 256;
    a.text_encoder.num_hidden_layers = 4;
    a.text_encoder.num_attention_heads = 4;
    a.text_encoder.hidden_act = "gelu";
    // A 24-token context (the longest training caption is 15 tokens with BOS and EOS): with SD's 77 the UNet's
    // cross-attention averaged over 60+ padding tokens and learned to ignore the prompt (docs/toy-model.md).
    a.text_encoder.max_position_embeddings = 24;
    a.pad_token = "!";
    return a;
  }
  throw FieldError("arch", name + ": expected one of " + join(architecture_names(), ", "));
}

void init_random_model(const ModelArchitecture& arch, const std::filesystem::path& tokenizer_from,
                       const std::filesystem::path& out, uint64_t seed, torch::Dtype weights_dtype) {
  std::filesystem::path tokenizer_dir = tokenizer_from;
  if (!std::filesystem::exists(tokenizer_dir / "vocab.json") &&
      std::filesystem::exists(tokenizer_dir / "tokenizer" / "vocab.json")) {
    tokenizer_dir = tokenizer_dir / "tokenizer";
  }
  require_file(tokenizer_dir / "vocab.json", "tokenizer folder's CLIP vocabulary");
  require_file(tokenizer_dir / "merges.txt", "tokenizer folder's CLIP merges");
  if (std::filesystem::exists(out / "model_index.json")) {
    throw FieldInputError("out", out.string() + " already holds a model (model_index.json); choose an empty directory");
  }
  // Build into a temporary directory and rename at the end, so an interrupted init leaves no half model.
  std::filesystem::path staging = out;
  staging += ".partial";
  std::filesystem::remove_all(staging);
  for (const char* component : {"tokenizer", "text_encoder", "unet", "vae", "scheduler"}) {
    ensure_directory(staging / component, "model component folder");
  }
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  {
    ClipTextModel text_encoder(arch.text_encoder);
    write_safetensors(staging / "text_encoder" / "model.safetensors",
                      to_dtype(module_state_dict(*text_encoder), weights_dtype), {{"format", "pt"}});
  }
  {
    UNet2DConditionModel unet(arch.unet);
    write_safetensors(staging / "unet" / "diffusion_pytorch_model.safetensors",
                      to_dtype(module_state_dict(*unet), weights_dtype), {{"format", "pt"}});
  }
  {
    AutoencoderKL vae(arch.vae);
    write_safetensors(staging / "vae" / "diffusion_pytorch_model.safetensors",
                      to_dtype(module_state_dict(*vae), weights_dtype), {{"format", "pt"}});
  }
  write_json_file(staging / "text_encoder" / "config.json", arch.text_encoder.to_json());
  write_json_file(staging / "unet" / "config.json", arch.unet.to_json());
  write_json_file(staging / "vae" / "config.json", arch.vae.to_json());
  write_json_file(staging / "scheduler" / "scheduler_config.json", arch.scheduler.to_json("PNDMScheduler"));
  std::filesystem::copy_file(tokenizer_dir / "vocab.json", staging / "tokenizer" / "vocab.json");
  std::filesystem::copy_file(tokenizer_dir / "merges.txt", staging / "tokenizer" / "merges.txt");
  write_json_file(staging / "tokenizer" / "tokenizer_config.json",
                  Json{{"tokenizer_class", "CLIPTokenizer"},
                       {"bos_token", "<|startoftext|>"},
                       {"eos_token", "<|endoftext|>"},
                       {"unk_token", "<|endoftext|>"},
                       {"pad_token", arch.pad_token},
                       {"model_max_length", arch.text_encoder.max_position_embeddings}});
  write_json_file(staging / "model_index.json", Json{{"_class_name", "StableDiffusionPipeline"},
                                                     {"_diffusers_version", "0.30.0"},
                                                     {"fairdiff_architecture", arch.name},
                                                     {"fairdiff_random_init_seed", seed},
                                                     {"requires_safety_checker", false},
                                                     {"feature_extractor", {nullptr, nullptr}},
                                                     {"safety_checker", {nullptr, nullptr}},
                                                     {"scheduler", {"diffusers", "PNDMScheduler"}},
                                                     {"text_encoder", {"transformers", "CLIPTextModel"}},
                                                     {"tokenizer", {"transformers", "CLIPTokenizer"}},
                                                     {"unet", {"diffusers", "UNet2DConditionModel"}},
                                                     {"vae", {"diffusers", "AutoencoderKL"}}});
  if (std::filesystem::exists(out)) {
    if (!std::filesystem::is_empty(out)) throw FieldInputError("out", out.string() + " is not empty");
    std::filesystem::remove(out);
  }
  std::filesystem::rename(staging, out);
}

void convert_model(const std::filesystem::path& model, const std::filesystem::path& out,
                   const ModelConvertOptions& options) {
  namespace fs = std::filesystem;
  require_file(model / "model_index.json", "model folder's model_index.json");
  if (fs::exists(out)) throw FieldInputError("out", out.string() + " already exists; choose a new folder");
  if (options.max_length != 0) {
    const fs::path config = model / "text_encoder" / "config.json";
    require_file(config, "text encoder config (needed to shorten the context)");
    const int64_t current = json_get<int64_t>(read_json_file(config), "max_position_embeddings", 77, config.string());
    if (options.max_length < 2 || options.max_length > current) {
      throw FieldError("max_length", std::to_string(options.max_length) + " is out of range: expected 2 to " +
                                         std::to_string(current) + " (the text encoder's max_position_embeddings in " +
                                         config.string() + ")");
    }
  }
  const fs::path staging = fs::path(out.string() + ".partial");
  fs::remove_all(staging);
  // The iteration order is unspecified: a top-level file can come before any folder that would create staging.
  ensure_directory(staging, "output staging folder");
  for (const auto& entry : fs::recursive_directory_iterator(model)) {
    // Lexically: fs::relative resolves symlinks, and a Hugging Face cache snapshot is made of links into blobs/.
    const fs::path relative = entry.path().lexically_relative(model);
    const fs::path target = staging / relative;
    const bool shorten = options.max_length > 0 && relative.begin() != relative.end() &&
                         *relative.begin() == "text_encoder";  // under text_encoder/, when shortening
    if (entry.is_directory()) {
      ensure_directory(target, "model folder");
    } else if (entry.path().extension() == ".safetensors") {
      SafetensorsFile file = read_safetensors(entry.path());
      for (auto& [key, t] : file.tensors) {
        if (t.is_floating_point()) t = t.to(options.weights_dtype);
        if (shorten && ends_with(key, "position_embedding.weight")) t = t.slice(0, 0, options.max_length).contiguous();
        if (shorten && ends_with(key, "position_ids")) t = t.slice(-1, 0, options.max_length).contiguous();
      }
      write_safetensors(target, file.tensors, file.metadata);
    } else if (options.max_length > 0 && relative == fs::path("text_encoder") / "config.json") {
      Json config = read_json_file(entry.path());
      config["max_position_embeddings"] = options.max_length;
      write_json_file(target, config);
    } else if (options.max_length > 0 && relative == fs::path("tokenizer") / "tokenizer_config.json") {
      Json config = read_json_file(entry.path());
      config["model_max_length"] = options.max_length;
      write_json_file(target, config);
    } else if (entry.is_regular_file()) {
      fs::copy_file(entry.path(), target);
    }
  }
  fs::rename(staging, out);
}

}  // namespace fairdiff
