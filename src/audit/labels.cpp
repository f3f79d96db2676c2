#include "audit/labels.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <set>

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::audit {

std::string attribute_name(Attribute attribute) {
  switch (attribute) {
    case Attribute::gender:
      return "gender";
    case Attribute::race:
      return "race";
    case Attribute::gender_race:
      return "gender_race";
    case Attribute::age:
      return "age";
  }
  return "?";
}

Attribute parse_attribute(const std::string& name, const std::string& where) {
  for (Attribute a : {Attribute::gender, Attribute::race, Attribute::gender_race, Attribute::age}) {
    if (attribute_name(a) == name) return a;
  }
  throw UsageError(where + ": unknown attribute '" + name + "' (expected gender, race, gender_race or age)");
}

int Taxonomy::num_groups(Attribute attribute) const {
  switch (attribute) {
    case Attribute::gender:
      return static_cast<int>(genders.size());
    case Attribute::race:
      return static_cast<int>(races.size());
    case Attribute::gender_race:
      return static_cast<int>(genders.size() * races.size());
    case Attribute::age:
      return 0;  // open vocabulary: the age ranges present in the data
  }
  return 0;
}

std::vector<std::string> Taxonomy::group_labels(Attribute attribute) const {
  switch (attribute) {
    case Attribute::gender:
      return genders;
    case Attribute::race:
      return races;
    case Attribute::gender_race: {
      std::vector<std::string> labels;
      for (const auto& g : genders) {
        for (const auto& r : races) labels.push_back(g + " " + r);
      }
      return labels;
    }
    case Attribute::age:
      return {};
  }
  return {};
}

std::vector<std::string> parse_race_list(const std::string& text) {
  std::vector<std::string> races;
  std::set<std::string> seen;
  for (const auto& part : split(text, ',')) {
    std::string label = normalize_label(part);
    if (label.empty() || label == kNoFace) {
      throw FieldError("races", "'" + text + "': expected a comma-separated list of race labels");
    }
    if (!seen.insert(label).second) throw FieldError("races", "'" + text + "': '" + label + "' is listed twice");
    races.push_back(label);
  }
  if (races.size() < 2) throw FieldError("races", "'" + text + "': expected at least two races");
  return races;
}

void LabelMap::add(const std::string& entry) {
  size_t colon = entry.find(':');
  size_t equals = entry.find('=', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos || equals == std::string::npos || colon == 0 || equals == colon + 1) {
    throw FieldError("map",
                     "'" + entry + "': expected COLUMN:FROM=TO (e.g. race:race=-- or prompt:delivery_driver=delivery)");
  }
  std::string column = trim(entry.substr(0, colon));
  std::string from = entry.substr(colon + 1, equals - colon - 1);
  std::string to = trim(entry.substr(equals + 1));
  if (column != "gender" && column != "race" && column != "age" && column != "prompt") {
    throw FieldError("map", "'" + entry + "': unknown column '" + column + "' (expected gender, race, age or prompt)");
  }
  if (to.empty()) throw FieldError("map", "'" + entry + "': the target label is empty (use -- for 'no face')");
  std::string key = column == "prompt" ? trim(from) : normalize_label(from);
  entries_[column][key] = to;
}

std::string LabelMap::apply(const std::string& column, const std::string& value) const {
  auto col = entries_.find(column);
  if (col == entries_.end()) return value;
  auto it = col->second.find(column == "prompt" ? trim(value) : normalize_label(value));
  return it == col->second.end() ? value : it->second;
}

std::vector<std::string> LabelMap::describe() const {
  std::vector<std::string> out;
  for (const auto& [column, entries] : entries_) {
    for (const auto& [from, to] : entries) out.push_back(column + ":" + from + "=" + to);
  }
  return out;
}

int gender_index(const Taxonomy& taxonomy, const std::string& label) {
  // normalize_gender's synonyms, and any other spelling a taxonomy's genders may have, normalised.
  auto key_of = [](const std::string& text) {
    const std::string gender = normalize_gender(text);
    return gender.empty() ? normalize_label(text) : gender;
  };
  const std::string key = key_of(label);
  if (key.empty() || key == kNoFace) return -1;
  for (size_t i = 0; i < taxonomy.genders.size(); ++i) {
    if (key_of(taxonomy.genders[i]) == key) return static_cast<int>(i);
  }
  return -2;
}

int race_index(const Taxonomy& taxonomy, const std::string& label) {
  const std::string key = normalize_race(label);
  if (key.empty() || key == kNoFace) return -1;
  for (size_t i = 0; i < taxonomy.races.size(); ++i) {
    if (normalize_race(taxonomy.races[i]) == key) return static_cast<int>(i);
  }
  return -2;
}

namespace {

bool all_digits(const std::string& text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string canonical_age(const std::string& label) {
  std::string text = trim(label);
  if (text.empty() || text == kNoFace) return kNoFace;
  if (text.size() >= 2 && text.front() == '(' && text.back() == ')') text = trim(text.substr(1, text.size() - 2));
  if (all_digits(text)) {
    if (text.size() > 3) return "";
    int age = std::stoi(text);
    int low = age / 10 * 10;
    return "(" + std::to_string(low) + "-" + std::to_string(low + 9) + ")";
  }
  if (text.size() >= 2 && text.back() == '+' && all_digits(text.substr(0, text.size() - 1))) return "(" + text + ")";
  size_t dash = text.find('-');
  if (dash != std::string::npos) {
    std::string low = trim(text.substr(0, dash));
    std::string high = trim(text.substr(dash + 1));
    if (all_digits(low) && all_digits(high) && low.size() <= 3 && high.size() <= 3 &&
        std::stoi(low) <= std::stoi(high)) {
      return "(" + low + "-" + high + ")";
    }
  }
  return "";
}

int age_sort_key(const std::string& label) {
  if (label == kNoFace) return INT_MAX;
  int value = 0;
  bool any = false;
  for (char c : label) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      value = value * 10 + (c - '0');
      any = true;
    } else if (any) {
      break;
    }
  }
  return any ? value : INT_MAX - 1;
}

}  // namespace fairdiff::audit
