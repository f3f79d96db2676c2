// run_finetune in process on the tiny fixture model: prior preservation with generated class images, the
// output loads and generates; LoRA output applies; interrupt + resume gives bit-identical weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/attention.h"
#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/safetensors.h"
#include "diffusion/stable_diffusion.h"
#include "test_paths.h"
#include "train/dreambooth_trainer.h"
#include "train/model_output.h"

namespace fairdiff::train {
namespace {

namespace fs = std::filesystem;

FinetuneConfig tiny_config(const std::string& name) {
  const fs::path dir = test::scratch_dir(name);
  fs::create_directories(dir / "instance");
  for (int i = 0; i < 2; ++i) {
    Image image{36, 34, 3, std::vector<uint8_t>(36 * 34 * 3)};
    for (size_t k = 0; k < image.pixels.size(); ++k) image.pixels[k] = static_cast<uint8_t>((k * (7 + i)) % 251);
    write_png(dir / "instance" / ("i" + std::to_string(i) + ".png"), image);
  }
  FinetuneConfig c;
  c.model_dir = test::fixtures_dir() / "tiny-sd2";
  c.instance_data = dir / "instance";
  c.instance_prompt = "a photo of sks doctor";
  c.out = dir / "out";
  c.with_prior_preservation = true;
  c.class_prompt = "a photo of a doctor";
  c.class_data = dir / "classes";
  c.num_class_images = 2;
  c.class_inference_steps = 2;
  c.resolution = 32;
  c.max_train_steps = 4;
  c.lr.base_lr = 1e-3;
  c.lr.total_steps = 4;
  c.checkpointing_steps = 2;
  return c;
}

TEST(FinetuneRun, FullModelOutputLoadsAndGenerates) {
  set_fused_attention_enabled(false);
  FinetuneConfig c = tiny_config("run_full");
  FinetuneResult r = run_finetune(c);
  EXPECT_EQ(r.class_images_generated, 2);
  EXPECT_EQ(r.steps_run, 4);
  EXPECT_FALSE(fs::exists(c.work_dir()));
  StableDiffusionModel tuned = load_stable_diffusion(c.out, torch::kCPU, torch::kFloat32);
  StableDiffusionPipeline pipeline(tuned);
  GenerationRequest g;
  g.prompts = {"a photo of sks doctor"};
  g.seeds = {1};
  g.steps = 2;
  torch::Tensor image = pipeline.generate(g);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{1, 32, 32, 3}));
  EXPECT_TRUE(torch::isfinite(image).all().item<bool>());
}

TEST(FinetuneRun, LoraOutputAppliesToTheBaseModel) {
  set_fused_attention_enabled(false);
  FinetuneConfig c = tiny_config("run_lora");
  c.use_lora = true;
  c.lora.rank = 2;
  c.lora.alpha = 2;
  run_finetune(c);
  StableDiffusionModel model = load_stable_diffusion(c.model_dir, torch::kCPU, torch::kFloat32);
  const torch::Tensor before =
      model.unet->named_parameters()["mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"].clone();
  EXPECT_EQ(apply_lora(model, c.out / kLoraWeightsName, 1.0), 48u);
  const torch::Tensor after =
      model.unet->named_parameters()["mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight"];
  EXPECT_GT((after - before).abs().max().item<double>(), 0.0);
}

// The latent cache (every image encoded once, in fixed chunks) and encoding each step's batch give the same
// training up to float rounding: the VAE is frozen and deterministic.
TEST(FinetuneRun, CachedAndPerStepLatentsTrainTheSame) {
  set_fused_attention_enabled(false);
  FinetuneConfig cached = tiny_config("run_cached_latents");
  const FinetuneResult a = run_finetune(cached);
  FinetuneConfig per_step = tiny_config("run_per_step_latents");
  per_step.cache_latents = false;
  per_step.class_data = cached.class_data;
  per_step.instance_data = cached.instance_data;
  const FinetuneResult b = run_finetune(per_step);
  EXPECT_GT(a.final_loss, 0.0);
  // Every step's losses and gradient norm agree to float rounding (the weights themselves may differ by up to
  // lr per step where AdamW normalises a near-zero gradient, so they are not compared).
  const CsvTable ca = read_csv(cached.out / "loss_curve.csv"), cb = read_csv(per_step.out / "loss_curve.csv");
  ASSERT_EQ(ca.rows.size(), 4u);
  ASSERT_EQ(cb.rows.size(), 4u);
  for (const char* column : {"loss", "loss_instance", "loss_prior", "grad_norm"}) {
    const int k = ca.require_column(column);
    for (size_t i = 0; i < ca.rows.size(); ++i) {
      const double x = std::stod(ca.rows[i].fields[static_cast<size_t>(k)]);
      const double y = std::stod(cb.rows[i].fields[static_cast<size_t>(k)]);
      EXPECT_NEAR(x, y, 1e-5 * std::abs(x)) << column << " at step " << i + 1;
    }
  }
}

// A work folder without a checkpoint (a run that failed before its first one) is not "an unfinished run": the
// next run starts afresh. A file finetune did not write stops it, named, and is kept.
TEST(FinetuneRun, AWorkFolderWithoutCheckpointDoesNotBlockTheNextRun) {
  set_fused_attention_enabled(false);
  FinetuneConfig c = tiny_config("run_failed_before_checkpoint");
  c.max_train_steps = 1;
  c.lr.total_steps = 1;
  fs::create_directories(c.work_dir() / "checkpoint-2.partial");
  write_file_atomic(c.work_dir() / "settings.json", "{}");
  EXPECT_EQ(run_finetune(c).steps_run, 1);
  EXPECT_TRUE(fs::exists(c.out / "finetune_settings.json"));

  FinetuneConfig d = tiny_config("run_foreign_work_folder");
  fs::create_directories(d.work_dir());
  write_file_atomic(d.work_dir() / "notes.txt", "mine");
  try {
    run_finetune(d);
    FAIL() << "a foreign file in the work folder must stop the run";
  } catch (const FieldInputError& e) {
    EXPECT_NE(std::string(e.what()).find("holds notes.txt, which finetune did not write"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_file(d.work_dir() / "notes.txt"), "mine");
}

TEST(FinetuneRun, InterruptAndResumeIsBitIdentical) {
  set_fused_attention_enabled(false);
  FinetuneConfig straight = tiny_config("run_straight");
  straight.gradient_accumulation_steps = 2;
  straight.train_text_encoder = true;
  straight.lr.name = "polynomial";
  straight.lr.warmup_steps = 1;
  run_finetune(straight);

  FinetuneConfig resumed = tiny_config("run_resumed");
  resumed.gradient_accumulation_steps = 2;
  resumed.train_text_encoder = true;
  resumed.lr.name = "polynomial";
  resumed.lr.warmup_steps = 1;
  resumed.class_data = straight.class_data;  // the same class images
  resumed.instance_data = straight.instance_data;
  setenv("FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP", "3", 1);
  EXPECT_THROW(run_finetune(resumed), InterruptedError);
  unsetenv("FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP");
  set_interrupt_requested(false);
  EXPECT_FALSE(fs::exists(resumed.out));
  EXPECT_TRUE(fs::exists(resumed.work_dir() / "checkpoint-3"));
  EXPECT_THROW(run_finetune(resumed), UsageError) << "an unfinished run needs --resume";
  resumed.resume = true;
  FinetuneResult r = run_finetune(resumed);
  EXPECT_EQ(r.resumed_from, 3);
  EXPECT_EQ(r.steps_run, 1);
  for (const char* f :
       {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "loss_curve.csv"}) {
    EXPECT_TRUE(read_file(straight.out / f) == read_file(resumed.out / f)) << f;
  }
}

}  // namespace
}  // namespace fairdiff::train
