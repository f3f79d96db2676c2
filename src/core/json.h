// JSON files (model configs, manifests, metrics) through nlohmann-json, with errors that name the file.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace fairdiff {

using Json = nlohmann::json;

// Reads and parses a JSON file; InputError naming the file when it is missing or malformed.
Json read_json_file(const std::filesystem::path& path);
// Writes pretty-printed JSON atomically (temporary file, then rename).
void write_json_file(const std::filesystem::path& path, const Json& value);

// Typed lookup with a default for absent or null keys; InputError naming `where` and the key when present
// with the wrong type.
template <typename T>
T json_get(const Json& object, const std::string& key, const T& fallback, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(where + ": key '" + key + "' has the wrong type: " + e.what());
  }
}

// Like json_get but the key must be present.
template <typename T>
T json_require(const Json& object, const std::string& key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    throw InputError(where + ": missing required key '" + key + "'");
  }
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(where + ": key '" + key + "' has the wrong type: " + e.what());
  }
}

}  // namespace fairdiff
