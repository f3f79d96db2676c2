#include "report/assets.h"

#include <cstdlib>

#include "core/error.h"
#include "core/fs.h"

namespace fairdiff::report {

namespace {

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

std::filesystem::path find_node_modules() {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("FAIRDIFF_NODE_MODULES")) candidates.emplace_back(env);
  candidates.push_back(find_asset_dir("node_modules", kVegaFiles[0][1]));
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
