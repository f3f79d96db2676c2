// The option tables (src/cli/options.h): --help prints each bound field's initialiser as its default, the same
// spellings across subcommands, `bench` takes its benchmarks as one shape, and a library error about a config
// field comes back naming the flag that set it.
#include <gtest/gtest.h>

#include "test_paths.h"

namespace fairdiff {
namespace {

std::string exe() {
  return FAIRDIFF_EXE;
}

std::string help_of(const std::string& command) {
  std::string log;
  EXPECT_EQ(test::run_command(exe() + " " + command + " --help", &log), 0) << log;
  return log;
}

TEST(OptionTables, HelpPrintsTheStructDefaults) {
  const std::string generate = help_of("generate");
  EXPECT_NE(generate.find("denoising steps (default 50)"), std::string::npos) << generate;
  EXPECT_NE(generate.find("(default 7.5)"), std::string::npos) << generate;
  EXPECT_NE(generate.find("--dtype auto|fp32|fp16|bf16"), std::string::npos) << generate;
  const std::string finetune = help_of("finetune");
  EXPECT_NE(finetune.find("--class-steps N"), std::string::npos) << finetune;
  EXPECT_NE(finetune.find("--class-guidance G"), std::string::npos) << finetune;
  EXPECT_NE(finetune.find("base learning rate (default 5e-06)"), std::string::npos) << finetune;
  EXPECT_NE(finetune.find("checkpoints kept (default 1)"), std::string::npos) << finetune;
}

TEST(OptionTables, BenchIsOneShape) {
  const std::string bench = help_of("bench");
  for (const char* what : {"generate", "finetune"}) EXPECT_NE(bench.find(what), std::string::npos) << bench;
  EXPECT_EQ(bench.find("fused-ops"), std::string::npos) << bench;
  const std::string generate = help_of("bench generate");
  EXPECT_NE(generate.find("--profile-kernels"), std::string::npos) << generate;
  EXPECT_EQ(generate.find("--profile "), std::string::npos) << "--profile means the face profile only";
  const std::string finetune = help_of("bench finetune");
  EXPECT_NE(finetune.find("--iterations K"), std::string::npos) << finetune;
  std::string log;
  EXPECT_EQ(test::run_command(exe() + " bench-finetune --help", &log), 2) << log;
  EXPECT_EQ(test::run_command(exe() + " bench nothing", &log), 2) << log;
  EXPECT_NE(log.find("generate"), std::string::npos) << log;
}

TEST(OptionTables, LibraryFieldErrorsNameTheFlag) {
  // The pipeline rejects its `width` field (not a multiple of the tiny VAE's scale factor 2): bench generate set it
  // with --width, and the message says so.
  std::string log;
  const std::string model = (test::fixtures_dir() / "tiny-sd2").string();
  EXPECT_EQ(test::run_command(exe() + " bench generate --model '" + model +
                                  "' --device cpu --width 33 --height 32 --steps 2 --iterations 1 --warmup 0",
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("--width 33: expected a positive multiple of 2"), std::string::npos) << log;
}

}  // namespace
}  // namespace fairdiff
