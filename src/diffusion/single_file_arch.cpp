#include "diffusion/single_file_arch.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/strings.h"
#include "diffusion/single_file_keys.h"

namespace fairdiff {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kClipVocabularySize = 49408;
constexpr int64_t kHeadChannels = 64;  // SD 2.x UNet heads and both CLIP text encoders
constexpr int64_t kSd1Heads = 8;

std::string family_title(const std::string& family) {
  return family == "sd1" ? "Stable Diffusion 1.x" : "Stable Diffusion 2.x";
}

class ShapeReader {
 public:
  ShapeReader(const TensorShapes& shapes, const fs::path& file) : shapes_(shapes), where_(file.string()) {}

  bool has(const std::string& key) const { return shapes_.count(key) > 0; }
  // The shape of `key` with at least `rank` dimensions; InputError naming the key and what it was needed for.
  const std::vector<int64_t>& need(const std::string& key, size_t rank, const std::string& purpose) const {
    auto it = shapes_.find(key);
    if (it == shapes_.end()) throw InputError(where_ + ": missing tensor " + key + " (" + purpose + ")");
    if (it->second.size() < rank) {
      throw InputError(where_ + ": tensor " + key + " has shape " + shape_string(it->second) + ", expected " +
                       std::to_string(rank) + " dimensions (" + purpose + ")");
    }
    return it->second;
  }
  // The distinct N of keys "<head>N.*".
  std::set<int64_t> indices(const std::string& head) const {
    std::set<int64_t> out;
    for (auto it = shapes_.lower_bound(head); it != shapes_.end() && starts_with(it->first, head); ++it) {
      size_t end = head.size();
      while (end < it->first.size() && std::isdigit(static_cast<unsigned char>(it->first[end]))) ++end;
      if (end > head.size() && end - head.size() <= 6 && end < it->first.size() && it->first[end] == '.') {
        out.insert(std::stoll(it->first.substr(head.size(), end - head.size())));
      }
    }
    return out;
  }
  // The first key under `prefix` that ends with `suffix`.
  std::string find(const std::string& prefix, const std::string& suffix) const {
    for (auto it = shapes_.lower_bound(prefix); it != shapes_.end() && starts_with(it->first, prefix); ++it) {
      if (ends_with(it->first, suffix)) return it->first;
    }
    return "";
  }
  const std::string& where() const { return where_; }

 private:
  const TensorShapes& shapes_;
  std::string where_;
};

// Indices 0..n-1 without gaps.
bool contiguous_from_zero(const std::set<int64_t>& indices) {
  return !indices.empty() && *indices.begin() == 0 && *indices.rbegin() + 1 == static_cast<int64_t>(indices.size());
}

UNet2DConditionConfig derive_unet(const ShapeReader& r, const std::string& family) {
  const std::string p = kLdmUnetPrefix;
  UNet2DConditionConfig c;
  const std::set<int64_t> inputs = r.indices(p + "input_blocks."), outputs = r.indices(p + "output_blocks.");
  std::set<int64_t> downsamplers;
  for (int64_t i : inputs) {
    if (r.has(p + "input_blocks." + std::to_string(i) + ".0.op.weight")) downsamplers.insert(i);
  }
  // input_blocks: conv_in, then per block `layers` resnets (each with its transformer), then a downsampler on
  // all but the last block: 1 + blocks * layers + (blocks - 1) entries.
  const auto count = static_cast<int64_t>(inputs.size());
  const auto blocks = static_cast<int64_t>(downsamplers.size()) + 1;
  const int64_t layers = (count - blocks) / blocks;
  if (!contiguous_from_zero(inputs) || layers < 1 || count - blocks != blocks * layers ||
      !contiguous_from_zero(outputs) || static_cast<int64_t>(outputs.size()) != blocks * (layers + 1)) {
    throw InputError(r.where() + ": cannot tell the UNet's blocks from " + std::to_string(inputs.size()) +
                     " input_blocks (" + std::to_string(downsamplers.size()) + " of them downsamplers) and " +
                     std::to_string(outputs.size()) + " output_blocks under " + p);
  }
  c.layers_per_block = layers;
  c.block_out_channels.clear();
  c.down_block_types.clear();
  c.up_block_types.clear();
  c.num_attention_heads.clear();
  for (int64_t b = 0; b < blocks; ++b) {
    const std::string first = p + "input_blocks." + std::to_string(1 + b * (layers + 1));
    if (b + 1 < blocks && !downsamplers.count(1 + b * (layers + 1) + layers)) {
      throw InputError(r.where() + ": expected a downsampler at " + p + "input_blocks." +
                       std::to_string(1 + b * (layers + 1) + layers) + ".0.op.weight");
    }
    const int64_t channels = r.need(first + ".0.out_layers.3.weight", 1, "the UNet's block widths")[0];
    c.block_out_channels.push_back(channels);
    c.down_block_types.push_back(r.has(first + ".1.proj_in.weight") ? "CrossAttnDownBlock2D" : "DownBlock2D");
    const std::string up = p + "output_blocks." + std::to_string(b * (layers + 1));
    c.up_block_types.push_back(r.has(up + ".1.proj_in.weight") ? "CrossAttnUpBlock2D" : "UpBlock2D");
    if (channels < 1) throw InputError(r.where() + ": " + first + ".0.out_layers.3.weight has no channels");
    const int64_t head_channels = family == "sd1" ? channels / kSd1Heads : kHeadChannels;
    if (head_channels < 1 || channels % (family == "sd1" ? kSd1Heads : kHeadChannels) != 0) {
      throw FieldInputError("model_config", "is needed for " + r.where() + ": its UNet block of " +
                                                std::to_string(channels) + " channels does not split into " +
                                                family_title(family) + "'s attention heads (" +
                                                (family == "sd1" ? "8 per block" : "64 channels each") +
                                                "); give a diffusers model folder whose configs describe it");
    }
    c.num_attention_heads.push_back(channels / head_channels);
  }
  c.in_channels = r.need(p + "input_blocks.0.0.weight", 4, "the UNet's input channels")[1];
  c.out_channels = r.need(p + "out.2.weight", 4, "the UNet's output channels")[0];
  c.use_linear_projection = family == "sd2";
  return c;
}

AutoencoderKLConfig derive_vae(const ShapeReader& r) {
  const std::string p = kLdmVaePrefix;
  AutoencoderKLConfig c;
  const std::set<int64_t> blocks = r.indices(p + "encoder.down.");
  const std::set<int64_t> layers = r.indices(p + "encoder.down.0.block.");
  if (!contiguous_from_zero(blocks) || !contiguous_from_zero(layers)) {
    throw InputError(r.where() + ": cannot tell the VAE's blocks: no " + p + "encoder.down.N.block.M tensors");
  }
  c.block_out_channels.clear();
  for (int64_t b : blocks) {
    c.block_out_channels.push_back(
        r.need(p + "encoder.down." + std::to_string(b) + ".block.0.conv1.weight", 1, "the VAE's block widths")[0]);
  }
  c.layers_per_block = static_cast<int64_t>(layers.size());
  c.in_channels = r.need(p + "encoder.conv_in.weight", 4, "the VAE's image channels")[1];
  c.out_channels = r.need(p + "decoder.conv_out.weight", 4, "the VAE's image channels")[0];
  c.latent_channels = r.need(p + "decoder.conv_in.weight", 4, "the VAE's latent channels")[1];
  c.use_quant_conv = r.has(p + "quant_conv.weight");
  c.use_post_quant_conv = r.has(p + "post_quant_conv.weight");
  c.mid_block_add_attention = r.has(p + "encoder.mid.attn_1.q.weight");
  return c;
}

ClipTextConfig derive_text_encoder(const ShapeReader& r, const std::string& family) {
  ClipTextConfig c;
  std::string token, position, fc1;
  int64_t layers = 0;
  if (family == "sd1") {
    std::string p = kLdmClipPrefix;
    if (r.has(p + "text_model.embeddings.token_embedding.weight")) p += "text_model.";
    token = p + "embeddings.token_embedding.weight";
    position = p + "embeddings.position_embedding.weight";
    fc1 = p + "encoder.layers.0.mlp.fc1.weight";
    layers = static_cast<int64_t>(r.indices(p + "encoder.layers.").size());
    c.hidden_act = "quick_gelu";
  } else {
    const std::string p = kLdmOpenClipPrefix;
    token = p + "token_embedding.weight";
    position = p + "positional_embedding";
    fc1 = p + "transformer.resblocks.0.mlp.c_fc.weight";
    layers = static_cast<int64_t>(r.indices(p + "transformer.resblocks.").size()) - 1;  // the last is unused
    c.hidden_act = "gelu";
  }
  const auto& embedding = r.need(token, 2, "the text encoder's vocabulary and width");
  c.vocab_size = embedding[0];
  c.hidden_size = embedding[1];
  c.max_position_embeddings = r.need(position, 2, "the text encoder's context length")[0];
  c.intermediate_size = r.need(fc1, 2, "the text encoder's MLP width")[0];
  c.num_hidden_layers = layers;
  if (layers < 1) throw InputError(r.where() + ": the text encoder has too few layers (" + fc1 + ")");
  if (c.hidden_size < kHeadChannels || c.hidden_size % kHeadChannels != 0) {
    throw FieldInputError("model_config", "is needed for " + r.where() + ": its text encoder is " +
                                              std::to_string(c.hidden_size) +
                                              " wide, which does not split into CLIP's 64-channel attention heads; "
                                              "give a diffusers model folder whose configs describe it");
  }
  c.num_attention_heads = c.hidden_size / kHeadChannels;
  return c;
}

Json default_tokenizer_config(const std::string& family, int64_t max_length) {
  return Json{{"tokenizer_class", "CLIPTokenizer"},
              {"bos_token", "<|startoftext|>"},
              {"eos_token", "<|endoftext|>"},
              {"unk_token", "<|endoftext|>"},
              {"pad_token", family == "sd1" ? "<|endoftext|>" : "!"},
              {"model_max_length", max_length}};
}

// The architecture from a config folder (diffusers' from_single_file(config=...)).
void read_config_dir(const fs::path& dir, SingleFileModel& model) {
  if (!fs::is_directory(dir)) {
    throw FieldInputError("model_config", dir.string() +
                                              " is not a folder (expected a diffusers model folder "
                                              "with unet/, vae/ and text_encoder/ config.json files)");
  }
  auto config = [&](const char* component, const char* name) {
    const fs::path path = dir / component / name;
    if (!fs::is_regular_file(path))
      throw FieldInputError("model_config", dir.string() + " has no " + component + "/" + name);
    return std::make_pair(read_json_file(path), path.string());
  };
  auto [unet, unet_where] = config("unet", "config.json");
  auto [vae, vae_where] = config("vae", "config.json");
  auto [text, text_where] = config("text_encoder", "config.json");
  model.arch.unet = UNet2DConditionConfig::from_json(unet, unet_where);
  model.arch.vae = AutoencoderKLConfig::from_json(vae, vae_where);
  model.arch.text_encoder = ClipTextConfig::from_json(text, text_where);
  const fs::path scheduler = dir / "scheduler" / "scheduler_config.json";
  if (fs::exists(scheduler)) model.arch.scheduler = load_scheduler_config(scheduler.string());
  const fs::path tokenizer = dir / "tokenizer" / "tokenizer_config.json";
  if (fs::exists(tokenizer)) model.tokenizer_config = read_json_file(tokenizer);
}

// What a file holds when it has no UNet in the original layout: the error says what it looks like instead.
[[noreturn]] void refuse_other_layout(const std::string& where, const TensorShapes& shapes) {
  for (const auto& [key, shape] : shapes) {
    if (starts_with(key, "conditioner.embedders.")) {
      throw InputError(where + " is an SDXL checkpoint (" + key + "): fairdiff runs Stable Diffusion 1.x and 2.x");
    }
    if (key.find("lora") != std::string::npos) {
      throw InputError(where + " holds LoRA weights (" + key + "), not a model: pass it to generate --lora");
    }
  }
  for (const char* diffusers : {"down_blocks.", "encoder.down_blocks.", "text_model.", "embeddings.", "mid_block."}) {
    for (const auto& [key, shape] : shapes) {
      if (starts_with(key, diffusers)) {
        throw InputError(where + " looks like one component of a diffusers model folder (" + key +
                         "): pass the folder that holds model_index.json");
      }
    }
  }
  const std::string example = shapes.empty() ? "" : shapes.begin()->first;
  throw InputError(where + " is not a Stable Diffusion checkpoint in the original layout: none of its " +
                   std::to_string(shapes.size()) + " tensors" + (example.empty() ? "" : " (e.g. " + example + ")") +
                   " is under " + kLdmUnetPrefix + ", " + kLdmVaePrefix + " or cond_stage_model.");
}

// The keys of each component; InputError when one is missing, two text encoders are present, or a key belongs to
// none (training-only keys aside).
struct Parts {
  std::vector<std::string> unet, vae, clip, open_clip;
};

Parts partition(const std::string& where, const TensorShapes& shapes) {
  Parts parts;
  std::vector<std::string> other;
  for (const auto& [key, shape] : shapes) {
    if (starts_with(key, kLdmUnetPrefix)) {
      parts.unet.push_back(key);
    } else if (starts_with(key, kLdmVaePrefix)) {
      parts.vae.push_back(key);
    } else if (starts_with(key, kLdmClipPrefix)) {
      parts.clip.push_back(key);
    } else if (starts_with(key, kLdmOpenClipPrefix)) {
      parts.open_clip.push_back(key);
    } else if (!is_ldm_training_key(key)) {
      other.push_back(key);
    }
  }
  if (parts.unet.empty()) refuse_other_layout(where, shapes);
  if (!other.empty()) {
    std::vector<std::string> shown(other.begin(), other.begin() + std::min<size_t>(other.size(), 5));
    throw InputError(where + ": " + std::to_string(other.size()) +
                     " tensor(s) belong to no part of a Stable Diffusion 1.x/2.x checkpoint: " + join(shown, ", ") +
                     (other.size() > shown.size() ? ", ..." : ""));
  }
  if (parts.vae.empty()) {
    throw InputError(where + " has no VAE (" + kLdmVaePrefix +
                     "* tensors): fairdiff needs the whole model in one file");
  }
  if (parts.clip.empty() && parts.open_clip.empty()) {
    throw InputError(where + " has no text encoder (" + kLdmClipPrefix + "* for SD 1.x, " + kLdmOpenClipPrefix +
                     "* for SD 2.x): fairdiff needs the whole model in one file");
  }
  if (!parts.clip.empty() && !parts.open_clip.empty()) {
    throw InputError(where + " mixes architectures: it holds SD 1.x's CLIP text encoder (" + parts.clip.front() +
                     ") and SD 2.x's OpenCLIP text encoder (" + parts.open_clip.front() + ")");
  }
  return parts;
}

// SD 1.x or 2.x, from the UNet's transformer projection (a 1x1 convolution in 1.x, a linear layer in 2.x) and the
// text encoder (CLIP in 1.x, OpenCLIP in 2.x), which must agree, as must the UNet's and the text encoder's width.
struct Family {
  std::string name;      // sd1 or sd2
  std::string evidence;  // "<proj_in key> [320, 320] is a linear layer"
  std::string to_k;      // a cross-attention key, whose shape gives the text width
};

Family tell_family(const ShapeReader& r, const Parts& parts) {
  const std::string& where = r.where();
  const std::string first = std::string(kLdmUnetPrefix) + "input_blocks.1.1.proj_in.weight";
  const std::string proj_in = r.has(first) ? first : r.find(kLdmUnetPrefix, ".proj_in.weight");
  if (proj_in.empty()) {
    throw InputError(where + ": its UNet has no transformer (no " + kLdmUnetPrefix +
                     "*.proj_in.weight): not a Stable Diffusion 1.x/2.x UNet");
  }
  const std::vector<int64_t>& proj_shape = r.need(proj_in, 2, "SD 1.x or 2.x");
  if (proj_shape.size() != 4 && proj_shape.size() != 2) {
    throw InputError(where + ": " + proj_in + " has shape " + shape_string(proj_shape) +
                     ", expected a 1x1 convolution (SD 1.x) or a linear layer (SD 2.x)");
  }
  Family family;
  family.to_k = r.find(kLdmUnetPrefix, ".attn2.to_k.weight");
  if (family.to_k.empty()) {
    throw InputError(where + ": its UNet has no cross-attention (no " + kLdmUnetPrefix +
                     "*.attn2.to_k.weight): not a Stable Diffusion 1.x/2.x UNet");
  }
  family.name = proj_shape.size() == 4 ? "sd1" : "sd2";
  family.evidence = proj_in + " " + shape_string(proj_shape) + " is " +
                    (family.name == "sd1" ? "a 1x1 convolution" : "a linear layer");
  const std::string text_family = parts.clip.empty() ? "sd2" : "sd1";
  const std::string text_key = parts.clip.empty() ? parts.open_clip.front() : parts.clip.front();
  if (text_family != family.name) {
    throw InputError(where + " mixes architectures: its UNet is " + family_title(family.name) + "'s (" +
                     family.evidence + ") but its text encoder is " + family_title(text_family) + "'s (" + text_key +
                     ")");
  }
  const std::string token = family.name == "sd1" ? r.find(kLdmClipPrefix, "token_embedding.weight")
                                                 : std::string(kLdmOpenClipPrefix) + "token_embedding.weight";
  if (!token.empty() && r.has(token)) {
    const auto& k = r.need(family.to_k, 2, "the UNet's text width");
    const auto& t = r.need(token, 2, "the text encoder's width");
    if (k[1] != t[1]) {
      throw InputError(where + " mixes architectures: " + family.to_k + " " + shape_string(k) + " takes " +
                       std::to_string(k[1]) + "-channel text states but the text encoder's " + token + " " +
                       shape_string(t) + " gives " + std::to_string(t[1]));
    }
  }
  return family;
}

// The configs: from the config folder, or told from the shapes with what the family fixes.
void configure(const ShapeReader& r, const Family& family, const SingleFileOptions& options, SingleFileModel& model) {
  const std::string& where = r.where();
  const auto names = single_file_arch_names();
  if (!options.arch.empty() && !options.config_dir.empty()) {
    throw FieldError("model_config", "describes the whole architecture: give it or an arch, not both");
  }
  if (!options.arch.empty()) {
    if (std::find(names.begin(), names.end(), options.arch) == names.end()) {
      throw FieldError("model_arch", "'" + options.arch + "': expected one of " + join(names, ", "));
    }
    if ((options.arch == "sd1" ? "sd1" : "sd2") != family.name) {
      throw FieldError("model_arch", options.arch + " does not fit " + where + ": it is a " +
                                         family_title(family.name) + " checkpoint (" + family.evidence + ")");
    }
  }
  model.family = family.name;
  model.arch.name = options.arch.empty() ? family.name : options.arch;
  model.arch.scheduler = stable_diffusion_scheduler_config();
  if (!options.config_dir.empty()) {
    model.arch.name = "config " + options.config_dir.string();
    read_config_dir(options.config_dir, model);
    if (model.arch.unet.use_linear_projection != (family.name == "sd2")) {
      throw FieldInputError("model_config", (options.config_dir / "unet" / "config.json").string() +
                                                " says use_linear_projection " +
                                                (model.arch.unet.use_linear_projection ? "true" : "false") +
                                                " but in " + where + " " + family.evidence);
    }
    return;
  }
  const bool v_model = options.arch == "sd2-v";
  model.arch.unet = derive_unet(r, family.name);
  model.arch.unet.cross_attention_dim = r.need(family.to_k, 2, "the UNet's text width")[1];
  model.arch.unet.sample_size = v_model ? 96 : 64;  // 768 or 512 pixels
  model.arch.unet.upcast_attention = v_model;       // as SD 2.1-v's config, against fp16 overflow
  model.arch.vae = derive_vae(r);
  model.arch.vae.sample_size = v_model ? 768 : 512;
  model.arch.text_encoder = derive_text_encoder(r, family.name);
  if (v_model) model.arch.scheduler.prediction_type = "v_prediction";
  // Through the configs' own checks, as if read from config.json files.
  model.arch.unet = UNet2DConditionConfig::from_json(model.arch.unet.to_json(), where + " (its UNet)");
  model.arch.vae = AutoencoderKLConfig::from_json(model.arch.vae.to_json(), where + " (its VAE)");
  model.arch.text_encoder = ClipTextConfig::from_json(model.arch.text_encoder.to_json(), where + " (its text encoder)");
}

// What fairdiff needs of any model, however described.
void check_runnable(const ShapeReader& r, const SingleFileModel& model) {
  const std::string& where = r.where();
  if (model.arch.text_encoder.vocab_size != kClipVocabularySize) {
    throw InputError(where + ": the text encoder has " + std::to_string(model.arch.text_encoder.vocab_size) +
                     " token embeddings; the CLIP vocabulary fairdiff ships for single-file checkpoints has " +
                     std::to_string(kClipVocabularySize));
  }
  if (model.arch.unet.in_channels != model.arch.vae.latent_channels) {
    throw InputError(where + ": its UNet takes " + std::to_string(model.arch.unet.in_channels) +
                     " input channels but its VAE makes " + std::to_string(model.arch.vae.latent_channels) +
                     "-channel latents (an inpainting or other image-conditioned model?); fairdiff runs text-to-image "
                     "models");
  }
  if (model.family == "sd2") {
    // The checkpoint carries one layer more than the text encoder uses.
    const auto layers =
        static_cast<int64_t>(r.indices(std::string(kLdmOpenClipPrefix) + "transformer.resblocks.").size());
    if (layers != model.arch.text_encoder.num_hidden_layers + 1) {
      throw InputError(where + ": its OpenCLIP text encoder has " + std::to_string(layers) + " layers (" +
                       kLdmOpenClipPrefix + "transformer.resblocks.*) but a text encoder of " +
                       std::to_string(model.arch.text_encoder.num_hidden_layers) + " layers needs " +
                       std::to_string(model.arch.text_encoder.num_hidden_layers + 1) +
                       " (SD 2.x conditions on the penultimate layer)");
    }
  }
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

std::vector<std::string> single_file_arch_names() {
  return {"sd1", "sd2", "sd2-v"};
}

SingleFileModel detect_single_file_architecture(const fs::path& file, const TensorShapes& shapes,
                                                const SingleFileOptions& options) {
  const ShapeReader r(shapes, file);
  const Parts parts = partition(r.where(), shapes);
  const Family family = tell_family(r, parts);
  SingleFileModel model;
  configure(r, family, options, model);
  if (model.tokenizer_config.is_null()) {
    model.tokenizer_config = default_tokenizer_config(family.name, model.arch.text_encoder.max_position_embeddings);
  }
  if (model.tokenizer_config.contains("pad_token") && model.tokenizer_config["pad_token"].is_string()) {
    model.arch.pad_token = model.tokenizer_config["pad_token"].get<std::string>();
  }
  check_runnable(r, model);
  return model;
}

std::string SingleFileModel::title() const {
  if (arch.name == "sd2-v") return family_title(family) + " 768-v";
  if (starts_with(arch.name, "config ")) return family_title(family) + " described by " + arch.name.substr(7);
  return family_title(family);
}

}  // namespace fairdiff
