#include "mitigate/group_sampler.h"

#include <cmath>

#include "core/error.h"

namespace fairdiff::mitigate {

std::string Group::label() const {
  return gender + " " + race;
}

GroupDistribution GroupDistribution::uniform(const audit::Taxonomy& taxonomy) {
  GroupDistribution d;
  const double share = 1.0 / taxonomy.num_groups(audit::Attribute::gender_race);
  for (const auto& gender : taxonomy.genders)
    for (const auto& race : taxonomy.races) d.groups_.push_back({gender, race, share});
  return d;
}

GroupDistribution GroupDistribution::from_target(const audit::Taxonomy& taxonomy, const audit::Target& target,
                                                 int prompt) {
  const std::vector<double> shares = target.shares(audit::Attribute::gender_race, prompt);
  GroupDistribution d;
  for (size_t g = 0; g < taxonomy.genders.size(); ++g) {
    for (size_t r = 0; r < taxonomy.races.size(); ++r) {
      const double share =
          shares.at(static_cast<size_t>(taxonomy.gender_race_index(static_cast<int>(g), static_cast<int>(r))));
      d.groups_.push_back({taxonomy.genders[g], taxonomy.races[r], share});
    }
  }
  double total = 0;
  for (const auto& group : d.groups_) total += group.share;
  if (!(std::abs(total - 1.0) < 1e-6)) {
    throw InputError("target gender x race shares of prompt " + std::to_string(prompt) + " sum to " +
                     std::to_string(total) + ", expected 1");
  }
  return d;
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& text, uint64_t hash = 0xcbf29ce484222325ULL) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace

double image_uniform(uint64_t seed, const std::string& prompt_id, int64_t index, const std::string& stream) {
  // The key's parts are separated by a byte no prompt id or stream name holds.
  const uint64_t key = fnv1a(stream + '\x1f' + prompt_id + '\x1f' + std::to_string(index));
  const uint64_t bits = splitmix64(splitmix64(seed) ^ key);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

const Group& GroupDistribution::draw(uint64_t seed, const std::string& prompt_id, int64_t index) const {
  const double u = image_uniform(seed, prompt_id, index, "group");
  double cumulative = 0;
  const Group* last = nullptr;
  for (const auto& group : groups_) {
    if (group.share <= 0) continue;
    cumulative += group.share;
    last = &group;
    if (u < cumulative) return group;
  }
  if (!last) throw InputError("the target distribution gives every group a share of 0");
  return *last;  // rounding: u at the very top of [0, 1)
}

}  // namespace fairdiff::mitigate
