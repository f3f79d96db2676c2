#include "report/assets.h"

#include <unistd.h>

#include <cstdlib>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff::report {

namespace {

std::filesystem::path executable_directory() {
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

std::filesystem::path search_upwards(std::filesystem::path dir) {
  for (int depth = 0; depth < 6 && !dir.empty(); ++depth) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / "package.json", ec) && std::filesystem::is_directory(dir / "src", ec)) {
      return dir;
    }
    if (dir == dir.parent_path()) break;
    dir = dir.parent_path();
  }
  return {};
}

const char* kVegaFiles[][2] = {
    {"vega", "vega/build/vega.min.js"},
    {"vega-lite", "vega-lite/build/vega-lite.min.js"},
    {"vega-embed", "vega-embed/build/vega-embed.min.js"},
};

bool holds_vega(const std::filesystem::path& dir) {
  std::error_code ec;
  for (const auto& file : kVegaFiles) {
    if (!std::filesystem::is_regular_file(dir / file[1], ec)) return false;
  }
  return true;
}

}  // namespace

std::filesystem::path find_project_root() {
  std::filesystem::path exe_dir = executable_directory();
  if (!exe_dir.empty()) {
    std::filesystem::path root = search_upwards(exe_dir);
    if (!root.empty()) return root;
  }
  std::error_code ec;
  return search_upwards(std::filesystem::current_path(ec));
}

std::filesystem::path find_node_modules() {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("FAIRDIFF_NODE_MODULES")) candidates.emplace_back(env);
  std::filesystem::path root = find_project_root();
  if (!root.empty()) candidates.push_back(root / "node_modules");
  std::error_code ec;
  candidates.push_back(std::filesystem::current_path(ec) / "node_modules");
  std::string searched;
  for (const auto& dir : candidates) {
    if (holds_vega(dir)) return dir;
    searched += (searched.empty() ? "" : ", ") + dir.string();
  }
  throw UnsupportedError(
      "the report's charting library (npm packages vega, vega-lite, vega-embed) is not installed; "
      "searched " +
      searched +
      ". Run scripts/install.sh (or `npm ci` in the project root), or "
      "set FAIRDIFF_NODE_MODULES to a node_modules directory that has them");
}

ChartLibrary load_chart_library() {
  std::filesystem::path modules = find_node_modules();
  ChartLibrary library;
  for (const auto& file : kVegaFiles) {
    std::string source = read_file(modules / file[1]);
    // Inlined inside <script>: a literal "</script" would end the element early.
    if (source.find("</script") != std::string::npos) {
      throw UnsupportedError(std::string(file[1]) + " contains '</script' and cannot be inlined into the report");
    }
    library.scripts.emplace_back(file[0], std::move(source));
  }
  return library;
}

}  // namespace fairdiff::report
