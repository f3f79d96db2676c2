#include "text/clip_text_model.h"

#include <cmath>
#include <limits>

#include "core/attention.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/name_conversion.h"
#include "core/state_dict.h"

namespace fairdiff {

ClipTextConfig ClipTextConfig::from_json(const Json& json, const std::string& where) {
  ClipTextConfig c;
  c.vocab_size = json_get<int64_t>(json, "vocab_size", c.vocab_size, where);
  c.hidden_size = json_get<int64_t>(json, "hidden_size", c.hidden_size, where);
  c.intermediate_size = json_get<int64_t>(json, "intermediate_size", c.intermediate_size, where);
  c.num_hidden_layers = json_get<int64_t>(json, "num_hidden_layers", c.num_hidden_layers, where);
  c.num_attention_heads = json_get<int64_t>(json, "num_attention_heads", c.num_attention_heads, where);
  c.max_position_embeddings = json_get<int64_t>(json, "max_position_embeddings", c.max_position_embeddings, where);
  c.hidden_act = json_get<std::string>(json, "hidden_act", c.hidden_act, where);
  c.layer_norm_eps = json_get<double>(json, "layer_norm_eps", c.layer_norm_eps, where);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu") {
    throw InputError(where + ": hidden_act '" + c.hidden_act + "' is not supported (expected quick_gelu or gelu)");
  }
  // Generous bounds: they only keep a malformed config from asking for absurd allocations.
  const ConfigCheck check(json, where);
  check.in_range("vocab_size", c.vocab_size, 1, 1 << 24);
  check.in_range("hidden_size", c.hidden_size, 1, 1 << 16);
  check.in_range("intermediate_size", c.intermediate_size, 1, 1 << 18);
  check.in_range("num_hidden_layers", c.num_hidden_layers, 1, 256);
  check.in_range("num_attention_heads", c.num_attention_heads, 1, c.hidden_size);
  check.in_range("max_position_embeddings", c.max_position_embeddings, 2, 1 << 16);
  check.in_range("layer_norm_eps", c.layer_norm_eps, 0, 1, true, false);
  if (c.hidden_size % c.num_attention_heads != 0) {
    check.fail("num_attention_heads", "is " + std::to_string(c.num_attention_heads),
               "a divisor of hidden_size " + std::to_string(c.hidden_size));
  }
  return c;
}

Json ClipTextConfig::to_json() const {
  return Json{{"architectures", {"CLIPTextModel"}},
              {"model_type", "clip_text_model"},
              {"vocab_size", vocab_size},
              {"hidden_size", hidden_size},
              {"intermediate_size", intermediate_size},
              {"num_hidden_layers", num_hidden_layers},
              {"num_attention_heads", num_attention_heads},
              {"max_position_embeddings", max_position_embeddings},
              {"hidden_act", hidden_act},
              {"layer_norm_eps", layer_norm_eps},
              {"bos_token_id", 49406},
              {"eos_token_id", 49407},
              {"attention_dropout", 0.0},
              {"projection_dim", hidden_size}};
}

ClipAttentionImpl::ClipAttentionImpl(int64_t hidden_size, int64_t num_heads) : num_heads_(num_heads) {
  q_proj = register_module("q_proj", torch::nn::Linear(hidden_size, hidden_size));
  k_proj = register_module("k_proj", torch::nn::Linear(hidden_size, hidden_size));
  v_proj = register_module("v_proj", torch::nn::Linear(hidden_size, hidden_size));
  out_proj = register_module("out_proj", torch::nn::Linear(hidden_size, hidden_size));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2);
  auto heads = [&](const torch::Tensor& t) { return t.view({b, l, num_heads_, d / num_heads_}).transpose(1, 2); };
  torch::Tensor out =
      dot_product_attention(heads(linear(q_proj, x)), heads(linear(k_proj, x)), heads(linear(v_proj, x)), causal_mask);
  return linear(out_proj, out.transpose(1, 2).reshape({b, l, d}));  // [B, H, L, Dh] -> [B, L, D]
}

ClipMlpImpl::ClipMlpImpl(int64_t hidden_size, int64_t intermediate_size, std::string activation)
    : activation_(std::move(activation)) {
  fc1 = register_module("fc1", torch::nn::Linear(hidden_size, intermediate_size));
  fc2 = register_module("fc2", torch::nn::Linear(intermediate_size, hidden_size));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = linear(fc1, x);
  h = activation_ == "quick_gelu" ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return linear(fc2, h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipTextConfig& config) {
  auto norm_options = torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps);
  self_attn = register_module("self_attn", ClipAttention(config.hidden_size, config.num_attention_heads));
  layer_norm1 = register_module("layer_norm1", torch::nn::LayerNorm(norm_options));
  mlp = register_module("mlp", ClipMlp(config.hidden_size, config.intermediate_size, config.hidden_act));
  layer_norm2 = register_module("layer_norm2", torch::nn::LayerNorm(norm_options));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& causal_mask) {
  torch::Tensor h = x + self_attn(layer_norm1(x), causal_mask);
  return h + mlp(layer_norm2(h));
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipTextConfig& config) {
  token_embedding = register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(config.max_position_embeddings, config.hidden_size));
}

torch::Tensor ClipTextEmbeddingsImpl::forward(const torch::Tensor& input_ids) {
  const int64_t l = input_ids.size(1);
  torch::Tensor positions = torch::arange(l, torch::TensorOptions().dtype(torch::kInt64).device(input_ids.device()));
  return token_embedding(input_ids) + position_embedding(positions).unsqueeze(0);
}

ClipEncoderImpl::ClipEncoderImpl(const ClipTextConfig& config) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) layers->push_back(ClipEncoderLayer(config));
}

ClipTextModelImpl::ClipTextModelImpl(const ClipTextConfig& config) : config_(config) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(config));
  encoder = register_module("encoder", ClipEncoder(config));
  final_layer_norm = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps)));
}

torch::Tensor ClipTextModelImpl::forward(const torch::Tensor& input_ids) {
  torch::Tensor h = embeddings(input_ids);  // [B, L, D]
  const int64_t l = input_ids.size(1);
  // Causal mask: position i attends to positions <= i. A large finite negative (not -inf) as the reference.
  torch::Tensor mask = torch::full({l, l}, std::numeric_limits<float>::lowest(),
                                   torch::TensorOptions().dtype(torch::kFloat32).device(h.device()))
                           .triu(1)
                           .to(h.scalar_type())
                           .view({1, 1, l, l});
  for (const auto& layer : *encoder->layers) h = layer->as<ClipEncoderLayer>()->forward(h, mask);
  return final_layer_norm(h);
}

ClipTextModel load_clip_text_model(const std::filesystem::path& dir, torch::Dtype dtype) {
  require_directory(dir, "text encoder folder");
  require_file(dir / "config.json", "text encoder config");
  ClipTextConfig config =
      ClipTextConfig::from_json(read_json_file(dir / "config.json"), (dir / "config.json").string());
  ClipTextModel model(config);
  std::filesystem::path weights = find_component_weights(dir, "model");
  load_state_dict_strict(*model, convert_clip_text_keys(read_safetensors(weights).tensors), weights.string());
  model->to(dtype);
  model->eval();
  return model;
}

}  // namespace fairdiff
