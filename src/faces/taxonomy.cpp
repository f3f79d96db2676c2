#include "faces/taxonomy.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff {

std::string race_taxonomy_name(RaceTaxonomy taxonomy) {
  switch (taxonomy) {
    case RaceTaxonomy::fairface7:
      return "fairface7";
    case RaceTaxonomy::deepface6:
      return "deepface6";
    case RaceTaxonomy::five:
      return "five";
  }
  return "five";
}

RaceTaxonomy parse_race_taxonomy(const std::string& name) {
  if (name == "fairface7" || name == "fairface") return RaceTaxonomy::fairface7;
  if (name == "deepface6" || name == "deepface") return RaceTaxonomy::deepface6;
  if (name == "five" || name == "utkface5" || name == "gear5") return RaceTaxonomy::five;
  throw UsageError("unknown race taxonomy '" + name + "' (expected fairface7, deepface6 or utkface5)");
}

const std::vector<std::string>& race_labels(RaceTaxonomy taxonomy) {
  static const std::vector<std::string> fairface7 = {"white",           "black",  "latino hispanic", "east asian",
                                                     "southeast asian", "indian", "middle eastern"};
  static const std::vector<std::string> deepface6 = {"white", "black",  "latino hispanic",
                                                     "asian", "indian", "middle eastern"};
  static const std::vector<std::string> five = {"white", "black", "asian", "indian", "other"};
  switch (taxonomy) {
    case RaceTaxonomy::fairface7:
      return fairface7;
    case RaceTaxonomy::deepface6:
      return deepface6;
    case RaceTaxonomy::five:
      return five;
  }
  return five;
}

std::optional<RaceTaxonomy> detect_race_taxonomy(const std::vector<std::string>& labels) {
  for (RaceTaxonomy t : {RaceTaxonomy::five, RaceTaxonomy::deepface6, RaceTaxonomy::fairface7}) {
    const auto& known = race_labels(t);
    bool all = std::all_of(labels.begin(), labels.end(), [&](const std::string& l) {
      return std::find(known.begin(), known.end(), l) != known.end();
    });
    if (all) return t;
  }
  return std::nullopt;
}

RaceTaxonomy common_race_taxonomy(RaceTaxonomy a, RaceTaxonomy b) {
  // The enum is ordered finest to coarsest.
  return static_cast<int>(a) > static_cast<int>(b) ? a : b;
}

std::string map_race(const std::string& label, RaceTaxonomy from, RaceTaxonomy to) {
  const auto& known = race_labels(from);
  if (std::find(known.begin(), known.end(), label) == known.end()) return "";
  std::string out = label;
  if (from == RaceTaxonomy::fairface7 && to != RaceTaxonomy::fairface7) {
    if (out == "east asian" || out == "southeast asian") out = "asian";
  }
  if (to == RaceTaxonomy::five && (out == "latino hispanic" || out == "middle eastern")) out = "other";
  const auto& target = race_labels(to);
  if (std::find(target.begin(), target.end(), out) == target.end()) {
    throw UsageError("cannot map race taxonomy " + race_taxonomy_name(from) + " to the finer " +
                     race_taxonomy_name(to));
  }
  return out;
}

const std::vector<std::string>& fairface_age_ranges() {
  static const std::vector<std::string> ranges = {"0-2",   "3-9",   "10-19", "20-29", "30-39",
                                                  "40-49", "50-59", "60-69", "70+"};
  return ranges;
}

std::string fairface_age_range(double years) {
  static const double upper[] = {3, 10, 20, 30, 40, 50, 60, 70};
  for (int i = 0; i < 8; ++i) {
    if (years < upper[i]) return fairface_age_ranges()[i];
  }
  return "70+";
}

std::string normalize_age(const std::string& label) {
  const std::string s = trim(label);
  const auto& ranges = fairface_age_ranges();
  if (std::find(ranges.begin(), ranges.end(), s) != ranges.end()) return s;
  if (s == "more than 70") return "70+";
  double years = 0;
  if (parse_double(s, years) && years >= 0 && years < 150) return fairface_age_range(years);
  return "";
}

double fairface_age_midpoint(const std::string& range) {
  static const std::map<std::string, double> mid = {{"0-2", 1},      {"3-9", 6},      {"10-19", 14.5},
                                                    {"20-29", 24.5}, {"30-39", 34.5}, {"40-49", 44.5},
                                                    {"50-59", 54.5}, {"60-69", 64.5}, {"70+", 75}};
  auto it = mid.find(range);
  return it == mid.end() ? 0.0 : it->second;
}

const std::vector<std::string>& study_age_ranges() {
  static const std::vector<std::string> ranges = {"(0-2)",   "(4-6)",   "(8-12)",  "(15-20)",
                                                  "(25-32)", "(38-43)", "(48-53)", "(60-100)"};
  return ranges;
}

std::string study_age_range(double years) {
  // Boundaries at the middle of the gaps between age_net's bins.
  static const double upper[] = {3, 7, 13.5, 22.5, 35, 45.5, 56.5};
  for (int i = 0; i < 7; ++i) {
    if (years < upper[i]) return study_age_ranges()[i];
  }
  return "(60-100)";
}

}  // namespace fairdiff
