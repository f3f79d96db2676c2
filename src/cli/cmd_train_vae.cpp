// fairdiff train-vae: from-scratch AutoencoderKL training, written as a diffusers `vae/` component.
#include <cstdio>

#include "cli/args.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "diffusion/model_init.h"
#include "train/vae_trainer.h"

namespace fairdiff::cli {
namespace {

int run_train_vae(const std::vector<std::string>& argv) {
  Args args(
      "train-vae",
      "Train an AutoencoderKL from scratch on images (a folder, or a CSV with a `file` column): L1 (+ --l2-weight\n"
      "L2) reconstruction of a posterior sample plus --kl-weight KL, AdamW with warm-up + cosine decay, flips.\n"
      "Writes OUT/config.json (with the measured scaling_factor) and OUT/diffusion_pytorch_model.safetensors:\n"
      "a model's vae/ folder. Checkpoints go to OUT.work; --resume continues.",
      {{"data", "DIR|CSV", "training images"},
       {"out", "DIR", "the vae folder to write (must not exist)"},
       {"arch", "ARCH", "architecture whose VAE config is trained (model init's names; default builtin)"},
       {"init", "DIR", "start from this vae folder's weights (same architecture)"},
       {"resolution", "PX", "training size: resize + center crop (default 64)"},
       {"batch-size", "N", "images per step (default 64)"},
       {"max-train-steps", "N", "optimizer steps (default 2000)"},
       {"learning-rate", "LR", "peak learning rate (default 4e-4)"},
       {"lr-warmup-steps", "N", "linear warm-up, then cosine to 0 (default 100)"},
       {"kl-weight", "W", "weight of the mean KL per latent element (default 1e-6)"},
       {"l2-weight", "W", "weight of an added mean squared error (default 0)"},
       {"weight-decay", "W", "AdamW weight decay (default 0)"},
       {"max-grad-norm", "N", "gradient clipping norm (default 1.0)"},
       {"no-flip", "", "no random horizontal flips"},
       {"eval-images", "N", "first images used for PSNR and the latent scale (default 512)"},
       {"seed", "S", "random seed (default 0)"},
       {"checkpointing-steps", "N", "save a checkpoint every N steps (default 500; 0: only on Ctrl-C)"},
       {"resume", "", "continue from the checkpoint in OUT.work"},
       {"weights-dtype", "fp32|fp16", "how the written weights are stored (default fp32)"},
       {"device", "DEV", "cpu, cuda or cuda:N (default cpu)"}},
      argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  train::VaeTrainConfig c;
  c.data = args.require("data");
  c.out = args.require("out");
  c.arch = args.get_choice("arch", "builtin", architecture_names());
  c.vae = architecture(c.arch).vae;
  c.init = args.get("init", "");
  c.resolution = args.get_int("resolution", 64, 8, 4096);
  c.batch_size = args.get_int("batch-size", 64, 1, 65536);
  c.max_train_steps = args.get_int("max-train-steps", 2000, 1, 100000000);
  c.learning_rate = args.get_double("learning-rate", 4e-4, 1e-12, 10.0);
  c.lr_warmup_steps = args.get_int("lr-warmup-steps", 100, 0, 100000000);
  c.kl_weight = args.get_double("kl-weight", 1e-6, 0.0, 1e6);
  c.l2_weight = args.get_double("l2-weight", 0.0, 0.0, 1e6);
  c.weight_decay = args.get_double("weight-decay", 0.0, 0.0, 10.0);
  c.max_grad_norm = args.get_double("max-grad-norm", 1.0, 1e-12, 1e12);
  c.flip = !args.flag("no-flip");
  c.eval_images = args.get_int("eval-images", 512, 1, 100000000);
  c.seed = static_cast<uint64_t>(args.get_int("seed", 0, 0, (1LL << 53)));
  c.checkpointing_steps = args.get_int("checkpointing-steps", 500, 0, 100000000);
  c.resume = args.flag("resume");
  c.weights_dtype =
      args.get_choice("weights-dtype", "fp32", {"fp32", "fp16"}) == "fp16" ? torch::kFloat16 : torch::kFloat32;
  c.device = args.get("device", "cpu");
  train::validate_vae_flags(c);

  install_interrupt_handler();
  const train::VaeTrainResult r = train::run_vae_training(c);
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
