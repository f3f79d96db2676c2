#include "core/json.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff {

Json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open JSON file " + path.string() + " (expected an existing, readable file)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return Json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    throw InputError("malformed JSON in " + path.string() + ": " + e.what());
  }
}

void write_json_file(const std::filesystem::path& path, const Json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

namespace {

std::string number_text(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

}  // namespace

bool ConfigCheck::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

void ConfigCheck::fail(const std::string& key, const std::string& found, const std::string& expected) const {
  throw InputError(where_ + ": '" + key + "' " + found + ", expected " + expected);
}

void ConfigCheck::in_range(const std::string& key, int64_t value, int64_t lo, int64_t hi) const {
  if (value < lo || value > hi) {
    fail(key, "is " + std::to_string(value),
         "an integer from " + std::to_string(lo) + " to " + std::to_string(hi) + (has(key) ? "" : " (the default)"));
  }
}

void ConfigCheck::each_in_range(const std::string& key, const std::vector<int64_t>& values, int64_t lo,
                                int64_t hi) const {
  if (values.empty()) fail(key, "is an empty list", "at least one entry");
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < lo || values[i] > hi) {
      fail(key, "has " + std::to_string(values[i]) + " at position " + std::to_string(i),
           "integers from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
  }
}

void ConfigCheck::in_range(const std::string& key, double value, double lo, double hi, bool open_lo,
                           bool open_hi) const {
  const bool below = open_lo ? !(value > lo) : !(value >= lo);
  const bool above = open_hi ? !(value < hi) : !(value <= hi);
  if (!std::isfinite(value) || below || above) {
    fail(key, "is " + number_text(value),
         std::string("a number ") + (open_lo ? "above " : "from ") + number_text(lo) +
             (open_hi ? " and below " : " to ") + number_text(hi));
  }
}

void ConfigCheck::divides_each(const std::string& key, int64_t divisor, const std::string& list_key,
                               const std::vector<int64_t>& values) const {
  std::string list;
  bool divides = true;
  for (int64_t v : values) {
    divides = divides && v % divisor == 0;
    list += (list.empty() ? "" : ", ") + std::to_string(v);
  }
  if (!divides) {
    fail(key, "is " + std::to_string(divisor),
         "a number that divides every block's channels (" + list_key + " " + list + ")");
  }
}

void ConfigCheck::one_of(const std::string& key, const std::string& value,
                         const std::vector<std::string>& allowed) const {
  for (const auto& a : allowed) {
    if (a == value) return;
  }
  std::string list;
  for (size_t i = 0; i < allowed.size(); ++i) list += (i ? (i + 1 == allowed.size() ? " or " : ", ") : "") + allowed[i];
  fail(key, "is '" + value + "'", list);
}

void ConfigCheck::same_length(const std::vector<std::pair<std::string, size_t>>& lists) const {
  bool equal = true;
  for (const auto& [key, size] : lists) equal = equal && size == lists.front().second;
  if (equal) return;
  std::string missing, lengths;
  for (const auto& [key, size] : lists) {
    if (!has(key)) missing += (missing.empty() ? "'" : ", '") + key + "'";
    lengths += (lengths.empty() ? "" : ", ") + key + " " + std::to_string(size);
  }
  if (!missing.empty()) {
    throw InputError(where_ + ": " + missing + " is missing (its default does not match the blocks the file gives: " +
                     lengths + "); give one entry per block");
  }
  throw InputError(where_ + ": the per-block lists have different lengths (" + lengths +
                   "), expected one entry per block in each");
}

}  // namespace fairdiff
