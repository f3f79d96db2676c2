// The label vocabulary of an audit: which genders and races exist, how the spellings found in detection
// files map onto them, and the age ranges. Every label in an input must map onto the taxonomy (directly,
// through a built-in synonym, or through a user mapping); anything else is an error that names it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/labels.h"  // normalize_label, normalize_race, normalize_gender

namespace fairdiff::audit {

// "--" marks an attribute that was not determined (no face, or the classifier gave no answer), as in the study.
inline const std::string kNoFace = "--";

enum class Attribute { gender, race, gender_race, age };

// "gender", "race", "gender_race", "age".
std::string attribute_name(Attribute attribute);
// Inverse of attribute_name; UsageError naming `where` otherwise.
Attribute parse_attribute(const std::string& name, const std::string& where);

struct Taxonomy {
  // Output spellings, in the order tables and plans list them (the study's order).
  std::vector<std::string> genders{"Male", "Female"};
  std::vector<std::string> races{"asian", "indian", "white", "black", "middle eastern", "latino hispanic"};

  int num_groups(Attribute attribute) const;
  // Group labels of a categorical attribute; gender x race cells are gender-major ("Male asian", ...).
  std::vector<std::string> group_labels(Attribute attribute) const;
  int gender_race_index(int gender, int race) const { return gender * static_cast<int>(races.size()) + race; }
};

// Parses a comma-separated race list for --races (e.g. "white,black,asian,indian"); FieldError("races") when empty,
// duplicated or when an entry is not a plain label.
std::vector<std::string> parse_race_list(const std::string& text);

// User mappings from a spelling in an input column to a label (or "--"), given as COLUMN:FROM=TO
// (e.g. race:race=--, prompt:delivery_driver=delivery, race:latino=latino hispanic). Keys are compared
// after normalize_label for label columns and verbatim for prompt.
class LabelMap {
 public:
  // Adds one COLUMN:FROM=TO entry; FieldError("map") naming the entry when malformed or the column is unknown.
  void add(const std::string& entry);
  // The mapped value, or `value` unchanged when no mapping applies.
  std::string apply(const std::string& column, const std::string& value) const;
  bool empty() const { return entries_.empty(); }
  // The entries as given, for the report's data notes.
  std::vector<std::string> describe() const;

 private:
  std::map<std::string, std::map<std::string, std::string>> entries_;  // column -> from -> to
};

// Index of the gender in the taxonomy, -1 for "--" (and an empty field). Synonyms: normalize_gender's.
// Returns -2 for an unknown label.
int gender_index(const Taxonomy& taxonomy, const std::string& label);
// Index of the race (compared after normalize_race), -1 for "--" or empty, -2 for an unknown label.
int race_index(const Taxonomy& taxonomy, const std::string& label);

// Canonical age label: "--" for none; ranges like "(25-32)", "25-32", "70+" are kept in the form
// "(25-32)" / "(70+)"; a plain integer age is binned into a decade "(20-29)". Returns "" when the text is
// none of these.
std::string canonical_age(const std::string& label);
// Sort key of an age label (its first number; "--" last).
int age_sort_key(const std::string& label);

}  // namespace fairdiff::audit
