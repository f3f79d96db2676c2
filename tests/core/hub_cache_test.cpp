// Hub ids and the Hugging Face cache layout (core/hub_cache.h): parsing, where the cache is, and how a model
// reference resolves (a local path first, then the cache). The downloads are tested end to end in
// tests/cli/hub_cli_test.cpp against a local HTTP server.
#include "core/hub_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/sha256.h"
#include "test_paths.h"

namespace fairdiff {
namespace {
namespace fs = std::filesystem;

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

using test::ScopedEnv;

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A snapshot in the huggingface_hub layout: files are relative symlinks into blobs/.
fs::path make_snapshot(const fs::path& cache, const std::string& folder, const std::vector<std::string>& files) {
  const fs::path repo = cache / folder;
  const fs::path snapshot = repo / "snapshots" / kCommit;
  for (const std::string& file : files) {
    const std::string etag = sha256_hex(file);
    write(repo / "blobs" / etag, "{}");
    fs::create_directories((snapshot / file).parent_path());
    fs::create_symlink((repo / "blobs" / etag).lexically_relative((snapshot / file).parent_path()), snapshot / file);
  }
  return snapshot;
}

TEST(HubModelId, ParsesOrgNameAndRevision) {
  auto id = parse_hub_model_id("stabilityai/stable-diffusion-2-1-base");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->repo, "stabilityai/stable-diffusion-2-1-base");
  EXPECT_EQ(id->revision, "main");
  EXPECT_FALSE(id->revision_given);
  EXPECT_EQ(id->cache_folder_name(), "models--stabilityai--stable-diffusion-2-1-base");
  EXPECT_EQ(id->str(), "stabilityai/stable-diffusion-2-1-base");

  id = parse_hub_model_id("org/name_v1.5@refs/pr/3");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->repo, "org/name_v1.5");
  EXPECT_EQ(id->revision, "refs/pr/3");
  EXPECT_EQ(id->str(), "org/name_v1.5@refs/pr/3");
}

TEST(HubModelId, RejectsPathsAndBadNames) {
  for (const char* text :
       {"model", "./org/name", "/abs/path", "org/name/unet", "org//name", "-org/name", "org/name.", "org/na--me",
        "org/na..me", "org/name@", "org/name@../x", "org/name@a//b", "org/na me", "org/model.safetensors/x", ""}) {
    EXPECT_FALSE(parse_hub_model_id(text)) << text;
  }
  EXPECT_FALSE(parse_hub_model_id("org/" + std::string(100, 'a')));
  EXPECT_TRUE(is_commit_hash(kCommit));
  EXPECT_FALSE(is_commit_hash("main"));
  EXPECT_FALSE(is_commit_hash("0123456789ABCDEF0123456789abcdef01234567"));
}

TEST(HubCache, FolderFollowsHuggingFaceHubEnvironment) {
  ScopedEnv env;
  env.set("HF_HUB_CACHE", std::nullopt);
  env.set("HUGGINGFACE_HUB_CACHE", std::nullopt);
  env.set("HF_HOME", std::nullopt);
  env.set("XDG_CACHE_HOME", std::nullopt);
  env.set("HOME", "/home/someone");
  EXPECT_EQ(hub_cache_dir(), fs::path("/home/someone/.cache/huggingface/hub"));
  env.set("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(hub_cache_dir(), fs::path("/xdg/huggingface/hub"));
  env.set("HF_HOME", "~/hf");
  EXPECT_EQ(hub_cache_dir(), fs::path("/home/someone/hf/hub"));
  env.set("HF_HUB_CACHE", "/fast/hub");
  EXPECT_EQ(hub_cache_dir(), fs::path("/fast/hub"));

  env.set("TRANSFORMERS_OFFLINE", std::nullopt);
  for (const char* on : {"1", "true", "YES", "on"}) {
    env.set("HF_HUB_OFFLINE", on);
    EXPECT_TRUE(hub_offline()) << on;
  }
  env.set("HF_HUB_OFFLINE", "0");
  EXPECT_FALSE(hub_offline());
}

TEST(HubCache, ResolvesBranchThroughRefsAndCommitDirectly) {
  const fs::path cache = test::scratch_dir("hub_cache_resolve");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", cache.string());
  std::vector<std::string> files = {"model_index.json", "unet/config.json"};
  const fs::path snapshot = make_snapshot(cache, "models--org--tiny", files);
  write(cache / "models--org--tiny" / "refs" / "main", kCommit);  // huggingface_hub writes no newline
  write(cache / "models--org--tiny" / "refs" / "v1", kCommit + "\n");

  EXPECT_EQ(resolve_model_path("org/tiny"), snapshot);
  EXPECT_EQ(resolve_model_path("org/tiny@v1"), snapshot);
  EXPECT_EQ(resolve_model_path("org/tiny@" + kCommit), snapshot);
  EXPECT_EQ(fs::read_symlink(snapshot / "unet" / "config.json").string().rfind("../../../blobs/", 0), 0u);

  const auto missing = missing_model_files(snapshot);
  EXPECT_NE(std::find(missing.begin(), missing.end(), "vae/config.json"), missing.end());
  EXPECT_NE(std::find(missing.begin(), missing.end(), "unet/diffusion_pytorch_model.safetensors"), missing.end());
  EXPECT_EQ(std::find(missing.begin(), missing.end(), "model_index.json"), missing.end());
}

TEST(HubCache, UncachedIdFailsSayingWhereItLookedAndHowToPull) {
  const fs::path cache = test::scratch_dir("hub_cache_uncached");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", cache.string());
  try {
    resolve_model_path("org/absent@v2");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find((cache / "models--org--absent" / "refs" / "v2").string()), std::string::npos) << message;
    EXPECT_NE(message.find("fairdiff model pull org/absent --revision v2"), std::string::npos) << message;
  }
  // A snapshot without model_index.json (a partial download) is named as such.
  make_snapshot(cache, "models--org--partial", {"unet/config.json"});
  write(cache / "models--org--partial" / "refs" / "main", kCommit);
  try {
    resolve_model_path("org/partial");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("without model_index.json"), std::string::npos) << e.what();
  }
}

TEST(HubCache, ExistingLocalPathWinsOverHubId) {
  const fs::path root = test::scratch_dir("hub_cache_local_wins");
  ScopedEnv env;
  env.set("HF_HUB_CACHE", (root / "cache").string());
  make_snapshot(root / "cache", "models--org--tiny", {"model_index.json"});
  write(root / "cache" / "models--org--tiny" / "refs" / "main", kCommit);
  write(root / "org" / "tiny" / "model_index.json", "{}");

  // Relative to a base folder (a study config's), and absolute.
  EXPECT_EQ(resolve_model_path("org/tiny", root), root / "org" / "tiny");
  EXPECT_EQ(resolve_model_path((root / "org" / "tiny").string()), root / "org" / "tiny");
  // Not beside the base: the cache.
  EXPECT_EQ(resolve_model_path("org/tiny", root / "elsewhere"),
            root / "cache" / "models--org--tiny" / "snapshots" / kCommit);
  // Not a Hub id and not there: returned for the loader to report.
  EXPECT_EQ(resolve_model_path("./no/such/model"), fs::path("./no/such/model"));
  EXPECT_EQ(resolve_model_path(""), fs::path());
}

TEST(Sha256, IncrementalEqualsOneShotAndFile) {
  std::string bytes;
  for (int i = 0; i < 300; ++i) bytes += static_cast<char>(i * 7 + 3);
  for (size_t size : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300}) {
    const std::string data = bytes.substr(0, size);
    for (size_t piece : {1, 7, 64, 1000}) {
      Sha256 hasher;
      for (size_t at = 0; at < data.size(); at += piece) hasher.update(data.data() + at, std::min(piece, size - at));
      EXPECT_EQ(hasher.hex_digest(), sha256_hex(data)) << size << " in pieces of " << piece;
    }
  }
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const fs::path file = test::scratch_dir("sha256_file") / "data";
  std::string big(3 * 1024 * 1024 + 17, 'x');
  write(file, big);
  EXPECT_EQ(sha256_file(file), sha256_hex(big));
}

}  // namespace
}  // namespace fairdiff
