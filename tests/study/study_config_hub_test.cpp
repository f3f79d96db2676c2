// A study's `model = "ORG/NAME"`: a folder beside the config wins, else the Hub id's snapshot in the Hugging Face
// cache (core/hub_cache.h), else an error that says how to pull it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "core/error.h"
#include "study/study_config.h"
#include "test_paths.h"

namespace fairdiff::study {
namespace {
namespace fs = std::filesystem;

const std::string kCommit = "89abcdef0123456789abcdef0123456789abcdef";

class HubCacheEnv {
 public:
  explicit HubCacheEnv(const fs::path& cache) {
    if (const char* old = std::getenv("HF_HUB_CACHE")) saved_ = old;
    ::setenv("HF_HUB_CACHE", cache.c_str(), 1);
  }
  ~HubCacheEnv() {
    if (saved_) {
      ::setenv("HF_HUB_CACHE", saved_->c_str(), 1);
    } else {
      ::unsetenv("HF_HUB_CACHE");
    }
  }

 private:
  std::optional<std::string> saved_;
};

TEST(StudyConfigHub, ModelIsAHubIdInTheCacheUnlessAFolderBesideTheConfigHasItsName) {
  const fs::path root = test::scratch_dir("study_config_hub");
  HubCacheEnv env(root / "cache");
  const fs::path snapshot = root / "cache" / "models--org--tiny" / "snapshots" / kCommit;
  fs::create_directories(snapshot);
  std::ofstream(snapshot / "model_index.json") << "{}";
  fs::create_directories(root / "cache" / "models--org--tiny" / "refs");
  std::ofstream(root / "cache" / "models--org--tiny" / "refs" / "main") << kCommit;

  const std::string text = seed_study_toml("org/tiny", "prompts.csv");
  EXPECT_EQ(parse_study_config(text, root / "a" / "study.toml").model_dir(), snapshot);
  fs::create_directories(root / "b" / "org" / "tiny");
  EXPECT_EQ(parse_study_config(text, root / "b" / "study.toml").model_dir(), root / "b" / "org" / "tiny");

  const StudyConfig missing = parse_study_config(seed_study_toml("org/absent", "prompts.csv"), root / "study.toml");
  try {
    missing.model_dir();
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("fairdiff model pull org/absent"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fairdiff::study
