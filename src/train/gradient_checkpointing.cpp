#include "train/gradient_checkpointing.h"

#include <algorithm>
#include <functional>
#include <optional>

namespace fairdiff::train {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One checkpointed piece of the network: inputs -> outputs, re-runnable.
struct Segment : public torch::CustomClassHolder {
  explicit Segment(std::function<variable_list(const variable_list&)> fn) : run(std::move(fn)) {}
  std::function<variable_list(const variable_list&)> run;
};

// Runs the segment without recording a graph; in backward, re-runs it on the saved inputs with the graph on
// and back-propagates through that (parameter gradients accumulate as usual; input gradients are returned).
// The segment rides in the node's saved data, so it lives exactly as long as the graph.
struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  static variable_list forward(AutogradContext* ctx, const c10::intrusive_ptr<Segment>& segment,
                               at::TensorList inputs) {
    variable_list list = inputs.vec();
    ctx->save_for_backward(list);
    ctx->saved_data["segment"] = c10::IValue::make_capsule(segment);
    return segment->run(list);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto segment = c10::static_intrusive_pointer_cast<Segment>(ctx->saved_data["segment"].toCapsule());
    variable_list inputs;
    for (const auto& t : ctx->get_saved_variables()) {
      inputs.push_back(t.defined() ? t.detach().requires_grad_(t.requires_grad()) : t);
    }
    variable_list outputs;
    {
      torch::AutoGradMode enable(true);
      outputs = segment->run(inputs);
    }
    variable_list roots, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    variable_list input_grads{torch::Tensor()};  // the segment argument
    for (const auto& t : inputs) input_grads.push_back(t.defined() && t.requires_grad() ? t.grad() : torch::Tensor());
    return input_grads;
  }
};

variable_list run(std::function<variable_list(const variable_list&)> fn, const variable_list& inputs) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  const bool any_input_requires_grad = std::any_of(
      inputs.begin(), inputs.end(), [](const torch::Tensor& t) { return t.defined() && t.requires_grad(); });
  if (any_input_requires_grad) {
    // Passed as a TensorList so that autograd tracks every element as an input.
    return CheckpointFunction::apply(c10::make_intrusive<Segment>(std::move(fn)), at::TensorList(inputs));
  }
  // No input requires grad (LoRA: the frozen layers before the segment), yet the segment's own trainable
  // weights do. Autograd marks a function's outputs as requiring grad only through its inputs, so an anchor
  // input that requires grad (and receives none) keeps the segment in the graph; the segment never sees it.
  variable_list anchored = inputs;
  anchored.push_back(torch::zeros({}, torch::TensorOptions().requires_grad(true)));
  const size_t count = inputs.size();
  auto strip = [fn = std::move(fn), count](const variable_list& in) {
    return fn(variable_list(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(count)));
  };
  return CheckpointFunction::apply(c10::make_intrusive<Segment>(std::move(strip)), at::TensorList(anchored));
}

}  // namespace

torch::Tensor unet_forward(UNet2DConditionModelImpl& unet, const torch::Tensor& sample, const torch::Tensor& timesteps,
                           const torch::Tensor& context, bool gradient_checkpointing) {
  if (!gradient_checkpointing) return unet.forward(sample, timesteps, context);
  // The same computation as UNet2DConditionModelImpl::forward, one segment per block.
  const auto& config = unet.config();
  const int64_t b = sample.size(0);
  torch::Tensor t = timesteps.dim() == 0 ? timesteps.reshape({1}) : timesteps;
  t = t.to(sample.device()).expand({b});
  torch::Tensor temb = timestep_embedding(t, config.block_out_channels[0], config.flip_sin_to_cos, config.freq_shift);
  temb = unet.time_embedding(temb.to(sample.scalar_type()));  // [B, T]
  const int64_t factor = int64_t{1} << (config.block_out_channels.size() - 1);
  const bool explicit_upsample_size = sample.size(2) % factor != 0 || sample.size(3) % factor != 0;

  torch::Tensor x = unet.conv_in(sample);
  std::vector<torch::Tensor> skips{x};
  for (const auto& module : *unet.down_blocks) {
    auto* block = module->as<UNetDownBlock>();
    // Outputs: the block's skip states; the last one is also the block's output.
    variable_list new_skips = run(
        [block](const variable_list& in) {
          std::vector<torch::Tensor> out;
          block->forward(in[0], in[1], in[2], out);
          return out;
        },
        {x, temb, context});
    skips.insert(skips.end(), new_skips.begin(), new_skips.end());
    x = skips.back();
  }
  auto* mid = unet.mid_block.get();
  x = run([mid](const variable_list& in) { return variable_list{mid->forward(in[0], in[1], in[2])}; },
          {x, temb, context})[0];
  for (size_t i = 0; i < unet.up_blocks->size(); ++i) {
    auto* up = unet.up_blocks[i]->as<UNetUpBlock>();
    const auto layers = static_cast<size_t>(up->num_layers());
    std::optional<std::vector<int64_t>> upsample_size;
    if (i + 1 != unet.up_blocks->size() && explicit_upsample_size) {
      const torch::Tensor& next_skip = skips[skips.size() - layers - 1];
      upsample_size = std::vector<int64_t>{next_skip.size(2), next_skip.size(3)};
    }
    // Inputs: x, temb, context, then the skip states this block consumes (in stack order).
    variable_list inputs{x, temb, context};
    inputs.insert(inputs.end(), skips.end() - static_cast<std::ptrdiff_t>(layers), skips.end());
    skips.resize(skips.size() - layers);
    x = run(
        [up, upsample_size](const variable_list& in) {
          std::vector<torch::Tensor> block_skips(in.begin() + 3, in.end());
          return variable_list{up->forward(in[0], block_skips, in[1], in[2], upsample_size)};
        },
        inputs)[0];
  }
  return unet.conv_out(torch::silu(unet.conv_norm_out(x)));
}

}  // namespace fairdiff::train
