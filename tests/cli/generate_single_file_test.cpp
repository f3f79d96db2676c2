// End-to-end: `fairdiff generate --model FILE.safetensors`, `fairdiff model convert FILE --out DIR` and
// `fairdiff finetune --model FILE` on the tiny fixtures written as single-file checkpoints in the original layout;
// pickles and misfitting flags are refused.
#include <gtest/gtest.h>

#include <fstream>

#include "core/image.h"
#include "core/json.h"
#include "diffusion/original_layout_writer.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

std::string exe() {
  return FAIRDIFF_EXE;
}
std::string quote(const fs::path& p) {
  return "'" + p.string() + "'";
}
std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string generate(const std::string& model, const fs::path& out) {
  return exe() + " generate --model " + model +
         " --prompt 'A photo of a nurse' --seed 5 --steps 4 --width 32 --height 32 --batch-size 1 --out " + quote(out);
}

const char* const kImage = "images/a_photo_of_a_nurse/0.png";

TEST(GenerateSingleFileCli, FileGivesTheFolderImageAndConvertsToAFolderThatDoesToo) {
  const fs::path dir = test::scratch_dir("GenerateSingleFileCli.Sd2");
  const fs::path fixture = test::fixtures_dir() / "tiny-sd2";
  const fs::path file = dir / "tiny-sd2.safetensors";
  test::write_original_layout(fixture, file, true);
  std::string log;
  ASSERT_EQ(test::run_command(generate(quote(fixture), dir / "from-folder"), &log), 0) << log;
  ASSERT_EQ(test::run_command(generate(quote(file) + " --config " + quote(fixture), dir / "from-file"), &log), 0)
      << log;
  const std::string expected = read_bytes(dir / "from-folder" / kImage);
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(read_bytes(dir / "from-file" / kImage), expected);
  EXPECT_FALSE(fs::exists(file.string() + ".partial"));

  ASSERT_EQ(test::run_command(exe() + " model convert " + quote(file) + " --config " + quote(fixture) + " --out " +
                                  quote(dir / "converted"),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("in the diffusers layout"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(generate(quote(dir / "converted"), dir / "from-converted"), &log), 0) << log;
  EXPECT_EQ(read_bytes(dir / "from-converted" / kImage), expected);
}

TEST(GenerateSingleFileCli, Sd1FileGivesTheFolderImage) {
  const fs::path dir = test::scratch_dir("GenerateSingleFileCli.Sd1");
  const fs::path fixture = test::fixtures_dir() / "tiny-sd1";
  const fs::path file = dir / "tiny-sd1.safetensors";
  test::write_original_layout(fixture, file, false);
  std::string log;
  ASSERT_EQ(test::run_command(generate(quote(fixture), dir / "from-folder"), &log), 0) << log;
  ASSERT_EQ(test::run_command(generate(quote(file) + " --config " + quote(fixture), dir / "from-file"), &log), 0)
      << log;
  EXPECT_EQ(read_bytes(dir / "from-file" / kImage), read_bytes(dir / "from-folder" / kImage));
}

TEST(GenerateSingleFileCli, FinetuneOfAFileWritesAWholeModelFolder) {
  const fs::path dir = test::scratch_dir("GenerateSingleFileCli.Finetune");
  const fs::path fixture = test::fixtures_dir() / "tiny-sd1";
  const fs::path file = dir / "tiny-sd1.safetensors";
  test::write_original_layout(fixture, file, false);
  fs::create_directories(dir / "instance");
  for (int i = 0; i < 2; ++i) {
    Image image{32, 32, 3, std::vector<uint8_t>(32 * 32 * 3)};
    for (size_t p = 0; p < image.pixels.size(); ++p) image.pixels[p] = static_cast<uint8_t>((p * (7 + i)) % 251);
    write_png(dir / "instance" / ("person-" + std::to_string(i) + ".png"), image);
  }
  std::string log;
  ASSERT_EQ(test::run_command(exe() + " finetune --model " + quote(file) + " --config " + quote(fixture) +
                                  " --instance-data " + quote(dir / "instance") +
                                  " --instance-prompt 'a photo of sks person' --resolution 32 --max-train-steps 2"
                                  " --learning-rate 1e-3 --seed 3 --out " +
                                  quote(dir / "tuned"),
                              &log),
            0)
      << log;
  // The UNet is the trained one; the other components were written out of the file, with the configs.
  for (const char* part : {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "unet/config.json",
                           "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                           "tokenizer/vocab.json", "scheduler/scheduler_config.json"}) {
    EXPECT_TRUE(fs::is_regular_file(dir / "tuned" / part)) << part;
  }
  EXPECT_EQ(read_json_file(dir / "tuned" / "finetune_settings.json").at("model_config"), fixture.string());
  ASSERT_EQ(test::run_command(generate(quote(dir / "tuned"), dir / "from-tuned"), &log), 0) << log;
  EXPECT_FALSE(read_bytes(dir / "from-tuned" / kImage).empty());
}

TEST(GenerateSingleFileCli, RefusalsNameTheFileAndTheFlag) {
  const fs::path dir = test::scratch_dir("GenerateSingleFileCli.Refusals");
  const fs::path fixture = test::fixtures_dir() / "tiny-sd1";
  std::string log;

  const fs::path ckpt = dir / "model.ckpt";
  { std::ofstream(ckpt, std::ios::binary) << "PK\x03\x04 a zip"; }
  EXPECT_EQ(test::run_command(generate(quote(ckpt), dir / "out"), &log), 3) << log;
  EXPECT_NE(log.find(ckpt.string() + " is a PyTorch pickle checkpoint"), std::string::npos) << log;
  EXPECT_NE(log.find("never unpickles"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "out"));

  // The tiny sizes cannot be told from the tensors: the error asks for --config.
  const fs::path file = dir / "tiny-sd1.safetensors";
  test::write_original_layout(fixture, file, false);
  EXPECT_EQ(test::run_command(exe() + " model convert " + quote(file) + " --out " + quote(dir / "c"), &log), 3) << log;
  EXPECT_NE(log.find("--config is needed for " + file.string()), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "c") || fs::exists(dir / "c.partial"));

  // --arch against the tensors, --arch for a folder, --max-length for a file.
  EXPECT_EQ(test::run_command(generate(quote(file) + " --arch sd2", dir / "out"), &log), 2) << log;
  EXPECT_NE(log.find("--arch sd2 does not fit " + file.string()), std::string::npos) << log;
  EXPECT_EQ(test::run_command(generate(quote(fixture) + " --arch sd1", dir / "out"), &log), 2) << log;
  EXPECT_NE(log.find("is a folder"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(exe() + " model convert " + quote(file) + " --max-length 20 --out " + quote(dir / "c"), &log),
      2)
      << log;
}

}  // namespace
}  // namespace fairdiff
