// Where tests find the project, ../shared and a scratch directory.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace fairdiff::test {

std::filesystem::path source_dir();
// ../shared beside the project root (FAIRDIFF_SHARED overrides).
std::filesystem::path shared_dir();
std::filesystem::path fixtures_dir();
// A fresh empty directory under the build tree, unique per test name.
std::filesystem::path scratch_dir(const std::string& name);
// Runs a shell command, returns its exit code and captures stdout+stderr into `output`.
int run_command(const std::string& command, std::string* output = nullptr);

// Sets environment variables for one test (std::nullopt unsets) and restores them when it goes out of scope.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv();
  void set(const std::string& name, const std::optional<std::string>& value);

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace fairdiff::test
