// Where the report finds what it inlines: the project's node_modules (vega, vega-lite, vega-embed, installed
// by `npm ci` in scripts/install.sh), found with core/assets.h.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/assets.h"

namespace fairdiff::report {

// core/assets.h's, under the name the report's callers know.
using fairdiff::find_project_root;

// The node_modules directory with vega's builds: $FAIRDIFF_NODE_MODULES when set, else the one
// find_asset_dir finds. UnsupportedError naming the places searched when none holds them.
std::filesystem::path find_node_modules();

struct ChartLibrary {
  std::vector<std::pair<std::string, std::string>> scripts;  // (name, minified source), load order
};

// Reads vega.min.js, vega-lite.min.js and vega-embed.min.js; UnsupportedError when missing, with the fix
// (run scripts/install.sh or npm ci).
ChartLibrary load_chart_library();

}  // namespace fairdiff::report
