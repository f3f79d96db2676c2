// End-to-end: fairdiff train-classifier on a small subset of real labeled photos: reproducible heads, a card
// and confusion matrices the audit reads, a damaged embedding cache rebuilt, bad inputs refused clearly.
#include <gtest/gtest.h>

#include <fstream>

#include "core/fs.h"
#include "core/json.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

std::string q(const fs::path& p) {
  return "'" + p.string() + "'";
}

TEST(TrainClassifierCommand, RetrainsByteForByteAndWritesCardAndConfusion) {
  const fs::path root = test::scratch_dir("train_classifier_cli");
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  const std::string base = std::string(FAIRDIFF_EXE) + " train-classifier --images " + q(faces) +
                           " --embedder faceres --limit 48 --hidden 16 --epochs 15 --holdout-fraction 0.25 --seed 3";
  std::string log;
  ASSERT_EQ(test::run_command(base + " --out " + q(root / "a" / "heads.safetensors"), &log), 0) << log;
  EXPECT_NE(log.find("48 photos"), std::string::npos) << log;
  // A second run, its own embedding cache: the same heads, byte for byte.
  ASSERT_EQ(test::run_command(base + " --out " + q(root / "b" / "heads.safetensors"), &log), 0) << log;
  EXPECT_EQ(read_file(root / "a" / "heads.safetensors"), read_file(root / "b" / "heads.safetensors"));
  EXPECT_TRUE(fs::is_directory(root / "a" / "heads.embeddings"));

  Json card = read_json_file(root / "a" / "heads.card.json");
  EXPECT_EQ(card["data"]["photos"], 48);
  EXPECT_EQ(card["data"]["embedder"], "faceres");
  ASSERT_EQ(card["heads"].size(), 3u);
  EXPECT_EQ(card["heads"][1]["attribute"], "race");
  EXPECT_EQ(card["heads"][1]["classes"].size(), 7u);
  Json confusion = read_json_file(root / "a" / "heads.confusion.json");
  for (const char* attribute : {"gender", "race", "age"}) {
    ASSERT_TRUE(confusion.contains(attribute)) << attribute;
    const size_t classes = confusion[attribute]["labels"].size();
    ASSERT_EQ(confusion[attribute]["confusion"].size(), classes) << attribute;
  }

  // Damage the cache: the next run detects it, recomputes, and still gives the same heads.
  fs::path chunk = root / "a" / "heads.embeddings" / "chunk-00000.safetensors";
  ASSERT_TRUE(fs::exists(chunk));
  fs::resize_file(chunk, fs::file_size(chunk) / 2);
  ASSERT_EQ(test::run_command(base + " --out " + q(root / "a" / "heads.safetensors"), &log), 0) << log;
  EXPECT_NE(log.find("recomputing"), std::string::npos) << log;
  EXPECT_EQ(read_file(root / "a" / "heads.safetensors"), read_file(root / "b" / "heads.safetensors"));

  // The default profile reads the heads.
  ASSERT_EQ(
      test::run_command(std::string(FAIRDIFF_EXE) + " eval-classifier --images " + q(faces) + " --limit 4 --heads " +
                            q(root / "a" / "heads.safetensors") + " --json " + q(root / "eval.json"),
                        &log),
      0)
      << log;
}

TEST(TrainClassifierCommand, BadInputsAreRefusedClearly) {
  const fs::path root = test::scratch_dir("train_classifier_bad");
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  const std::string exe = std::string(FAIRDIFF_EXE) + " train-classifier";
  std::string log;
  std::ofstream(root / "bad.csv") << "file,gender,race,age\nfairface_0001.jpg,male,White,20-29\n"
                                     "fairface_0002.jpg,female,Martian,30-39\n";
  EXPECT_EQ(test::run_command(exe + " --images " + q(faces) + " --labels " + q(root / "bad.csv") + " --out " +
                                  q(root / "h.safetensors"),
                              &log),
            3)
      << log;
  EXPECT_NE(log.find("bad.csv:3"), std::string::npos) << log;
  EXPECT_NE(log.find("martian"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root / "h.safetensors"));

  EXPECT_EQ(test::run_command(exe + " --images " + q(root / "nowhere") + " --out " + q(root / "h.safetensors"), &log),
            3)
      << log;
  EXPECT_NE(log.find("nowhere"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(exe + " --images " + q(faces) + " --out " + q(root / "h.bin"), &log), 2) << log;
  EXPECT_EQ(
      test::run_command(exe + " --images " + q(faces) + " --head forest --out " + q(root / "h.safetensors"), &log), 2)
      << log;
  EXPECT_EQ(test::run_command(
                exe + " --images " + q(faces) + " --holdout-fraction 1.5 --out " + q(root / "h.safetensors"), &log),
            2)
      << log;
  // Every photo excluded: nothing to train on.
  EXPECT_EQ(test::run_command(exe + " --images " + q(faces) + " --exclude " + q(faces / "labels.csv") + ":file --out " +
                                  q(root / "h.safetensors"),
                              &log),
            3)
      << log;
  EXPECT_NE(log.find("no photos left"), std::string::npos) << log;
  // Fine-tuning the network needs faceres as the embedder, and a device that exists.
  EXPECT_EQ(test::run_command(exe + " --images " + q(faces) + " --embedder mobileface --tune-network --out " +
                                  q(root / "h.safetensors"),
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("must have a faceres or faceres@flip part"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(exe + " --images " + q(faces) + " --embedder faceres --tune-network --tune-device tpu " +
                                  "--out " + q(root / "h.safetensors"),
                              &log),
            2)
      << log;
  EXPECT_NE(log.find("'tpu' is not a device"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(exe + " --images " + q(faces) + " --face-device tpu --out " + q(root / "h.safetensors"), &log),
      2)
      << log;
  EXPECT_NE(log.find("--face-device tpu: expected cpu, cuda"), std::string::npos) << log;
}

// --tune-network (issue 14): faceres fine-tuned on the training split, its parameters written beside the heads and
// named by their card; the default profile then embeds with the tuned network, and refuses heads whose network
// file is missing.
TEST(TrainClassifierCommand, TunesTheNetworkAndTheDefaultProfileLoadsIt) {
  const fs::path root = test::scratch_dir("train_classifier_tune");
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  std::string log;
  ASSERT_EQ(test::run_command(std::string(FAIRDIFF_EXE) + " train-classifier --images " + q(faces) +
                                  " --embedder faceres --limit 24 --hidden 8 --epochs 5 --holdout-fraction 0.25 " +
                                  "--tune-network --tune-epochs 2 --tune-batch-size 6 --tune-learning-rate 1e-4 " +
                                  "--out " + q(root / "heads.safetensors"),
                              &log),
            0)
      << log;
  EXPECT_NE(log.find("network fine-tuning epoch 2"), std::string::npos) << log;
  ASSERT_TRUE(fs::exists(root / "heads.network.safetensors"));
  Json card = read_json_file(root / "heads.card.json");
  EXPECT_EQ(card["data"]["tuned_network"], "heads.network.safetensors");
  EXPECT_EQ(card["data"]["tuning"]["epoch_loss"].size(), 2u);
  // The network saw exactly the heads' training split (their validation faces stay unseen).
  EXPECT_EQ(card["data"]["tuning"]["training_faces"], card["split"]["train"]);
  EXPECT_TRUE(card["data"].contains("tuned_network_sha256"));
  // The tuned descriptors have their own cache beside the frozen network's.
  EXPECT_TRUE(fs::is_directory(root / "heads.embeddings" / "tuned"));

  const std::string eval = std::string(FAIRDIFF_EXE) + " eval-classifier --images " + q(faces) + " --limit 4 --heads " +
                           q(root / "heads.safetensors") + " --json " + q(root / "eval.json");
  ASSERT_EQ(test::run_command(eval, &log), 0) << log;
  fs::rename(root / "heads.network.safetensors", root / "moved.safetensors");
  EXPECT_NE(test::run_command(eval, &log), 0) << log;
  EXPECT_NE(log.find("heads.network.safetensors is missing"), std::string::npos) << log;
}

// --tune-only on one machine, --tuned-network on another (issue 14: the GPU host tunes, the heads train anywhere):
// the first writes the network file alone and resumes from its finished checkpoint when run again; the second copies
// the file beside its heads and records where it came from.
TEST(TrainClassifierCommand, TuneOnlyThenHeadsOnTheTunedNetwork) {
  const fs::path root = test::scratch_dir("train_classifier_tune_only");
  const fs::path faces = test::shared_dir() / "faces/fairface_margin125";
  const std::string base = std::string(FAIRDIFF_EXE) + " train-classifier --images " + q(faces) +
                           " --embedder faceres --limit 16 --hidden 8 --epochs 3 --holdout-fraction 0.25 ";
  const std::string tune = base + "--tune-network --tune-only --tune-epochs 1 --tune-batch-size 6 --out " +
                           q(root / "gpu/heads.safetensors");
  std::string log;
  ASSERT_EQ(test::run_command(tune, &log), 0) << log;
  EXPECT_TRUE(fs::exists(root / "gpu/heads.network.safetensors"));
  EXPECT_FALSE(fs::exists(root / "gpu/heads.safetensors"));
  EXPECT_NE(log.find("--tune-only: no heads"), std::string::npos) << log;
  ASSERT_EQ(test::run_command(tune, &log), 0) << log;
  EXPECT_NE(log.find("holds the finished run"), std::string::npos) << log;

  ASSERT_EQ(test::run_command(base + "--tuned-network " + q(root / "gpu/heads.network.safetensors") + " --out " +
                                  q(root / "cpu/heads.safetensors"),
                              &log),
            0)
      << log;
  EXPECT_TRUE(fs::exists(root / "cpu/heads.network.safetensors"));
  Json card = read_json_file(root / "cpu/heads.card.json");
  EXPECT_EQ(card["data"]["tuned_network"], "heads.network.safetensors");
  EXPECT_EQ(card["data"]["tuning"]["from"], (root / "gpu/heads.network.safetensors").string());
  EXPECT_EQ(card["data"]["tuning"]["epochs"], 1);

  // Bad combinations and files.
  EXPECT_EQ(test::run_command(base + "--tune-only --out " + q(root / "x/h.safetensors"), &log), 2) << log;
  EXPECT_NE(log.find("--tune-only needs --tune-network"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(base + "--tune-network --tuned-network " + q(root / "gpu/heads.network.safetensors") +
                                  " --out " + q(root / "x/h.safetensors"),
                              &log),
            2)
      << log;
  EXPECT_EQ(test::run_command(
                base + "--tuned-network " + q(root / "cpu/heads.safetensors") + " --out " + q(root / "x/h.safetensors"),
                &log),
            3)
      << log;
  EXPECT_NE(log.find("not a tuned network"), std::string::npos) << log;
  EXPECT_EQ(
      test::run_command(
          base + "--tuned-network " + q(root / "missing.safetensors") + " --out " + q(root / "x/h.safetensors"), &log),
      3)
      << log;
  EXPECT_NE(log.find("missing.safetensors"), std::string::npos) << log;
}

}  // namespace
}  // namespace fairdiff
