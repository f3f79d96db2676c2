#include "audit/builtin_dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <stdexcept>

#include "audit/prompt_rewriter.h"
#include "core/csv.h"
#include "core/error.h"

namespace fairdiff::audit {
namespace {

// splitmix64: a tiny generator whose stream is the same on every platform.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) without modulo bias (rejection).
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit) x = next();
    return x % n;
  }

 private:
  uint64_t state_;
};

template <typename T>
void shuffle(std::vector<T>& items, SplitMix64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
}

// `count` photos of one cell: distinct while the pool lasts, then the pool again in a fresh order.
std::vector<const LabeledPhoto*> draw(const std::vector<const LabeledPhoto*>& pool, int64_t count, SplitMix64& rng) {
  std::vector<const LabeledPhoto*> out;
  while (static_cast<int64_t>(out.size()) < count) {
    std::vector<const LabeledPhoto*> order = pool;
    shuffle(order, rng);
    const auto take = std::min<int64_t>(count - static_cast<int64_t>(out.size()), static_cast<int64_t>(order.size()));
    out.insert(out.end(), order.begin(), order.begin() + take);
  }
  return out;
}

std::string cell_name(const Taxonomy& taxonomy, int gender, int race) {
  return taxonomy.genders[static_cast<size_t>(gender)] + " " + taxonomy.races[static_cast<size_t>(race)];
}

// Indices into `photos` per gender x race cell (Taxonomy::gender_race_index), in the photos' order.
std::vector<std::vector<size_t>> indices_by_cell(const std::vector<LabeledPhoto>& photos, const Taxonomy& taxonomy) {
  std::vector<std::vector<size_t>> pools(taxonomy.genders.size() * taxonomy.races.size());
  for (size_t i = 0; i < photos.size(); ++i)
    pools[static_cast<size_t>(taxonomy.gender_race_index(photos[i].gender, photos[i].race))].push_back(i);
  return pools;
}

}  // namespace

std::vector<std::vector<int64_t>> measured_cell_counts(const Run& run, const PromptSet& prompts,
                                                       const Taxonomy& taxonomy) {
  const size_t cells = taxonomy.genders.size() * taxonomy.races.size();
  std::vector<std::vector<int64_t>> counts(static_cast<size_t>(prompts.size()), std::vector<int64_t>(cells, 0));
  for (const ImageRecord& image : run.images) {
    if (image.prompt < 0 || image.gender < 0 || image.race < 0) continue;
    ++counts[static_cast<size_t>(image.prompt)]
            [static_cast<size_t>(taxonomy.gender_race_index(image.gender, image.race))];
  }
  return counts;
}

std::vector<int64_t> apportion(const std::vector<int64_t>& weights, int64_t total) {
  int64_t sum = 0;
  for (int64_t w : weights) {
    if (w < 0) throw std::invalid_argument("apportion: negative weight");
    sum += w;
  }
  std::vector<int64_t> parts(weights.size(), 0);
  if (total == 0) return parts;
  if (sum == 0) throw std::invalid_argument("apportion: all weights are zero");
  if (total < 0 || sum > (int64_t{1} << 31) || total > (int64_t{1} << 31))
    throw std::invalid_argument("apportion: total and weights must be in [0, 2^31]");
  // Integer arithmetic: floor parts, then the largest remainders (ties to the lower index) get one more.
  std::vector<std::pair<int64_t, size_t>> remainders;
  int64_t given = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const int64_t exact = weights[i] * total;
    parts[i] = exact / sum;
    given += parts[i];
    remainders.emplace_back(exact % sum, i);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total; ++k, ++given) ++parts[remainders[k].second];
  return parts;
}

std::vector<std::vector<size_t>> draw_known_truth(const std::vector<LabeledPhoto>& photos,
                                                  const std::vector<std::vector<int64_t>>& cell_weights,
                                                  int64_t max_per_prompt, uint64_t seed, const Taxonomy& taxonomy,
                                                  const PromptSet& prompts) {
  const size_t cells = taxonomy.genders.size() * taxonomy.races.size();
  std::vector<std::vector<size_t>> pools = indices_by_cell(photos, taxonomy);
  std::vector<std::vector<size_t>> drawn(cell_weights.size());
  for (size_t p = 0; p < cell_weights.size(); ++p) {
    const std::vector<int64_t>& weights = cell_weights[p];
    if (weights.size() != cells) throw std::invalid_argument("draw_known_truth: one weight per gender x race cell");
    if (std::all_of(weights.begin(), weights.end(), [](int64_t w) { return w == 0; })) continue;
    for (size_t c = 0; c < cells; ++c) {
      if (weights[c] > 0 && pools[c].empty()) {
        throw InputError("prompt '" + prompts.ids[p] + "' wants " +
                         cell_name(taxonomy, static_cast<int>(c / taxonomy.races.size()),
                                   static_cast<int>(c % taxonomy.races.size())) +
                         " faces and the labeled photos have none");
      }
    }
    int64_t n = max_per_prompt;
    std::vector<int64_t> counts;
    for (; n > 0; --n) {
      counts = apportion(weights, n);
      bool fits = true;
      for (size_t c = 0; c < cells && fits; ++c) fits = counts[c] <= static_cast<int64_t>(pools[c].size());
      if (fits) break;
    }
    // Each prompt's own stream: its draw does not depend on the other prompts or on their order.
    SplitMix64 rng(seed ^ (0x9E3779B97F4A7C15ULL * (p + 1)));
    for (size_t c = 0; c < cells; ++c) {
      std::vector<size_t> order = pools[c];
      shuffle(order, rng);
      if (n > 0) drawn[p].insert(drawn[p].end(), order.begin(), order.begin() + counts[c]);
    }
  }
  return drawn;
}

void split_for_calibration(const std::vector<LabeledPhoto>& photos, double fraction, uint64_t seed,
                           const Taxonomy& taxonomy, std::vector<size_t>& calibration, std::vector<size_t>& rest) {
  if (!(fraction > 0 && fraction < 1)) throw std::invalid_argument("split_for_calibration: fraction in (0, 1)");
  std::vector<std::vector<size_t>> pools = indices_by_cell(photos, taxonomy);
  std::vector<bool> in_calibration(photos.size(), false);
  SplitMix64 rng(seed ^ 0xC0FFEE5EEDULL);
  for (auto& pool : pools) {
    shuffle(pool, rng);
    const auto take = static_cast<size_t>(std::llround(fraction * static_cast<double>(pool.size())));
    for (size_t k = 0; k < take && k < pool.size(); ++k) in_calibration[pool[k]] = true;
  }
  calibration.clear();
  rest.clear();
  for (size_t i = 0; i < photos.size(); ++i) (in_calibration[i] ? calibration : rest).push_back(i);
}

BuiltinDataset build_builtin_dataset(const PromptSet& prompts, const std::vector<std::vector<int64_t>>& cell_counts,
                                     const std::vector<LabeledPhoto>& photos, const Taxonomy& taxonomy,
                                     const CaptionRecipe& recipe) {
  if (recipe.rows_per_prompt < 1 || recipe.group_rows_per_cell < 0 || recipe.neutral_rows < 0 ||
      recipe.max_photos_per_cell < 1) {
    throw UsageError("caption recipe: rows per prompt and photos per cell must be >= 1, group and neutral rows >= 0");
  }
  const int genders = static_cast<int>(taxonomy.genders.size());
  const int races = static_cast<int>(taxonomy.races.size());
  const size_t cells = static_cast<size_t>(genders * races);
  if (cell_counts.size() != static_cast<size_t>(prompts.size())) {
    throw InputError("caption recipe: measured counts for " + std::to_string(cell_counts.size()) + " prompts, but " +
                     std::to_string(prompts.size()) + " prompts in " + prompts.source);
  }

  SplitMix64 rng(recipe.seed);
  // Each cell's pool: its photos in file order, shuffled, at most max_photos_per_cell.
  std::vector<std::vector<const LabeledPhoto*>> pools(cells);
  for (const LabeledPhoto& photo : photos) {
    if (photo.gender < 0 || photo.gender >= genders || photo.race < 0 || photo.race >= races) {
      throw InputError("caption recipe: photo " + photo.file + " has no gender x race cell of the taxonomy");
    }
    pools[static_cast<size_t>(taxonomy.gender_race_index(photo.gender, photo.race))].push_back(&photo);
  }
  for (auto& pool : pools) {
    std::sort(pool.begin(), pool.end(), [](const LabeledPhoto* a, const LabeledPhoto* b) { return a->file < b->file; });
    shuffle(pool, rng);
    if (static_cast<int64_t>(pool.size()) > recipe.max_photos_per_cell)
      pool.resize(static_cast<size_t>(recipe.max_photos_per_cell));
  }
  auto pool_of = [&](int gender, int race) -> const std::vector<const LabeledPhoto*>& {
    const auto& pool = pools[static_cast<size_t>(taxonomy.gender_race_index(gender, race))];
    if (pool.empty()) throw InputError("caption recipe: no photo of " + cell_name(taxonomy, gender, race));
    return pool;
  };

  BuiltinDataset out;
  auto add_rows = [&](int gender, int race, int64_t count, const std::string& caption, const std::string& kind,
                      const std::string& prompt_id) {
    if (count == 0) return;
    for (const LabeledPhoto* photo : draw(pool_of(gender, race), count, rng)) {
      out.rows.push_back({photo->file, caption, kind, prompt_id, gender, race});
    }
  };

  for (int p = 0; p < prompts.size(); ++p) {
    const auto& counts = cell_counts[static_cast<size_t>(p)];
    if (counts.size() != cells)
      throw InputError("caption recipe: counts of prompt " + prompts.ids[p] + " are not per cell");
    int64_t faces = 0;
    for (int64_t c : counts) faces += c;
    if (faces == 0) throw InputError("caption recipe: prompt " + prompts.ids[p] + " has no measured face");
    const std::vector<int64_t> rows = apportion(counts, recipe.rows_per_prompt);
    const std::string& prompt = prompts.texts[static_cast<size_t>(p)];
    for (int g = 0; g < genders; ++g) {
      for (int r = 0; r < races; ++r) {
        const auto cell = static_cast<size_t>(taxonomy.gender_race_index(g, r));
        add_rows(g, r, rows[cell], prompt, "prompt", prompts.ids[p]);
        out.truth.push_back({prompts.ids[p], prompt, g, r, rows[cell],
                             static_cast<double>(rows[cell]) / static_cast<double>(recipe.rows_per_prompt),
                             counts[cell], static_cast<double>(counts[cell]) / static_cast<double>(faces)});
      }
    }
    for (int g = 0; g < genders; ++g) {
      for (int r = 0; r < races; ++r) {
        const std::string phrase =
            group_phrase(taxonomy.races[static_cast<size_t>(r)], taxonomy.genders[static_cast<size_t>(g)]);
        add_rows(g, r, recipe.group_rows_per_cell, rewrite_prompt(prompt, phrase), "group", prompts.ids[p]);
      }
    }
  }
  const std::vector<int64_t> neutral = apportion(std::vector<int64_t>(cells, 1), recipe.neutral_rows);
  for (int g = 0; g < genders; ++g) {
    for (int r = 0; r < races; ++r) {
      add_rows(g, r, neutral[static_cast<size_t>(taxonomy.gender_race_index(g, r))], recipe.neutral_prompt, "neutral",
               "");
    }
  }
  std::set<std::string> used;
  for (const CaptionRow& row : out.rows) used.insert(row.file);
  out.photos.assign(used.begin(), used.end());
  return out;
}

std::string caption_rows_csv(const BuiltinDataset& dataset, const Taxonomy& taxonomy) {
  std::string text = csv_line({"file", "caption", "kind", "prompt_id", "gender", "race"});
  for (const CaptionRow& row : dataset.rows) {
    text += csv_line({row.file, row.caption, row.kind, row.prompt_id, taxonomy.genders[static_cast<size_t>(row.gender)],
                      taxonomy.races[static_cast<size_t>(row.race)]});
  }
  return text;
}

std::string truth_csv(const BuiltinDataset& dataset, const Taxonomy& taxonomy) {
  std::string text =
      csv_line({"prompt_id", "prompt", "gender", "race", "rows", "injected_share", "study_faces", "study_share"});
  char share[32], study[32];
  for (const TruthRow& row : dataset.truth) {
    std::snprintf(share, sizeof(share), "%.6f", row.injected_share);
    std::snprintf(study, sizeof(study), "%.6f", row.study_share);
    text += csv_line({row.prompt_id, row.prompt, taxonomy.genders[static_cast<size_t>(row.gender)],
                      taxonomy.races[static_cast<size_t>(row.race)], std::to_string(row.rows), share,
                      std::to_string(row.study_faces), study});
  }
  return text;
}

}  // namespace fairdiff::audit
