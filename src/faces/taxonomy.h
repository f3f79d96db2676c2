// Label sets of the classifiers and the labeled photo sets, and the explicit mappings between them
// (documented in docs/classifiers.md).
//
// Race taxonomies, finest to coarsest; a comparison maps both sides to the finest taxonomy they share:
//   fairface7: white, black, latino hispanic, east asian, southeast asian, indian, middle eastern
//   deepface6: white, black, latino hispanic, asian, indian, middle eastern  (east + southeast asian -> asian)
//   five:      white, black, asian, indian, other  (UTKFace's 5 and GEAR's 5; latino hispanic and middle
//              eastern -> other)
// Age: FairFace's 9 ranges (0-2 ... 70+) for evaluation, the study's 8 Caffe age_net ranges for its CSV.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/labels.h"  // normalize_race, normalize_gender

namespace fairdiff {

enum class RaceTaxonomy { fairface7, deepface6, five };

std::string race_taxonomy_name(RaceTaxonomy taxonomy);
// "fairface7" | "deepface6" | "five" (also "utkface5", "gear5"); UsageError otherwise.
RaceTaxonomy parse_race_taxonomy(const std::string& name);
const std::vector<std::string>& race_labels(RaceTaxonomy taxonomy);
// The taxonomy a set of (normalised) labels belongs to, or nullopt when they fit none.
std::optional<RaceTaxonomy> detect_race_taxonomy(const std::vector<std::string>& labels);
// The finest taxonomy both can be mapped to.
RaceTaxonomy common_race_taxonomy(RaceTaxonomy a, RaceTaxonomy b);

// Maps a normalised label of `from` into `to` (which must be as coarse or coarser); empty when the label is
// not in `from`.
std::string map_race(const std::string& label, RaceTaxonomy from, RaceTaxonomy to);

const std::vector<std::string>& fairface_age_ranges();  // 0-2, 3-9, 10-19, ..., 70+
// The FairFace range holding `years`.
std::string fairface_age_range(double years);
// A label that is either a FairFace range or a whole number of years -> the FairFace range; empty if neither.
std::string normalize_age(const std::string& label);
// The middle of a FairFace range in years (70+ -> 75).
double fairface_age_midpoint(const std::string& range);

const std::vector<std::string>& study_age_ranges();  // (0-2), (4-6), ..., (60-100): Caffe age_net's bins
// The study range nearest to `years` (gaps split at their midpoints).
std::string study_age_range(double years);

}  // namespace fairdiff
