#include "faces/fairface_resnet34.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "core/state_dict.h"
#include "faces/face_crop.h"
#include "faces/profile_factories.h"
#include "faces/taxonomy.h"

namespace fairdiff {

namespace nn = torch::nn;
namespace fs = std::filesystem;

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
  bn1 = register_module("bn1", nn::BatchNorm2d(out));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
  bn2 = register_module("bn2", nn::BatchNorm2d(out));
  if (stride != 1 || in != out) {
    downsample = register_module(
        "downsample",
        nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)), nn::BatchNorm2d(out)));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = torch::relu(bn1->forward(conv1->forward(x)));
  y = bn2->forward(conv2->forward(y));
  return torch::relu(y + (downsample ? downsample->forward(x) : x));
}

FairFaceResNet34Impl::FairFaceResNet34Impl(ResNetConfig config) {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", nn::BatchNorm2d(64));
  int64_t in = 64;
  const int64_t widths[] = {64, 128, 256, 512};
  for (size_t l = 0; l < config.blocks.size(); ++l) {
    nn::Sequential layer;
    for (int b = 0; b < config.blocks[l]; ++b) {
      layer->push_back(BasicBlock(in, widths[l], b == 0 && l > 0 ? 2 : 1));
      in = widths[l];
    }
    layers_.push_back(register_module("layer" + std::to_string(l + 1), layer));
  }
  fc = register_module("fc", nn::Linear(in, config.num_outputs));
}

torch::Tensor FairFaceResNet34Impl::forward(torch::Tensor x) {
  x = torch::relu(bn1->forward(conv1->forward(x)));      // [N, 64, 112, 112]
  x = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});      // [N, 64, 56, 56]
  for (auto& layer : layers_) x = layer->forward(x);     // [N, 512, 7, 7]
  x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);  // [N, 512]
  return fc->forward(x);                                 // [N, 18]
}

TensorMap read_torch_state_dict(const fs::path& path) {
  if (!fs::is_regular_file(path)) throw InputError(path.string() + " does not exist (expected a state dict)");
  if (path.extension() == ".safetensors") return read_safetensors(path).tensors;
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K') {
    throw InputError(
        path.string() + " is not a torch.save zip file (PyTorch < 1.6 wrote a legacy format: " +
        "re-save it with python3 -c \"import torch; torch.save(dict(torch.load('OLD', map_location='cpu')), " +
        "'NEW.pt')\", or convert it to .safetensors)");
  }
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    // LibTorch's unpickler turns collections.OrderedDict (what model.state_dict() returns) into None.
    const std::string ordered = "OrderedDict";
    if (std::search(bytes.begin(), bytes.end(), ordered.begin(), ordered.end()) != bytes.end()) {
      throw InputError(path.string() + " holds a collections.OrderedDict, which LibTorch cannot unpickle: re-save " +
                       "it as a plain dict, python3 -c \"import torch; torch.save(dict(torch.load('" + path.string() +
                       "', map_location='cpu')), 'NEW.pt')\", or convert it to .safetensors");
    }
    throw InputError(path.string() + ": cannot unpickle the state dict: " + e.what_without_backtrace());
  }
  if (!value.isGenericDict()) throw InputError(path.string() + ": expected a dict of tensors (a state dict)");
  TensorMap tensors;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor()) {
      throw InputError(path.string() + ": the state dict holds a non-tensor entry");
    }
    std::string key = item.key().toStringRef();
    if (key.rfind("module.", 0) == 0) key = key.substr(7);  // saved from nn.DataParallel
    tensors[key] = item.value().toTensor();
  }
  return tensors;
}

torch::Tensor fairface_input(const FaceImage& image, const FaceBox& face) {
  torch::Tensor x = crop_square(image.pixels, face, 1.5f, 224) / 255.0f;  // [1, 224, 224, 3]
  x = x.permute({0, 3, 1, 2});                                            // [1, 3, 224, 224]
  const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  return ((x - mean) / std).contiguous();
}

FairFaceClassifier::FairFaceClassifier(const fs::path& weights) {
  load_state_dict_strict(*model_, read_torch_state_dict(weights), weights.string());
  model_->eval();
}

std::vector<AttributePrediction> FairFaceClassifier::predictions(const torch::Tensor& logits) {
  torch::Tensor l = logits.reshape({-1}).to(torch::kFloat);
  auto softmax = [&](int64_t start, int64_t count) {
    torch::Tensor p = torch::softmax(l.slice(0, start, start + count), 0).contiguous();
    return std::vector<float>(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
  };
  AttributePrediction race{"race", "fairface", race_labels(RaceTaxonomy::fairface7), softmax(0, 7), {}};
  AttributePrediction gender{"gender", "fairface", {"male", "female"}, softmax(7, 2), {}};
  AttributePrediction age{"age", "fairface", fairface_age_ranges(), softmax(9, 9), {}};
  float years = 0;
  for (size_t i = 0; i < 9; ++i)
    years += static_cast<float>(fairface_age_midpoint(age.labels[i])) * age.probabilities[i];
  age.years = years;
  return {gender, race, age};
}

std::vector<AttributePrediction> FairFaceClassifier::classify(const FaceImage& image, const FaceBox& face) {
  torch::NoGradGuard no_grad;
  return predictions(model_->forward(fairface_input(image, face)));
}

std::unique_ptr<AttributeClassifier> make_fairface_classifier(const fs::path& weights) {
  return std::make_unique<FairFaceClassifier>(weights);
}

}  // namespace fairdiff
