#include "audit/distribution.h"

#include <algorithm>
#include <set>

#include "core/error.h"

namespace fairdiff::audit {

double GroupDistribution::share_of_all(int k) const {
  return n_images > 0 ? static_cast<double>(counts[k]) / static_cast<double>(n_images) : 0.0;
}

double GroupDistribution::share_of_determined(int k) const {
  return n_determined() > 0 ? static_cast<double>(counts[k]) / static_cast<double>(n_determined()) : 0.0;
}

double GroupDistribution::none_share() const {
  return n_images > 0 ? static_cast<double>(n_none) / static_cast<double>(n_images) : 0.0;
}

std::vector<double> GroupDistribution::determined_shares() const {
  std::vector<double> shares;
  if (n_determined() <= 0) return shares;
  for (int k = 0; k < num_groups(); ++k) shares.push_back(share_of_determined(k));
  return shares;
}

std::vector<std::string> age_labels_of(const std::vector<Run>& runs) {
  std::set<std::string> labels;
  for (const auto& run : runs) {
    for (const auto& image : run.images) {
      if (image.age != kNoFace) labels.insert(image.age);
    }
  }
  std::vector<std::string> sorted(labels.begin(), labels.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const std::string& a, const std::string& b) { return age_sort_key(a) < age_sort_key(b); });
  return sorted;
}

GroupDistribution make_distribution(const std::vector<const ImageRecord*>& images, Attribute attribute,
                                    const Taxonomy& taxonomy, const std::vector<std::string>& age_labels) {
  GroupDistribution d;
  d.attribute = attribute;
  d.labels = attribute == Attribute::age ? age_labels : taxonomy.group_labels(attribute);
  d.counts.assign(d.labels.size(), 0);
  for (const ImageRecord* image : images) {
    ++d.n_images;
    int group = -1;
    switch (attribute) {
      case Attribute::gender:
        group = image->gender;
        break;
      case Attribute::race:
        group = image->race;
        break;
      case Attribute::gender_race:
        group = image->gender >= 0 && image->race >= 0 ? taxonomy.gender_race_index(image->gender, image->race) : -1;
        break;
      case Attribute::age: {
        auto it = std::find(age_labels.begin(), age_labels.end(), image->age);
        group = it == age_labels.end() ? -1 : static_cast<int>(it - age_labels.begin());
        if (group < 0 && image->age != kNoFace) {
          throw Error(ExitCode::failure, "age label '" + image->age + "' missing from the age groups");
        }
        break;
      }
    }
    if (group < 0) {
      ++d.n_none;
    } else {
      ++d.counts[group];
    }
  }
  return d;
}

void accumulate(GroupDistribution& total, const GroupDistribution& part) {
  if (total.labels.empty() && total.n_images == 0) {
    total = part;
    return;
  }
  if (total.labels != part.labels) throw Error(ExitCode::failure, "accumulate: distributions with different groups");
  for (size_t k = 0; k < total.counts.size(); ++k) total.counts[k] += part.counts[k];
  total.n_images += part.n_images;
  total.n_none += part.n_none;
}

}  // namespace fairdiff::audit
