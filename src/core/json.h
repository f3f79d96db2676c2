// JSON files (model configs, manifests, metrics) through nlohmann-json, with errors that name the file.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace fairdiff {

using Json = nlohmann::json;

// Reads and parses a JSON file; InputError naming the file when it is missing or malformed.
Json read_json_file(const std::filesystem::path& path);
// Writes pretty-printed JSON atomically (temporary file, then rename).
void write_json_file(const std::filesystem::path& path, const Json& value);

namespace json_detail {

// Converts a JSON number to the whole number type T. nlohmann's get<T>() casts 1e300 to an int unchecked (undefined
// behaviour) and wraps 2^40 or -1 silently, so the range is checked here; a float without a fraction, 64.0, is
// read as 64. On failure returns what is wrong: "has the wrong type: ..." or "= 2.5 is not a whole number from ...".
template <typename T>
std::string to_integer(const Json& value, T* out) {
  using Limits = std::numeric_limits<T>;
  if (value.is_number_unsigned()) {
    const uint64_t v = value.get<uint64_t>();
    if (v <= static_cast<uint64_t>(Limits::max())) {
      *out = static_cast<T>(v);
      return {};
    }
  } else if (value.is_number_integer()) {
    const int64_t v = value.get<int64_t>();
    if (v >= 0 ? static_cast<uint64_t>(v) <= static_cast<uint64_t>(Limits::max())
               : Limits::is_signed && v >= static_cast<int64_t>(Limits::min())) {
      *out = static_cast<T>(v);
      return {};
    }
  } else if (value.is_number_float()) {
    // The doubles that convert are those in [min, max + 1); both bounds are 0 or powers of two, so exact.
    const double v = value.get<double>();
    const double upper = static_cast<double>(Limits::max() / 2 + 1) * 2.0;
    if (v == std::trunc(v) && v >= static_cast<double>(Limits::min()) && v < upper) {
      *out = static_cast<T>(v);
      return {};
    }
  } else {
    return "has the wrong type: expected a whole number, found " + std::string(value.type_name()) + " " + value.dump();
  }
  return "= " + value.dump() + " is not a whole number from " + std::to_string(Limits::min()) + " to " +
         std::to_string(Limits::max());
}

template <typename T>
constexpr bool is_whole_number = std::is_integral_v<T> && !std::is_same_v<T, bool>;
template <typename T>
struct is_whole_number_list : std::false_type {};
template <typename T>
struct is_whole_number_list<std::vector<T>> : std::bool_constant<is_whole_number<T>> {};

}  // namespace json_detail

// `value` as T; InputError "<what> has the wrong type: ..." otherwise, or "<what> = 2.5 is not a whole number from
// ..." for a number that the integer type T (or a list of them) cannot hold.
template <typename T>
T json_value(const Json& value, const std::string& what) {
  if constexpr (json_detail::is_whole_number<T>) {
    T out{};
    const std::string problem = json_detail::to_integer(value, &out);
    if (!problem.empty()) throw InputError(what + " " + problem);
    return out;
  } else if constexpr (json_detail::is_whole_number_list<T>::value) {
    if (!value.is_array()) {
      throw InputError(what + " has the wrong type: expected a list of whole numbers, found " +
                       std::string(value.type_name()));
    }
    T out(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string problem = json_detail::to_integer(value[i], &out[i]);
      if (!problem.empty()) throw InputError(what + " " + problem + " (entry " + std::to_string(i) + ")");
    }
    return out;
  } else {
    try {
      return value.get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw InputError(what + " has the wrong type: " + e.what());
    }
  }
}

// Typed lookup with a default for absent or null keys; InputError naming `where` and the key when present
// with the wrong type.
template <typename T>
T json_get(const Json& object, const std::string& key, const T& fallback, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  return json_value<T>(*it, where + ": key '" + key + "'");
}

// Like json_get but the key must be present.
template <typename T>
T json_require(const Json& object, const std::string& key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    throw InputError(where + ": missing required key '" + key + "'");
  }
  return json_value<T>(*it, where + ": key '" + key + "'");
}

// Range and consistency checks for the fields of a model or scheduler config: every failure is an InputError
// naming the file (`where`), the key, the value found and what was expected, before any tensor is made from it.
class ConfigCheck {
 public:
  ConfigCheck(const Json& json, std::string where) : json_(json), where_(std::move(where)) {}

  bool has(const std::string& key) const;
  // lo <= value <= hi.
  void in_range(const std::string& key, int64_t value, int64_t lo, int64_t hi) const;
  void each_in_range(const std::string& key, const std::vector<int64_t>& values, int64_t lo, int64_t hi) const;
  // A finite value with lo < value < hi (open_lo/open_hi) or lo <= value <= hi.
  void in_range(const std::string& key, double value, double lo, double hi, bool open_lo, bool open_hi) const;
  // `divisor` divides every entry of `values` (the list `list_key` gives), e.g. norm_num_groups and the channels.
  void divides_each(const std::string& key, int64_t divisor, const std::string& list_key,
                    const std::vector<int64_t>& values) const;
  // One of `allowed`.
  void one_of(const std::string& key, const std::string& value, const std::vector<std::string>& allowed) const;
  // Lists that must have one entry per block: when they differ, the message says which key is missing from the
  // file (its default has another length) or gives each list's length.
  void same_length(const std::vector<std::pair<std::string, size_t>>& lists) const;
  [[noreturn]] void fail(const std::string& key, const std::string& found, const std::string& expected) const;

 private:
  const Json& json_;
  std::string where_;
};

}  // namespace fairdiff
