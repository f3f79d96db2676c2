#include "train/dreambooth_loss.h"

#include "core/error.h"
#include "train/gradient_checkpointing.h"

namespace fairdiff::train {

torch::Tensor training_target(const Scheduler& noise_scheduler, const DreamBoothBatch& batch) {
  const std::string& type = noise_scheduler.config().prediction_type;
  if (type == "epsilon") return batch.noise;
  if (type == "v_prediction") return noise_scheduler.velocity(batch.latents, batch.noise, batch.timesteps);
  throw UnsupportedError("the model's scheduler has prediction_type '" + type +
                         "'; fine-tuning supports epsilon and v_prediction");
}

DreamBoothUNetInputs dreambooth_unet_inputs(const Scheduler& noise_scheduler, const DreamBoothBatch& batch,
                                            bool channels_last) {
  const int64_t b = batch.latents.size(0);
  if (batch.num_instance < 1 || batch.num_instance > b) {
    throw std::invalid_argument("dreambooth_loss: num_instance must be in 1..batch size");
  }
  DreamBoothUNetInputs inputs;
  inputs.noisy = noise_scheduler.add_noise(batch.latents, batch.noise, batch.timesteps);  // [B, Cl, h, w]
  if (channels_last) inputs.noisy = inputs.noisy.contiguous(torch::MemoryFormat::ChannelsLast);
  inputs.timesteps = batch.timesteps;
  inputs.context = batch.context;
  inputs.target = training_target(noise_scheduler, batch).to(torch::kFloat32);
  inputs.num_instance = batch.num_instance;
  return inputs;
}

DreamBoothLoss dreambooth_loss(UNet2DConditionModelImpl& unet, const DreamBoothUNetInputs& inputs,
                               const DreamBoothLossOptions& options) {
  const int64_t b = inputs.noisy.size(0);
  const auto dtype = unet.conv_in->weight.scalar_type();
  torch::Tensor pred = unet_forward(unet, inputs.noisy.to(dtype), inputs.timesteps, inputs.context.to(dtype),
                                    options.gradient_checkpointing)
                           .to(torch::kFloat32);
  DreamBoothLoss loss;
  const int64_t n = inputs.num_instance;
  loss.instance = torch::mse_loss(pred.narrow(0, 0, n), inputs.target.narrow(0, 0, n));
  loss.total = loss.instance;
  if (n < b) {
    loss.prior = torch::mse_loss(pred.narrow(0, n, b - n), inputs.target.narrow(0, n, b - n));
    loss.total = loss.instance + options.prior_loss_weight * loss.prior;
  }
  return loss;
}

DreamBoothLoss dreambooth_loss(UNet2DConditionModelImpl& unet, const Scheduler& noise_scheduler,
                               const DreamBoothBatch& batch, const DreamBoothLossOptions& options) {
  return dreambooth_loss(unet, dreambooth_unet_inputs(noise_scheduler, batch, unet.conv_in->weight.is_cuda()), options);
}

}  // namespace fairdiff::train
