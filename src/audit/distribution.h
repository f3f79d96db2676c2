// Counts of each group among a prompt's images, with the images where the attribute is "--" (no face, or
// no answer from the classifier) kept alongside rather than dropped. Proportions are available over all
// images (the study's convention) and over the images where the attribute was determined.
#pragma once

#include <string>
#include <vector>

#include "audit/detections.h"
#include "audit/labels.h"
#include "audit/stats.h"

namespace fairdiff::audit {

struct GroupDistribution {
  Attribute attribute = Attribute::gender;
  std::vector<std::string> labels;  // K groups, "--" not included
  std::vector<long long> counts;    // K
  long long n_images = 0;           // every image of the prompt
  long long n_none = 0;             // images whose attribute is "--"

  int num_groups() const { return static_cast<int>(labels.size()); }
  long long n_determined() const { return n_images - n_none; }
  double share_of_all(int k) const;
  double share_of_determined(int k) const;
  double none_share() const;
  // Shares over the determined images (the input of every bias metric); empty when none was determined.
  std::vector<double> determined_shares() const;
  Interval wilson_of_all(int k) const { return wilson_interval(counts[k], n_images); }
  Interval wilson_of_determined(int k) const { return wilson_interval(counts[k], n_determined()); }
  Interval wilson_none() const { return wilson_interval(n_none, n_images); }
};

// The age ranges present in any of the runs, youngest first.
std::vector<std::string> age_labels_of(const std::vector<Run>& runs);

// Distribution of `attribute` over `images`. For gender x race an image counts as determined only when both
// are; for age, `age_labels` lists the groups.
GroupDistribution make_distribution(const std::vector<const ImageRecord*>& images, Attribute attribute,
                                    const Taxonomy& taxonomy, const std::vector<std::string>& age_labels = {});

// Sum of two distributions of the same attribute and labels (used for a run's overall distribution).
void accumulate(GroupDistribution& total, const GroupDistribution& part);

}  // namespace fairdiff::audit
