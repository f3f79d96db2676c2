// End-to-end tests of `fairdiff generate` and `fairdiff model init` on the tiny fixture models.
#include <gtest/gtest.h>

#include <fstream>

#include "core/csv.h"
#include "core/image.h"
#include "core/safetensors.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

std::string exe() {
  return FAIRDIFF_EXE;
}
std::string quote(const std::filesystem::path& p) {
  return "'" + p.string() + "'";
}

std::string read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string generate_command(const std::string& scheduler, const std::filesystem::path& out) {
  return exe() + " generate --model " + quote(test::fixtures_dir() / "tiny-sd2") +
         " --prompt 'A photo of a CEO of an important company' --negative-prompt '' --seed 11 --steps 12"
         " --guidance 7.5 --scheduler " +
         scheduler + " --width 32 --height 32 --out " + quote(out);
}

class GenerateMatchesFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerateMatchesFixture, PngEqualsReferenceImageWithinOneLevel) {
  const std::string s = GetParam();
  auto out = test::scratch_dir("generate_" + s);
  std::string log;
  ASSERT_EQ(test::run_command(generate_command(s, out), &log), 0) << log;
  auto png = out / "images" / "a_photo_of_a_ceo_of_an_important_company" / "0.png";
  ASSERT_TRUE(std::filesystem::exists(png)) << log;
  Image image = read_image(png);
  torch::Tensor expected = read_safetensors(test::fixtures_dir() / "tiny-sd2" / "reference.safetensors")
                               .tensors.at("pipe." + s + ".image")[0];
  ASSERT_EQ(image.width, 32);
  ASSERT_EQ(image.height, 32);
  torch::Tensor got = torch::from_blob(image.pixels.data(), {32, 32, 3}, torch::kUInt8).to(torch::kFloat32) / 255.0;
  EXPECT_LE((got - expected).abs().max().item<double>(), 1.0 / 255.0 + 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Schedulers, GenerateMatchesFixture, ::testing::Values("pndm", "ddim", "euler", "dpmpp2m"));

TEST(GenerateCli, ResumeSkipsFinishedImagesAndSameSeedGivesIdenticalBytes) {
  auto out = test::scratch_dir("generate_resume");
  auto prompts = out.parent_path() / "generate_resume_prompts.csv";
  { std::ofstream(prompts) << "prompt_id,prompt\nceo,A photo of a CEO\nnurse,\"A photo of a nurse, smiling\"\n"; }
  // Batch size 1 keeps this test fast; images do not depend on the batch on the CPU (BatchInvariance, diffusion).
  auto command = [&](int steps) {
    return exe() + " generate --model " + quote(test::fixtures_dir() / "tiny-sd1") + " --prompts " + quote(prompts) +
           " --images-per-prompt 2 --steps " + std::to_string(steps) + " --batch-size 1 --width 32 --height 32 --out " +
           quote(out);
  };
  const std::string base = command(3);
  std::string log;
  ASSERT_EQ(test::run_command(base, &log), 0) << log;
  CsvTable manifest = read_csv(out / "manifest.csv");
  ASSERT_EQ(manifest.rows.size(), 4u);
  EXPECT_EQ(manifest.rows[1].fields[manifest.require_column("seed")], "1");
  EXPECT_EQ(manifest.rows[2].fields[manifest.require_column("prompt")], "A photo of a nurse, smiling");
  std::string first = read_bytes(out / "images" / "nurse" / "1.png");

  // Delete one image: a rerun regenerates exactly that one, byte for byte.
  std::filesystem::remove(out / "images" / "nurse" / "1.png");
  auto untouched_time = std::filesystem::last_write_time(out / "images" / "ceo" / "0.png");
  ASSERT_EQ(test::run_command(base, &log), 0) << log;
  EXPECT_NE(log.find("generated 1 image(s), skipped 3"), std::string::npos) << log;
  EXPECT_EQ(read_bytes(out / "images" / "nurse" / "1.png"), first);
  EXPECT_EQ(std::filesystem::last_write_time(out / "images" / "ceo" / "0.png"), untouched_time);

  // Different settings into the same run directory are refused and nothing is touched.
  ASSERT_NE(test::run_command(command(4), &log), 0);
  EXPECT_NE(log.find("different settings"), std::string::npos) << log;
  EXPECT_EQ(read_bytes(out / "images" / "nurse" / "1.png"), first);
}

// Resume checks what it keeps: a truncated, emptied or replaced image (against the size and SHA-256 the manifest
// recorded) is made again, byte for byte; without a manifest record a kept image must decode at the run's size.
// (Each used to count as "already present" and stay damaged.)
TEST(GenerateCli, ResumeRemakesDamagedImagesAndReportsThem) {
  auto out = test::scratch_dir("generate_damaged");
  const std::string command = exe() + " generate --model " + quote(test::fixtures_dir() / "tiny-sd2") +
                              " --prompt 'a nurse' --images-per-prompt 4 --steps 2 --batch-size 1 --width 32 "
                              "--height 32 --out " +
                              quote(out);
  std::string log;
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  const auto image = [&](int i) { return out / "images" / "a_nurse" / (std::to_string(i) + ".png"); };
  std::vector<std::string> original;
  for (int i = 0; i < 4; ++i) original.push_back(read_bytes(image(i)));
  CsvTable manifest = read_csv(out / "manifest.csv");
  ASSERT_EQ(manifest.rows.size(), 4u);
  EXPECT_EQ(manifest.rows[0].fields[static_cast<size_t>(manifest.require_column("bytes"))],
            std::to_string(original[0].size()));
  EXPECT_EQ(manifest.rows[0].fields[static_cast<size_t>(manifest.require_column("sha256"))].size(), 64u);

  std::ofstream(image(0), std::ios::binary | std::ios::trunc) << original[0].substr(0, original[0].size() / 2);
  std::ofstream(image(1), std::ios::binary | std::ios::trunc);
  std::string flipped = original[2];
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x40);  // same size, other bytes
  std::ofstream(image(2), std::ios::binary | std::ios::trunc) << flipped;
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  EXPECT_NE(log.find("generated 3 image(s) (3 of them replacing damaged ones), skipped 1"), std::string::npos) << log;
  EXPECT_NE(log.find("images/a_nurse/0.png (" + std::to_string(original[0].size() / 2) +
                     " bytes, the manifest "
                     "recorded " +
                     std::to_string(original[0].size()) + ")"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("images/a_nurse/2.png (its SHA-256 differs"), std::string::npos) << log;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(read_bytes(image(i)), original[i]) << i;

  // A manifest from before the digests (or lost): the kept images are decoded instead.
  std::filesystem::remove(out / "manifest.csv");
  std::ofstream(image(3), std::ios::binary | std::ios::trunc) << original[3].substr(0, 40);
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  EXPECT_NE(log.find("generated 1 image(s) (1 of them replacing damaged ones), skipped 3"), std::string::npos) << log;
  EXPECT_EQ(read_bytes(image(3)), original[3]);
  EXPECT_EQ(read_csv(out / "manifest.csv").rows.size(), 4u);
}

// The stages feed each other without glue: plan's CSV is generate's prompts (each group's augmented prompt, its
// n_images, a folder-safe id), and generate's manifest is finetune's instance data (each image with its prompt).
TEST(GenerateCli, PlanCsvFeedsGenerateAndTheManifestFeedsFinetune) {
  auto dir = test::scratch_dir("generate_plan_chain");
  {
    std::ofstream(dir / "plan.csv")
        << "prompt_id,prompt,gender,race,share,n_images,augmented_prompt\n"
           "ceo,A photo of a CEO,Female,middle eastern,0.0,2,A photo of a middle eastern female CEO\n"
           "ceo,A photo of a CEO,Male,black,0.05,1,A photo of a black male CEO\n"
           "nurse,A photo of a nurse,Male,white,0.3,0,A photo of a white male nurse\n";
  }
  const std::string model = " --model " + quote(test::fixtures_dir() / "tiny-sd2");
  std::string log;
  ASSERT_EQ(test::run_command(exe() + " generate" + model + " --prompts " + quote(dir / "plan.csv") +
                                  " --steps 2 --width 32 --height 32 --out " + quote(dir / "augment"),
                              &log),
            0)
      << log;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "augment/images/ceo-female-middle-eastern/1.png"));
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "augment/images/ceo-male-black/0.png"));
  EXPECT_FALSE(std::filesystem::exists(dir / "augment/images/ceo-male-black/1.png"));
  EXPECT_FALSE(std::filesystem::exists(dir / "augment/images/nurse-male-white"));  // n_images 0
  CsvTable manifest = read_csv(dir / "augment" / "manifest.csv");
  ASSERT_EQ(manifest.rows.size(), 3u);
  EXPECT_EQ(manifest.rows[0].fields[static_cast<size_t>(manifest.require_column("prompt"))],
            "A photo of a middle eastern female CEO");
  // A plan CSV sets its own counts.
  EXPECT_EQ(test::run_command(exe() + " generate" + model + " --prompts " + quote(dir / "plan.csv") +
                                  " --images-per-prompt 4 --out " + quote(dir / "other"),
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("n_images"), std::string::npos) << log;

  ASSERT_EQ(test::run_command(
                exe() + " finetune" + model + " --instance-data " + quote(dir / "augment" / "manifest.csv") +
                    " --resolution 32 --max-train-steps 1 --checkpointing-steps 0 --out " + quote(dir / "tuned"),
                &log),
            0)
      << log;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir / "tuned" / "unet" / "diffusion_pytorch_model.safetensors"));
}

TEST(GenerateCli, BadInputsFailClearlyAndKeepOutputs) {
  auto out = test::scratch_dir("generate_bad");
  { std::ofstream(out / "keep.txt") << "earlier output"; }
  auto model = test::fixtures_dir() / "tiny-sd2";
  struct Case {
    std::string args;
    int code;
    std::string fragment;
  };
  auto broken = out.parent_path() / "generate_bad_model";
  std::filesystem::remove_all(broken);
  std::filesystem::create_directories(broken);
  std::filesystem::copy(model, broken, std::filesystem::copy_options::recursive);
  std::filesystem::permissions(broken, std::filesystem::perms::owner_all, std::filesystem::perm_options::add);
  for (auto& entry : std::filesystem::recursive_directory_iterator(broken)) {
    std::filesystem::permissions(entry.path(), std::filesystem::perms::owner_all, std::filesystem::perm_options::add);
  }
  std::filesystem::remove_all(broken / "vae");
  auto bad_csv = out.parent_path() / "generate_bad.csv";
  { std::ofstream(bad_csv) << "prompt_id,prompt\nceo,A photo\nnurse\n"; }
  std::vector<Case> cases = {
      {"--model " + quote(broken) + " --prompt x", 3, "missing the component folder 'vae/'"},
      {"--model " + quote(model) + " --prompt x --scheduler heun", 2, "expected one of pndm, ddim, euler, dpmpp2m"},
      {"--model " + quote(model) + " --prompts " + quote(bad_csv), 3, "generate_bad.csv:3"},
      {"--model " + quote(model) + " --prompt x --images-per-prompt 0", 2, "--images-per-prompt 0"},
      {"--model " + quote(model) + " --prompt x --steps -3", 2, "--steps -3"},
      {"--model " + quote(model) + " --prompt x --dtype fp16 --device cpu", 4, "fp16"},
      {"--model " + quote(model) + " --prompt x --width 30", 2, "multiple of 8"},
      {"--model " + quote(out / "nope") + " --prompt x", 3, "does not exist"},
  };
  for (const auto& c : cases) {
    std::string log;
    const bool sets_steps = c.args.find("--steps") != std::string::npos;
    int code = test::run_command(
        exe() + " generate " + c.args + (sets_steps ? "" : " --steps 2") + " --out " + quote(out), &log);
    EXPECT_EQ(code, c.code) << c.args << "\n" << log;
    EXPECT_NE(log.find(c.fragment), std::string::npos) << c.args << "\n" << log;
  }
  EXPECT_EQ(read_bytes(out / "keep.txt"), "earlier output");
}

// A run that failed before its first image (its run.json written, no PNG) does not bind the folder to its
// settings; a folder with images still refuses other settings and keeps them.
TEST(GenerateCli, AFolderWithoutImagesIsNotBoundToAFailedRunsSettings) {
  const auto dir = test::scratch_dir("generate_failed_run");
  std::ofstream(dir / "run.json") << R"({"identity": {"model": "/elsewhere", "seed": 99}, "images_per_prompt": 1})";
  const std::string command = exe() + " generate --model " + quote(test::fixtures_dir() / "tiny-sd2") +
                              " --prompt 'a nurse' --steps 2 --width 32 --height 32 --out " + quote(dir);
  std::string log;
  ASSERT_EQ(test::run_command(command, &log), 0) << log;
  const std::string image = read_bytes(dir / "images" / "a_nurse" / "0.png");
  ASSERT_FALSE(image.empty());
  EXPECT_EQ(test::run_command(command + " --seed 5", &log), 3) << log;
  EXPECT_NE(log.find("holds a run with different settings (seed"), std::string::npos) << log;
  EXPECT_EQ(read_bytes(dir / "images" / "a_nurse" / "0.png"), image);
}

// A prompts CSV that is not UTF-8 (here a Latin-1 byte) is refused with file, line and column before any output
// (it used to fail inside the JSON writer naming no file, after creating the run folder).
TEST(GenerateCli, NonUtf8PromptsAreRefusedBeforeAnyOutput) {
  const auto dir = test::scratch_dir("generate_non_utf8");
  std::ofstream(dir / "prompts.csv") << "prompt_id,prompt\nceo,A photo of a \xFF CEO\n";
  std::string log;
  EXPECT_EQ(test::run_command(exe() + " generate --model " + quote(test::fixtures_dir() / "tiny-sd2") + " --prompts " +
                                  quote(dir / "prompts.csv") + " --steps 2 --out " + quote(dir / "run"),
                              &log),
            3);
  EXPECT_NE(log.find("prompts.csv:2: byte 0xFF at column 18 is not UTF-8"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(dir / "run"));
}

TEST(ModelInitCli, WritesALoadableRandomModel) {
  auto out = test::scratch_dir("model_init") / "tiny";
  std::string log;
  ASSERT_EQ(test::run_command(exe() + " model init --arch tiny-sd1 --tokenizer-from " +
                                  quote(test::fixtures_dir() / "tiny-sd1") + " --out " + quote(out) + " --seed 3",
                              &log),
            0)
      << log;
  // Same tensor names and shapes as the reference's tiny-sd1.
  for (const char* f : {"unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"}) {
    auto mine = read_safetensors_header(out / f);
    auto reference = read_safetensors_header(test::fixtures_dir() / "tiny-sd1" / f);
    ASSERT_EQ(mine.size(), reference.size()) << f;
    for (const auto& [name, info] : reference) {
      ASSERT_TRUE(mine.count(name)) << name;
      EXPECT_EQ(mine.at(name).shape, info.shape) << name;
    }
  }
  ASSERT_EQ(test::run_command(exe() + " generate --model " + quote(out) + " --prompt 'a nurse' --steps 2 --out " +
                                  quote(out.parent_path() / "run"),
                              &log),
            0)
      << log;
  EXPECT_TRUE(std::filesystem::exists(out.parent_path() / "run" / "images" / "a_nurse" / "0.png"));
  // A second init into the same directory is refused.
  EXPECT_NE(test::run_command(exe() + " model init --arch tiny-sd1 --tokenizer-from " +
                                  quote(test::fixtures_dir() / "tiny-sd1") + " --out " + quote(out),
                              &log),
            0);
}

TEST(ModelConvertCli, StoresFloatWeightsInTheNewDtypeAndCopiesEverythingElse) {
  namespace fs = std::filesystem;
  const fs::path dir = test::scratch_dir("model_convert");
  const fs::path model = dir / "model";
  fs::copy(test::fixtures_dir() / "tiny-sd2", model, fs::copy_options::recursive);
  // A top-level file besides model_index.json (as a fine-tuned model's finetune_settings.json).
  std::ofstream(model / "finetune_settings.json") << "{\"max_train_steps\": 3}\n";
  std::string log;
  ASSERT_EQ(test::run_command(exe() + " model convert --model " + quote(model) + " --out " + quote(dir / "fp16"), &log),
            0)
      << log;
  EXPECT_FALSE(fs::exists(dir / "fp16.partial"));
  int weight_files = 0, other_files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(model)) {
    if (!entry.is_regular_file()) continue;
    const fs::path rel = fs::relative(entry.path(), model);
    ASSERT_TRUE(fs::exists(dir / "fp16" / rel)) << rel;
    if (entry.path().extension() != ".safetensors") {
      EXPECT_EQ(read_bytes(dir / "fp16" / rel), read_bytes(entry.path())) << rel;
      ++other_files;
      continue;
    }
    ++weight_files;
    const auto before = read_safetensors(entry.path()).tensors;
    const auto after = read_safetensors(dir / "fp16" / rel).tensors;
    ASSERT_EQ(before.size(), after.size()) << rel;
    for (const auto& [name, t] : before) {
      const torch::Tensor& u = after.at(name);
      EXPECT_EQ(u.sizes(), t.sizes()) << name;
      if (t.is_floating_point()) {
        EXPECT_EQ(u.scalar_type(), torch::kFloat16) << name;
        EXPECT_TRUE(torch::equal(u, t.to(torch::kFloat16))) << name;
      } else {
        EXPECT_TRUE(torch::equal(u, t)) << name;
      }
    }
  }
  EXPECT_GE(weight_files, 3);
  EXPECT_GE(other_files, 5);
  // The converted model generates.
  ASSERT_EQ(test::run_command(exe() + " generate --model " + quote(dir / "fp16") +
                                  " --prompt 'a nurse' --steps 2 --width 32 --height 32 --out " + quote(dir / "run"),
                              &log),
            0)
      << log;
  // An existing --out and a folder that is not a model are refused, naming the input.
  EXPECT_EQ(test::run_command(exe() + " model convert --model " + quote(model) + " --out " + quote(dir / "fp16"), &log),
            3);
  EXPECT_NE(log.find("already exists"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(exe() + " model convert --model " + quote(dir / "run") + " --out " + quote(dir / "x"), &log),
      3);
  EXPECT_NE(log.find("model_index.json"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "x"));
  // --max-length: a shorter text context that generates; beyond the text encoder's 77 positions it is refused.
  ASSERT_EQ(test::run_command(exe() + " model convert --model " + quote(model) + " --out " + quote(dir / "short") +
                                  " --max-length 16",
                              &log),
            0)
      << log;
  ASSERT_EQ(test::run_command(exe() + " generate --model " + quote(dir / "short") +
                                  " --prompt 'a nurse' --steps 2 --width 32 --height 32 --out " + quote(dir / "run16"),
                              &log),
            0)
      << log;
  EXPECT_EQ(
      test::run_command(
          exe() + " model convert --model " + quote(model) + " --out " + quote(dir / "y") + " --max-length 99", &log),
      2);
  EXPECT_NE(log.find("--max-length 99 is out of range: expected 2 to 77"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "y"));
}

}  // namespace
}  // namespace fairdiff
