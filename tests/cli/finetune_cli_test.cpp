// `fairdiff finetune` end to end on the tiny fixture model: full fine-tuning with prior preservation then
// generation from the output, LoRA, kill-and-resume to bit-identical weights, and bad inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "core/csv.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

std::string exe() {
  return FAIRDIFF_EXE;
}
std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

// A writable copy of the tiny model (../shared is read-only) and a few instance images in the scratch folder.
struct Workspace {
  fs::path dir, model, instance, classes;
};

Workspace make_workspace(const std::string& name, int images = 2, int width = 40, int height = 36) {
  Workspace w;
  w.dir = test::scratch_dir(name);
  w.model = w.dir / "model";
  fs::copy(test::fixtures_dir() / "tiny-sd1", w.model, fs::copy_options::recursive);
  fs::remove(w.model / "reference.safetensors");
  w.instance = w.dir / "instance";
  w.classes = w.dir / "classes";
  fs::create_directories(w.instance);
  for (int i = 0; i < images; ++i) {
    Image image{width, height, 3, std::vector<uint8_t>(static_cast<size_t>(width * height * 3))};
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        image.at(y, x, 0) = static_cast<uint8_t>((x * 6 + i * 40) % 256);
        image.at(y, x, 1) = static_cast<uint8_t>((y * 7) % 256);
        image.at(y, x, 2) = static_cast<uint8_t>(((x + y) * 3 + i * 90) % 256);
      }
    }
    write_png(w.instance / ("person-" + std::to_string(i) + ".png"), image);
  }
  return w;
}

std::string base_flags(const Workspace& w) {
  return " --model " + q(w.model) + " --instance-data " + q(w.instance) +
         " --instance-prompt 'a photo of sks person' --resolution 32 --learning-rate 1e-3 --seed 3";
}

std::string prior_flags(const Workspace& w, int num_class_images = 2) {
  return " --with-prior-preservation --class-prompt 'a photo of a person' --class-data " + q(w.classes) +
         " --num-class-images " + std::to_string(num_class_images) + " --class-steps 2";
}

std::string file_bytes(const fs::path& path) {
  return read_file(path);
}

// Minimal safetensors access without LibTorch (this suite links only the core library): the JSON header,
// one F32 tensor's values, and writing F32 tensors.
Json safetensors_header(const fs::path& path) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  return Json::parse(bytes.substr(8, n));
}

std::vector<float> safetensors_f32(const fs::path& path, const std::string& key) {
  const std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const Json entry = Json::parse(bytes.substr(8, n)).at(key);
  const auto begin = entry.at("data_offsets")[0].get<size_t>(), end = entry.at("data_offsets")[1].get<size_t>();
  std::vector<float> values((end - begin) / 4);
  std::memcpy(values.data(), bytes.data() + 8 + n + begin, end - begin);
  return values;
}

void write_f32_safetensors(const fs::path& path, const std::map<std::string, std::vector<int64_t>>& shapes) {
  Json header = Json::object();
  std::string data;
  for (const auto& [key, shape] : shapes) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    std::vector<float> ones(static_cast<size_t>(count), 1.0f);
    header[key] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + ones.size() * 4}}};
    data.append(reinterpret_cast<const char*>(ones.data()), ones.size() * 4);
  }
  const std::string text = header.dump();
  const uint64_t n = text.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);
  write_file_atomic(path, bytes + text + data);
}

int run(const std::string& args, std::string* output) {
  return test::run_command(exe() + args, output);
}

TEST(FinetuneCli, FullModelWithPriorPreservationThenGenerate) {
  Workspace w = make_workspace("finetune_full");
  const fs::path out = w.dir / "tuned";
  std::string output;
  ASSERT_EQ(run(" finetune" + base_flags(w) + prior_flags(w, 3) + " --max-train-steps 3 --lr-scheduler linear --out " +
                    q(out),
                &output),
            0)
      << output;
  // The class images were generated with the base model and kept, beside the prompt that made them.
  int class_pngs = 0;
  for (const auto& e : fs::directory_iterator(w.classes)) class_pngs += e.path().extension() == ".png";
  EXPECT_EQ(class_pngs, 3);
  EXPECT_TRUE(fs::is_regular_file(w.classes / "class_prompt.txt"));
  // Diffusers layout: the UNet rewritten, everything else linked or copied.
  for (const char* f :
       {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "tokenizer/vocab.json",
        "scheduler/scheduler_config.json", "loss_curve.csv", "finetune_settings.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  EXPECT_FALSE(fs::exists(w.dir / "tuned.work")) << "checkpoints are removed once the run is complete";
  EXPECT_NE(file_bytes(out / "unet/diffusion_pytorch_model.safetensors"),
            file_bytes(w.model / "unet/diffusion_pytorch_model.safetensors"));
  EXPECT_EQ(file_bytes(out / "vae/diffusion_pytorch_model.safetensors"),
            file_bytes(w.model / "vae/diffusion_pytorch_model.safetensors"));
  Json tuned = safetensors_header(out / "unet/diffusion_pytorch_model.safetensors");
  Json base = safetensors_header(w.model / "unet/diffusion_pytorch_model.safetensors");
  tuned.erase("__metadata__");
  base.erase("__metadata__");
  ASSERT_EQ(tuned.size(), base.size()) << "every UNet tensor is written";
  for (const auto& [key, entry] : base.items()) EXPECT_EQ(tuned.at(key).at("shape"), entry.at("shape")) << key;
  EXPECT_NE(safetensors_f32(out / "unet/diffusion_pytorch_model.safetensors", "conv_in.weight"),
            safetensors_f32(w.model / "unet/diffusion_pytorch_model.safetensors", "conv_in.weight"));
  CsvTable curve = read_csv(out / "loss_curve.csv");
  EXPECT_EQ(curve.header, (std::vector<std::string>{"step", "loss", "loss_instance", "loss_prior", "lr", "grad_norm"}));
  ASSERT_EQ(curve.rows.size(), 3u);
  EXPECT_EQ(curve.rows[0].fields[4], "0.001");  // linear schedule, no warm-up: full rate first
  Json settings = read_json_file(out / "finetune_settings.json");
  EXPECT_EQ(settings.at("lr_scheduler"), "linear");
  EXPECT_EQ(settings.at("result").at("class_images_generated"), 3);

  ASSERT_EQ(run(" generate --model " + q(out) + " --prompt 'a photo of sks person' --steps 2 --out " + q(w.dir / "run"),
                &output),
            0)
      << output;
  int pngs = 0;
  for (const auto& e : fs::recursive_directory_iterator(w.dir / "run")) pngs += e.path().extension() == ".png";
  EXPECT_EQ(pngs, 1);

  // A second run reuses the kept class images.
  ASSERT_EQ(run(" finetune" + base_flags(w) + prior_flags(w, 3) + " --max-train-steps 1 --out " + q(w.dir / "again"),
                &output),
            0)
      << output;
  EXPECT_EQ(read_json_file(w.dir / "again" / "finetune_settings.json").at("result").at("class_images_generated"), 0);

  // The same class folder for another class prompt is refused (it would train on the wrong prior), images kept.
  std::string flags = prior_flags(w, 3);
  flags.replace(flags.find("a photo of a person"), std::string("a photo of a person").size(), "a photo of a doctor");
  EXPECT_NE(run(" finetune" + base_flags(w) + flags + " --max-train-steps 1 --out " + q(w.dir / "other"), &output), 0);
  EXPECT_NE(output.find("generated for the class prompt 'a photo of a person'"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(w.dir / "other"));
  class_pngs = 0;
  for (const auto& e : fs::directory_iterator(w.classes)) class_pngs += e.path().extension() == ".png";
  EXPECT_EQ(class_pngs, 3);
}

TEST(FinetuneCli, LoraWritesDiffusersKeysAndGenerates) {
  Workspace w = make_workspace("finetune_lora");
  const fs::path out = w.dir / "lora";
  std::string output;
  ASSERT_EQ(run(" finetune" + base_flags(w) + prior_flags(w) +
                    " --use-lora --lora-rank 2 --lora-alpha 4 "
                    "--train-text-encoder --max-train-steps 2 --out " +
                    q(out),
                &output),
            0)
      << output;
  const fs::path lora_file = out / "pytorch_lora_weights.safetensors";
  Json lora = safetensors_header(lora_file);
  lora.erase("__metadata__");
  EXPECT_EQ(lora.size(), 2u * (48u + 8u));  // 6 transformer blocks x 8 projections, 2 text layers x 4
  const std::string q_proj = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora";
  ASSERT_TRUE(lora.contains(q_proj + ".down.weight"));
  EXPECT_EQ(lora.at(q_proj + ".down.weight").at("shape"), Json({2, 32}));
  EXPECT_EQ(lora.at(q_proj + ".up.weight").at("shape"), Json({32, 2}));
  bool trained = false;
  for (float v : safetensors_f32(lora_file, q_proj + ".up.weight")) trained = trained || v != 0.0f;
  EXPECT_TRUE(trained) << "up starts at 0 and was trained";
  EXPECT_TRUE(lora.contains("text_encoder.text_model.encoder.layers.1.self_attn.out_proj.lora_linear_layer.up.weight"));
  EXPECT_FALSE(fs::exists(out / "unet")) << "a LoRA run writes only the adapter";

  ASSERT_EQ(run(" generate --model " + q(w.model) + " --lora " + q(out / "pytorch_lora_weights.safetensors") +
                    " --lora-scale 0.8 --prompt 'a photo of sks person' --steps 2 --out " + q(w.dir / "run"),
                &output),
            0)
      << output;
  EXPECT_NE(output.find("applied LoRA"), std::string::npos) << output;
  // The adapter changes the image; scale 0 leaves the base model's image.
  ASSERT_EQ(
      run(" generate --model " + q(w.model) + " --prompt 'a photo of sks person' --steps 2 --out " + q(w.dir / "base"),
          &output),
      0)
      << output;
  ASSERT_EQ(run(" generate --model " + q(w.model) + " --lora " + q(out / "pytorch_lora_weights.safetensors") +
                    " --lora-scale 0 --prompt 'a photo of sks person' --steps 2 --out " + q(w.dir / "scale0"),
                &output),
            0)
      << output;
  const fs::path image = fs::path("images") / "a_photo_of_sks_person" / "0.png";
  ASSERT_TRUE(fs::exists(w.dir / "run" / image)) << "expected " << (w.dir / "run" / image);
  EXPECT_NE(read_file(w.dir / "run" / image), read_file(w.dir / "base" / image));
  EXPECT_EQ(read_file(w.dir / "scale0" / image), read_file(w.dir / "base" / image));
  // A LoRA for another architecture is refused with a clear error.
  write_f32_safetensors(w.dir / "foreign.safetensors",
                        {{"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.down.weight", {4, 64}},
                         {"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora.up.weight", {64, 4}}});
  EXPECT_EQ(run(" generate --model " + q(w.model) + " --lora " + q(w.dir / "foreign.safetensors") +
                    " --prompt x --steps 2 --out " + q(w.dir / "run2"),
                &output),
            3)
      << output;
  EXPECT_NE(output.find("another architecture"), std::string::npos) << output;
}

TEST(FinetuneCli, KillAndResumeGivesBitIdenticalWeights) {
  Workspace w = make_workspace("finetune_resume", 3);
  const std::string flags =
      base_flags(w) + prior_flags(w) +
      " --max-train-steps 6 --checkpointing-steps 2 "
      "--train-text-encoder --gradient-accumulation-steps 2 --lr-scheduler cosine --lr-warmup-steps 2";
  std::string output;
  ASSERT_EQ(run(" finetune" + flags + " --out " + q(w.dir / "straight"), &output), 0) << output;

  const fs::path out = w.dir / "resumed";
  const fs::path work = w.dir / "resumed.work";
  ASSERT_EQ(
      test::run_command("FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP=3 " + exe() + " finetune" + flags + " --out " + q(out),
                        &output),
      130)
      << output;
  EXPECT_FALSE(fs::exists(out)) << "an interrupted run leaves no output that looks finished";
  EXPECT_TRUE(fs::exists(work / "checkpoint-3" / "training_state.safetensors"));
  EXPECT_FALSE(fs::exists(work / "checkpoint-2")) << "--checkpoints-total-limit 1 keeps the newest only";
  // Without --resume the unfinished run is not silently overwritten.
  EXPECT_EQ(run(" finetune" + flags + " --out " + q(out), &output), 2) << output;
  EXPECT_NE(output.find("--resume"), std::string::npos) << output;
  // Changed settings are refused, naming what changed.
  EXPECT_EQ(run(" finetune" + flags + " --adam-weight-decay 0.1 --resume --out " + q(out), &output), 3) << output;
  EXPECT_NE(output.find("adam_weight_decay"), std::string::npos) << output;

  ASSERT_EQ(run(" finetune" + flags + " --resume --out " + q(out), &output), 0) << output;
  EXPECT_NE(output.find("resuming"), std::string::npos) << output;
  for (const char* f :
       {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors", "loss_curve.csv"}) {
    EXPECT_TRUE(file_bytes(w.dir / "straight" / f) == file_bytes(out / f)) << f << " differs after resume";
  }
  EXPECT_EQ(read_json_file(out / "finetune_settings.json").at("result").at("resumed_from_step"), 3);
}

// The loss curve's rows as numbers (step, loss, loss_instance, loss_prior, lr, grad_norm).
std::vector<std::vector<double>> loss_curve(const fs::path& file) {
  std::vector<std::vector<double>> rows;
  std::istringstream in(read_file(file));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::istringstream fields(line);
    std::string field;
    while (std::getline(fields, field, ',')) row.push_back(std::stod(field));
    rows.push_back(row);
  }
  return rows;
}

// `--workers 2`: two processes meeting through torchrun's environment (the launcher sets RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), Gloo on the CPU. Interrupted after step 2, resumed in one process: the same training
// as one uninterrupted process with the whole batch (--train-batch-size is the global batch).
TEST(FinetuneCli, WorkersTrainAsOneProcessAndResumeAtAnotherWorldSize) {
  Workspace w = make_workspace("finetune_workers", 3);
  // AdamW's eps raised from 1e-8: a weight whose gradient is zero but for rounding moves by the learning rate
  // with the rounding's sign (which depends on the order of the sums); with 1e-4 such noise leaves it still.
  const std::string common =
      base_flags(w) + prior_flags(w, 3) + " --use-lora --max-train-steps 3 --adam-epsilon 1e-4 --device cpu";
  const std::string flags = common + " --train-batch-size 2";
  std::string output;
  ASSERT_EQ(run(" finetune" + flags + " --out " + q(w.dir / "single"), &output), 0) << output;

  const fs::path out = w.dir / "two";
  if (output = ""; run(" finetune --workers 2" + common + " --train-batch-size 1 --out " + q(out), &output) != 2)
    ADD_FAILURE() << output;
  EXPECT_NE(output.find("--train-batch-size 1 is below the 2 ranks"), std::string::npos) << output;

  ASSERT_EQ(test::run_command("FAIRDIFF_FINETUNE_INTERRUPT_AFTER_STEP=2 " + exe() + " finetune --workers 2" + flags +
                                  " --out " + q(out),
                              &output),
            130)
      << output;
  EXPECT_NE(output.find("data-parallel over 2 ranks (gloo), global batch 2"), std::string::npos) << output;
  EXPECT_TRUE(fs::exists(w.dir / "two.work" / "checkpoint-2" / "training_state.safetensors")) << output;
  EXPECT_TRUE(fs::exists(w.dir / "two.work" / "logs" / "rank-1.log"));
  EXPECT_FALSE(fs::exists(out));

  ASSERT_EQ(run(" finetune" + flags + " --resume --out " + q(out), &output), 0) << output;
  const auto a = loss_curve(w.dir / "single" / "loss_curve.csv"), b = loss_curve(out / "loss_curve.csv");
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (size_t k = 0; k < a[i].size(); ++k)
      EXPECT_NEAR(a[i][k], b[i][k], 1e-5 * std::abs(a[i][k])) << "step " << i + 1 << " column " << k;
  }
  // Every LoRA factor, within float rounding of the sums' order.
  const fs::path lora_a = w.dir / "single" / "pytorch_lora_weights.safetensors";
  const fs::path lora_b = out / "pytorch_lora_weights.safetensors";
  float scale = 0, diff = 0;
  const Json header = safetensors_header(lora_a);
  std::vector<std::string> keys;
  for (auto it = header.begin(); it != header.end(); ++it)
    if (it.key() != "__metadata__") keys.push_back(it.key());
  ASSERT_FALSE(keys.empty());
  for (const std::string& key : keys) {
    const std::vector<float> x = safetensors_f32(lora_a, key), y = safetensors_f32(lora_b, key);
    ASSERT_EQ(x.size(), y.size()) << key;
    for (size_t i = 0; i < x.size(); ++i) {
      scale = std::max(scale, std::abs(x[i]));
      diff = std::max(diff, std::abs(x[i] - y[i]));
    }
  }
  EXPECT_GT(scale, 0.0f);
  EXPECT_LT(diff, 1e-5f * scale) << diff << " of " << scale;
}

TEST(FinetuneCli, BadInputsFailClearlyWithoutOutput) {
  Workspace w = make_workspace("finetune_bad");
  const fs::path out = w.dir / "out";
  auto expect_failure = [&](const std::string& args, int code, const std::string& needle,
                            const fs::path& model = fs::path()) {
    std::string output;
    const std::string resolution = args.find("--resolution") == std::string::npos ? " --resolution 32" : "";
    EXPECT_EQ(run(" finetune --model " + q(model.empty() ? w.model : model) + resolution +
                      " --max-train-steps 1 --out " + q(out) + args,
                  &output),
              code)
        << args << "\n"
        << output;
    EXPECT_NE(output.find(needle), std::string::npos) << args << "\n" << output;
    EXPECT_FALSE(fs::exists(out)) << args;
    EXPECT_FALSE(fs::exists(w.dir / "out.work")) << args;
  };
  fs::create_directories(w.dir / "empty");
  expect_failure(" --instance-data " + q(w.dir / "empty") + " --instance-prompt p", 3, "holds no PNG or JPEG images");
  expect_failure(" --instance-data " + q(w.dir / "nowhere") + " --instance-prompt p", 3, "does not exist");
  fs::create_directories(w.dir / "broken");
  { std::ofstream(w.dir / "broken" / "a.png") << "not an image"; }
  expect_failure(" --instance-data " + q(w.dir / "broken") + " --instance-prompt p", 3, "a.png");
  Workspace small = make_workspace("finetune_bad_small", 1, 24, 40);
  expect_failure(" --instance-data " + q(small.instance) + " --instance-prompt p", 3, "smaller than --resolution 32");
  { std::ofstream(w.dir / "captions.csv") << "file,caption\ninstance/person-0.png,a photo\nmissing.png,another\n"; }
  expect_failure(" --instance-data " + q(w.dir / "captions.csv"), 3, "missing.png, which does not exist");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p --train-batch-size 3", 2,
                 "larger than the 2 instance images");
  expect_failure(" --instance-data " + q(w.instance), 2, "--instance-prompt is required");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p --lr-scheduler exponential", 2,
                 "constant");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p --with-prior-preservation", 2,
                 "--class-prompt");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p --lora-rank 4", 2, "--use-lora");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p --resolution 33", 2, "multiple of 2");
  expect_failure(" --instance-data " + q(w.instance) + " --instance-prompt p", 3, "model_index.json", w.dir / "empty");

  // A CSV with captions trains (paths relative to the CSV's folder), and an existing output is never overwritten.
  {
    std::ofstream(w.dir / "good.csv")
        << "file,caption\ninstance/person-0.png,a photo of sks nurse\ninstance/person-1.png,a photo of sks doctor\n";
  }
  std::string output;
  ASSERT_EQ(run(" finetune --model " + q(w.model) + " --instance-data " + q(w.dir / "good.csv") +
                    " --resolution 32 --max-train-steps 1 --out " + q(out),
                &output),
            0)
      << output;
  EXPECT_EQ(run(" finetune --model " + q(w.model) + " --instance-data " + q(w.dir / "good.csv") +
                    " --resolution 32 --max-train-steps 1 --out " + q(out),
                &output),
            2)
      << output;
  EXPECT_NE(output.find("already exists"), std::string::npos) << output;
}

}  // namespace
}  // namespace fairdiff
