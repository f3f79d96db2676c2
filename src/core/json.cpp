#include "core/json.h"

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
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError("malformed JSON in " + path.string() + ": " + e.what());
  }
}

void write_json_file(const std::filesystem::path& path, const Json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

}  // namespace fairdiff
