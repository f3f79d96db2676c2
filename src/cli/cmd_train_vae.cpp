// fairdiff train-vae: from-scratch AutoencoderKL training, written as a diffusers `vae/` component.
#include <cstdio>

#include "cli/args.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "diffusion/model_init.h"
#include "train/vae_trainer.h"

namespace fairdiff::cli {
namespace {

int run_train_vae(const std::vector<std::string>& argv) {
  train::VaeTrainConfig c;
  std::string weights_dtype = "fp32";
  OptionTable table;
  table.value("data", "DIR|CSV", "training images", c.data)
      .value("out", "DIR", "the vae folder to write (must not exist)", c.out)
      .choice("arch", "architecture whose VAE config is trained (model init's names)", c.arch, architecture_names())
      .value("init", "DIR", "start from this vae folder's weights (same architecture)", c.init)
      .value("resolution", "PX", "training size: resize + center crop", c.resolution, 8, 4096)
      .value("batch-size", "N", "images per step", c.batch_size, 1, 65536)
      .value("max-train-steps", "N", "optimizer steps", c.max_train_steps, 1, 100000000)
      .value("learning-rate", "LR", "peak learning rate", c.learning_rate, 1e-12, 10.0)
      .value("lr-warmup-steps", "N", "linear warm-up, then cosine to 0", c.lr_warmup_steps, 0, 100000000)
      .value("kl-weight", "W", "weight of the mean KL per latent element", c.kl_weight, 0.0, 1e6)
      .value("l2-weight", "W", "weight of an added mean squared error", c.l2_weight, 0.0, 1e6)
      .value("weight-decay", "W", "AdamW weight decay", c.weight_decay, 0.0, 10.0)
      .value("max-grad-norm", "N", "gradient clipping norm", c.max_grad_norm, 1e-12, 1e12)
      .flag("no-flip", "no random horizontal flips", c.flip, "flip", false)
      .value("eval-images", "N", "first images used for PSNR and the latent scale", c.eval_images, 1, 100000000)
      .value("seed", "S", "random seed", c.seed, 0, (1LL << 53))
      .value("checkpointing-steps", "N", "save a checkpoint every N steps (0: only on Ctrl-C)", c.checkpointing_steps,
             0, 100000000)
      .flag("resume", "continue from the checkpoint in OUT.work", c.resume)
      .choice("weights-dtype", "how the written weights are stored", weights_dtype, {"fp32", "fp16"})
      .value("device", "DEV", "auto (CUDA when present), cpu, cuda or cuda:N", c.device);
  Args args(
      "train-vae",
      "Train an AutoencoderKL from scratch on images (a folder, or a CSV with a `file` column): L1 (+ --l2-weight\n"
      "L2) reconstruction of a posterior sample plus --kl-weight KL, AdamW with warm-up + cosine decay, flips.\n"
      "Writes OUT/config.json (with the measured scaling_factor) and OUT/diffusion_pytorch_model.safetensors:\n"
      "a model's vae/ folder. Checkpoints go to OUT.work; --resume continues.",
      table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  c.vae = architecture(c.arch).vae;
  c.weights_dtype = weights_dtype == "fp16" ? torch::kFloat16 : torch::kFloat32;
  table.with_flag_names([&] { train::validate_vae_flags(c); });

  install_interrupt_handler();
  const train::VaeTrainResult r = table.with_flag_names([&] { return train::run_vae_training(c); });
  std::printf(
      "wrote %s: %lld images, %lld steps (%lld in this run, %.1f s), final loss %.5f, PSNR %.2f dB, mean |error| "
      "%.2f/255, scaling_factor %.5f\n",
      r.out.string().c_str(), static_cast<long long>(r.images), static_cast<long long>(c.max_train_steps),
      static_cast<long long>(r.steps_run), r.seconds, r.final_loss, r.psnr, r.mean_abs_error, r.scaling_factor);
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("train-vae", "from-scratch AutoencoderKL training (a model's vae/ folder), resumable",
                    run_train_vae);

}  // namespace fairdiff::cli
