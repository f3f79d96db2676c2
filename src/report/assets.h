// Where the report finds what it inlines: the project's node_modules (vega, vega-lite, vega-embed, installed
// by `npm ci` in scripts/install.sh) and the project root itself (for ../shared defaults).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace fairdiff::report {

// The project root: the nearest directory, starting at the running executable's directory and going up,
// that holds package.json and src/; then the same search from the current directory. Empty when neither
// finds one.
std::filesystem::path find_project_root();

// The node_modules directory with vega's builds: $FAIRDIFF_NODE_MODULES when set, else <project root>/
// node_modules, else ./node_modules. UnsupportedError naming the places searched when none holds them.
std::filesystem::path find_node_modules();

struct ChartLibrary {
  std::vector<std::pair<std::string, std::string>> scripts;  // (name, minified source), load order
};

// Reads vega.min.js, vega-lite.min.js and vega-embed.min.js; UnsupportedError when missing, with the fix
// (run scripts/install.sh or npm ci).
ChartLibrary load_chart_library();

}  // namespace fairdiff::report
