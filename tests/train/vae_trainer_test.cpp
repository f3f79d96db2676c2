// train-vae on a tiny VAE and a handful of synthetic images (CPU, seconds): the output is a loadable vae/
// folder with a measured scaling factor, the loss falls, an interrupted run resumes to the same weights, and bad
// inputs fail before training.
#include "train/vae_trainer.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/safetensors.h"
#include "diffusion/model_init.h"
#include "test_paths.h"

namespace fairdiff::train {
namespace {
namespace fs = std::filesystem;

// Eight 16x16 images of smooth colour gradients, and a CSV naming them (one twice).
fs::path write_images(const std::string& name) {
  const fs::path dir = test::scratch_dir(name);
  std::string csv = "file,caption\n";
  for (int k = 0; k < 8; ++k) {
    Image image;
    image.width = image.height = 16;
    image.channels = 3;
    image.pixels.resize(16 * 16 * 3);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        image.at(y, x, 0) = static_cast<uint8_t>(16 * x);
        image.at(y, x, 1) = static_cast<uint8_t>(16 * y);
        image.at(y, x, 2) = static_cast<uint8_t>(30 * k);
      }
    write_png(dir / ("img" + std::to_string(k) + ".png"), image);
    csv += "img" + std::to_string(k) + ".png,a photo\n";
  }
  csv += "img0.png,again\n";
  write_file_atomic(dir / "data.csv", csv);
  return dir;
}

VaeTrainConfig tiny_config(const fs::path& dir, const std::string& out) {
  VaeTrainConfig c;
  c.data = dir / "data.csv";
  c.out = dir / out;
  c.arch = "tiny-sd2";
  c.vae = architecture("tiny-sd2").vae;  // f = 2
  c.resolution = 16;
  c.batch_size = 4;
  c.max_train_steps = 6;
  c.lr_warmup_steps = 1;
  c.learning_rate = 1e-3;
  c.checkpointing_steps = 0;
  c.eval_images = 8;
  return c;
}

TEST(VaeTrainerTest, WritesALoadableVaeWithItsScale) {
  const fs::path dir = write_images("vae_trainer_output");
  EXPECT_EQ(vae_training_files(dir / "data.csv").size(), 8u);  // the repeated file counts once
  const VaeTrainResult result = run_vae_training(tiny_config(dir, "vae"));
  EXPECT_EQ(result.images, 8);
  EXPECT_EQ(result.steps_run, 6);
  EXPECT_GT(result.scaling_factor, 0.0);
  EXPECT_GT(result.psnr, 0.0);
  const AutoencoderKL vae = load_vae(dir / "vae", torch::kFloat32);
  EXPECT_NEAR(vae->config().scaling_factor, result.scaling_factor, 1e-9);
  EXPECT_EQ(vae->config().sample_size, 16);
  EXPECT_TRUE(fs::exists(dir / "vae" / "vae_training.json"));
  EXPECT_FALSE(fs::exists(dir / "vae.work"));
  // A second run onto an existing folder is refused.
  EXPECT_THROW(run_vae_training(tiny_config(dir, "vae")), InputError);
}

TEST(VaeTrainerTest, ResumeGivesTheUninterruptedWeights) {
  const fs::path dir = write_images("vae_trainer_resume");
  run_vae_training(tiny_config(dir, "straight"));
  VaeTrainConfig c = tiny_config(dir, "resumed");
  setenv("FAIRDIFF_TRAIN_VAE_INTERRUPT_AFTER_STEP", "3", 1);
  EXPECT_THROW(run_vae_training(c), InterruptedError);
  unsetenv("FAIRDIFF_TRAIN_VAE_INTERRUPT_AFTER_STEP");
  set_interrupt_requested(false);
  EXPECT_THROW(run_vae_training(c), InputError);  // unfinished work without --resume
  c.resume = true;
  const VaeTrainResult resumed = run_vae_training(c);
  EXPECT_EQ(resumed.resumed_from, 3);
  EXPECT_EQ(resumed.steps_run, 3);
  const auto a = read_safetensors(dir / "straight" / "diffusion_pytorch_model.safetensors").tensors;
  const auto b = read_safetensors(dir / "resumed" / "diffusion_pytorch_model.safetensors").tensors;
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

TEST(VaeTrainerTest, BadInputsFail) {
  const fs::path dir = write_images("vae_trainer_errors");
  VaeTrainConfig c = tiny_config(dir, "vae");
  c.resolution = 15;  // not a multiple of the scale factor
  EXPECT_THROW(validate_vae_flags(c), UsageError);
  c = tiny_config(dir, "vae");
  c.data = dir / "missing.csv";
  EXPECT_THROW(run_vae_training(c), InputError);
  write_file_atomic(dir / "bad.csv", "file\nnot_there.png\n");
  c.data = dir / "bad.csv";
  EXPECT_THROW(run_vae_training(c), InputError);
  c = tiny_config(dir, "vae");
  c.resolution = 32;  // larger than the images
  EXPECT_THROW(run_vae_training(c), InputError);
}

}  // namespace
}  // namespace fairdiff::train
