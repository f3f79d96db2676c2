#include "train/lora.h"

#include <map>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::train {
namespace {

const std::vector<std::string>& unet_targets() {
  static const std::vector<std::string> list = {".attn1.to_q", ".attn1.to_k", ".attn1.to_v", ".attn1.to_out.0",
                                                ".attn2.to_q", ".attn2.to_k", ".attn2.to_v", ".attn2.to_out.0"};
  return list;
}

const std::vector<std::string>& text_encoder_targets() {
  static const std::vector<std::string> list = {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj",
                                                ".self_attn.out_proj"};
  return list;
}

bool is_target(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& t : targets) {
    if (ends_with(name, t)) return true;
  }
  return false;
}

torch::nn::Module& component_module(StableDiffusionModel& model, LoraComponent component) {
  if (component == LoraComponent::unet) return *model.unet;
  return *model.text_encoder;
}

std::string underscored(std::string name) {
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

std::string list_some(const std::vector<std::string>& items) {
  std::vector<std::string> shown(items.begin(),
                                 items.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(items.size(), 5)));
  std::string text = join(shown, ", ");
  if (items.size() > shown.size()) text += " and " + std::to_string(items.size() - shown.size()) + " more";
  return text;
}

std::string shape_text(const torch::Tensor& t) {
  std::vector<std::string> dims;
  for (int64_t d : t.sizes()) dims.push_back(std::to_string(d));
  return "[" + join(dims, ", ") + "]";
}

}  // namespace

LoraAdapters::LoraAdapters(StableDiffusionModel& model, const LoraConfig& config, at::Generator generator)
    : config_(config), scale_(config.alpha / static_cast<double>(config.rank)) {
  if (config.rank < 1) throw FieldError("lora.rank", std::to_string(config.rank) + ": must be at least 1");
  std::vector<std::pair<LoraComponent, const std::vector<std::string>*>> components{
      {LoraComponent::unet, &unet_targets()}};
  if (config.text_encoder) components.emplace_back(LoraComponent::text_encoder, &text_encoder_targets());
  for (const auto& [component, targets] : components) {
    for (const auto& item : component_module(model, component).named_modules()) {
      if (!is_target(item.key(), *targets)) continue;
      auto* linear = item.value()->as<torch::nn::Linear>();
      if (!linear) continue;
      const int64_t out = linear->weight.size(0), in = linear->weight.size(1);
      const auto options = linear->weight.options().dtype(torch::kFloat32).requires_grad(false);
      Adapter a{component, item.key(), linear, linear->weight, {}, {}};
      // PEFT's "gaussian" initialisation (diffusers' DreamBooth LoRA trainer): down ~ N(0, 1/rank), up = 0.
      torch::Tensor down =
          torch::randn({config.rank, in}, generator, torch::kFloat32) / static_cast<double>(config.rank);
      a.down = down.to(options).requires_grad_(true);
      a.up = torch::zeros({out, config.rank}, options).requires_grad_(true);
      adapters_.push_back(std::move(a));
    }
  }
  if (adapters_.empty()) throw UnsupportedError("the model has no attention projections to adapt with LoRA");
}

LoraAdapters::~LoraAdapters() {
  restore();
}

NamedTensors LoraAdapters::trainable() const {
  NamedTensors out;
  for (const auto& a : adapters_) {
    out.emplace_back(lora_key_name(a.component, a.module, LoraPart::down), a.down);
    out.emplace_back(lora_key_name(a.component, a.module, LoraPart::up), a.up);
  }
  return out;
}

void LoraAdapters::refresh() {
  for (auto& a : adapters_) a.linear->weight = a.base + torch::mm(a.up, a.down) * scale_;  // [out, in]
}

void LoraAdapters::restore() {
  for (auto& a : adapters_) a.linear->weight = a.base;
}

TensorMap LoraAdapters::export_weights(const TensorMap& master) const {
  TensorMap out;
  for (const auto& a : adapters_) {
    const std::string down = lora_key_name(a.component, a.module, LoraPart::down);
    const std::string up = lora_key_name(a.component, a.module, LoraPart::up);
    out[down] = master.at(down).to(torch::kCPU, torch::kFloat32).contiguous();
    out[up] = (master.at(up).to(torch::kCPU, torch::kFloat32) * scale_).contiguous();
  }
  return out;
}

size_t apply_lora(StableDiffusionModel& model, const std::filesystem::path& file, double scale) {
  const std::string source = "LoRA file " + file.string();
  SafetensorsFile lora = read_safetensors(file);
  struct Entry {
    torch::Tensor down, up, alpha;
  };
  std::map<std::pair<LoraComponent, std::string>, Entry> entries;
  std::map<std::pair<LoraComponent, std::string>, bool> entry_underscored;
  std::vector<std::string> unknown;
  for (const auto& [key, tensor] : lora.tensors) {
    auto parsed = parse_lora_key(key);
    if (!parsed) {
      unknown.push_back(key);
      continue;
    }
    Entry& e = entries[{parsed->component, parsed->module}];
    entry_underscored[{parsed->component, parsed->module}] = parsed->underscored;
    (parsed->part == LoraPart::down ? e.down : parsed->part == LoraPart::up ? e.up : e.alpha) = tensor;
  }
  if (!unknown.empty()) {
    throw InputError(source +
                     ": keys that are not LoRA weights of a known scheme (expected diffusers "
                     "'unet.<module>.lora.down.weight', PEFT '<module>.lora_A.weight' or kohya "
                     "'lora_unet_<module>.lora_down.weight'): " +
                     list_some(unknown));
  }
  if (entries.empty()) throw InputError(source + " holds no LoRA weights");

  std::map<LoraComponent, std::map<std::string, std::shared_ptr<torch::nn::Module>>> modules, modules_underscored;
  for (LoraComponent c : {LoraComponent::unet, LoraComponent::text_encoder}) {
    for (const auto& item : component_module(model, c).named_modules()) {
      modules[c][item.key()] = item.value();
      modules_underscored[c][underscored(item.key())] = item.value();
    }
  }
  std::vector<std::pair<torch::Tensor, torch::Tensor>> updates;  // (weight, delta)
  std::vector<std::string> missing, misfit;
  for (const auto& [id, e] : entries) {
    const auto& [component, module] = id;
    const std::string label = component_name(component) + " module '" + module + "'";
    auto& table = entry_underscored[id] ? modules_underscored[component] : modules[component];
    auto it = table.find(module);
    if (it == table.end()) {
      missing.push_back(label);
      continue;
    }
    if (!e.down.defined() || !e.up.defined()) {
      throw InputError(source + ": " + label + " has only one of its two LoRA factors (down and up)");
    }
    const auto params = it->second->named_parameters(false);
    const torch::Tensor* found = params.find("weight");
    if (!found || (found->dim() != 2 && found->dim() != 4)) {
      misfit.push_back(label + " is not a linear or convolution layer");
      continue;
    }
    const torch::Tensor weight_tensor = *found;  // shares the parameter's storage
    const torch::Tensor* weight = &weight_tensor;
    const torch::Tensor down = e.down.to(torch::kFloat32).flatten(1);  // [rank, in * k * k]
    const torch::Tensor up = e.up.to(torch::kFloat32).flatten(1);      // [out, rank]
    if (up.size(1) != down.size(0) || up.size(0) != weight->size(0) ||
        down.size(1) * weight->size(0) != weight->numel()) {
      misfit.push_back(label + ": weight " + shape_text(*weight) + ", LoRA down " + shape_text(e.down) + " up " +
                       shape_text(e.up));
      continue;
    }
    double factor = scale;
    if (e.alpha.defined()) factor *= e.alpha.to(torch::kFloat64).item<double>() / static_cast<double>(down.size(0));
    updates.emplace_back(weight_tensor, (torch::mm(up, down) * factor).view(weight->sizes()));
  }
  if (!missing.empty()) {
    throw InputError(source + " adapts layers this model does not have (a LoRA trained for another architecture?): " +
                     list_some(missing));
  }
  if (!misfit.empty()) {
    throw InputError(source + " does not fit this model's layer shapes (a LoRA trained for another architecture?): " +
                     list_some(misfit));
  }
  torch::NoGradGuard no_grad;
  for (auto& [weight, delta] : updates) {
    weight.copy_((weight.to(torch::kFloat32) + delta.to(weight.device())).to(weight.scalar_type()));
  }
  return updates.size();
}

}  // namespace fairdiff::train
