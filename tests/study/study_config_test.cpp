// The study configuration: the seed study's file reads back as written, and every kind of mistake is an error
// that names the file, the line and the key.
#include "study/study_config.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace fairdiff::study {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_study_config(text, "/tmp/s/study.toml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(StudyConfig, SeedStudyReadsBackAsTheStudy) {
  const StudyConfig c = parse_study_config(seed_study_toml("/models/sd21", "prompts.csv"), "/tmp/s/study.toml");
  EXPECT_EQ(c.model, "/models/sd21");
  EXPECT_EQ(c.prompts, "/tmp/s/prompts.csv");
  EXPECT_EQ(c.generation.images_per_prompt, 100);
  EXPECT_EQ(c.generation.scheduler, "pndm");
  EXPECT_DOUBLE_EQ(c.generation.guidance, 7.5);
  EXPECT_EQ(c.plan.rule, "study");
  EXPECT_EQ(c.plan.images_per_group, 10);
  EXPECT_DOUBLE_EQ(c.plan.threshold, 0.4);
  const auto grid = c.mitigation.grid();
  ASSERT_EQ(grid.size(), 12u);  // 3 schedules x 2 class-image counts x 2 step counts
  EXPECT_EQ(grid.front().name(), "dreambooth-constant-c20-s100");
  EXPECT_EQ(grid.back().name(), "dreambooth-polynomial-c300-s1000");
  EXPECT_EQ(c.mitigation.class_prompts, "per_prompt");
  EXPECT_EQ(c.model_dir(), "/models/sd21");
}

TEST(StudyConfig, DefaultsFillWhatIsLeftOut) {
  const StudyConfig c = parse_study_config("model = \"m\"\nprompts = \"p.csv\"\n", "/x/study.toml");
  EXPECT_EQ(c.model_dir(), "/x/m");
  EXPECT_EQ(c.device, "auto");
  EXPECT_EQ(c.generation.dtype, "auto");
  EXPECT_EQ(c.mitigation.grid().size(), 12u);
}

// [report] confusion: "auto" (the default, also "") corrects with the face profile's shipped matrices (resolved by
// the runner), "none" turns correction off, anything else is a file beside the config.
TEST(StudyConfig, ReportConfusionIsAutoNoneOrAFile) {
  const std::string head = "model = \"m\"\nprompts = \"p.csv\"\n[report]\n";
  StudyConfig c = parse_study_config(head, "/x/study.toml");
  EXPECT_TRUE(c.report.correct);
  EXPECT_TRUE(c.report.confusion.empty());
  c = parse_study_config(head + "confusion = \"auto\"\n", "/x/study.toml");
  EXPECT_TRUE(c.report.correct);
  EXPECT_TRUE(c.report.confusion.empty());
  c = parse_study_config(head + "confusion = \"none\"\n", "/x/study.toml");
  EXPECT_FALSE(c.report.correct);
  c = parse_study_config(head + "confusion = \"matrices.json\"\n", "/x/study.toml");
  EXPECT_TRUE(c.report.correct);
  EXPECT_EQ(c.report.confusion, "/x/matrices.json");
}

TEST(StudyConfig, MistakesNameFileLineAndKey) {
  const std::string head = "model = \"m\"\nprompts = \"p.csv\"\n";
  std::string e = error_of(head + "[generation]\nsteps = 20\nstesp = 3\n");
  EXPECT_NE(e.find("/tmp/s/study.toml:5"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'generation.stesp'"), std::string::npos) << e;
  EXPECT_NE(e.find("steps"), std::string::npos) << e;  // the keys it knows

  e = error_of(head + "[generatoin]\nsteps = 20\n");
  EXPECT_NE(e.find("unknown key 'generatoin'"), std::string::npos) << e;

  e = error_of(head + "[generation]\nsteps = \"20\"\n");
  EXPECT_NE(e.find("study.toml:4: generation.steps must be a whole number"), std::string::npos) << e;

  e = error_of(head + "[generation]\nimages_per_prompt = 0\n");
  EXPECT_NE(e.find("generation.images_per_prompt = 0 is out of range"), std::string::npos) << e;

  e = error_of(head + "[generation]\nwidth = 100\n");
  EXPECT_NE(e.find("multiple of 8"), std::string::npos) << e;

  e = error_of(head + "[mitigation]\nlr_scheduler = [\"constant\", \"cosin\"]\n");
  EXPECT_NE(e.find("mitigation.lr_scheduler = \"cosin\" is not one of"), std::string::npos) << e;

  e = error_of(head + "[mitigation]\nnum_class_images = [20, 20]\n");
  EXPECT_NE(e.find("lists a value twice"), std::string::npos) << e;

  e = error_of(head + "[mitigation]\ntrain_batch_size = 4\nnum_class_images = [2]\n");
  EXPECT_NE(e.find("smaller than train_batch_size"), std::string::npos) << e;

  e = error_of("prompts = \"p.csv\"\nmodel = \n");
  EXPECT_NE(e.find("not valid TOML"), std::string::npos) << e;

  e = error_of("model = \"m\"\n");
  EXPECT_NE(e.find("'prompts' is required"), std::string::npos) << e;

  e = error_of(head + "generation = 3\n");
  EXPECT_NE(e.find("must be a section"), std::string::npos) << e;

  e = error_of(head + "[mitigation]\naugment_check = \"faces\"\n");
  EXPECT_NE(e.find("mitigation.augment_check = \"faces\" is not one of"), std::string::npos) << e;
  e = error_of(head + "[mitigation]\naugment_oversample = 0\n");
  EXPECT_NE(e.find("mitigation.augment_oversample = 0 is out of range"), std::string::npos) << e;
  const StudyConfig checked =
      parse_study_config(head + "[mitigation]\naugment_check = \"group\"\naugment_oversample = 4\n", "/x/s.toml");
  EXPECT_EQ(checked.mitigation.augment_check, "group");
  EXPECT_EQ(checked.mitigation.augment_oversample, 4);

  // A device: auto, cpu, cuda or cuda:N.
  e = error_of("device = \"gpu\"\n" + head);
  EXPECT_NE(e.find("study.toml:1: device = \"gpu\" is not one of: auto, cpu, cuda, cuda:N"), std::string::npos) << e;
  EXPECT_EQ(parse_study_config("device = \"cuda:1\"\n" + head, "/x/study.toml").device, "cuda:1");
  EXPECT_NE(error_of("device = \"cuda:x\"\n" + head).find("is not one of"), std::string::npos);
}

TEST(StudyConfig, GridWithoutPriorPreservationHasNoClassImageAxis) {
  const StudyConfig c = parse_study_config(
      "model = \"m\"\nprompts = \"p.csv\"\n[mitigation]\nmethods = [\"dreambooth\", \"lora\"]\nprior_preservation = "
      "false\nlr_scheduler = \"linear\"\nmax_train_steps = [10]\n",
      "/x/study.toml");
  const auto grid = c.mitigation.grid();
  ASSERT_EQ(grid.size(), 2u);
  EXPECT_EQ(grid[0].name(), "dreambooth-linear-c0-s10");
  EXPECT_EQ(grid[1].name(), "lora-linear-c0-s10");
}

}  // namespace
}  // namespace fairdiff::study
