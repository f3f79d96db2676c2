// CLIPTextModel (transformers), the text encoder of Stable Diffusion 1.x (quick_gelu, 12 layers x 768) and
// 2.x (gelu, 23 layers x 1024). Module names equal the checkpoint keys (without "text_model.").
//
// Shape legend: B batch, L tokens (77), D hidden_size, H heads, Dh = D / H, F intermediate_size.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "core/json.h"

namespace fairdiff {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";  // or "gelu"
  double layer_norm_eps = 1e-5;

  static ClipTextConfig from_json(const Json& json, const std::string& where);
  Json to_json() const;
};

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t hidden_size, int64_t num_heads);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  ClipMlpImpl(int64_t hidden_size, int64_t intermediate_size, std::string activation);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& causal_mask);

  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipAttention self_attn{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipTextEmbeddingsImpl(const ClipTextConfig& config);
  torch::Tensor forward(const torch::Tensor& input_ids);

  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderImpl(const ClipTextConfig& config);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);
  // input_ids [B, L] int64 -> last_hidden_state [B, L, D] (after the final layer norm).
  torch::Tensor forward(const torch::Tensor& input_ids);
  const ClipTextConfig& config() const { return config_; }

  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};

 private:
  ClipTextConfig config_;
};
TORCH_MODULE(ClipTextModel);

// Builds the model from `dir`/config.json and loads `dir`/model.safetensors strictly, in `dtype`.
ClipTextModel load_clip_text_model(const std::filesystem::path& dir, torch::Dtype dtype);

}  // namespace fairdiff
