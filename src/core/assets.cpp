#include "core/assets.h"

#include <functional>

namespace fairdiff {
namespace {

namespace fs = std::filesystem;

// The first directory for which `holds` is true, going up from the executable's directory and then from the
// current directory; empty when none.
fs::path search_upwards(const std::function<bool(const fs::path&)>& holds) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::error_code cwd_ec;
  const fs::path cwd = fs::current_path(cwd_ec);
  for (fs::path start : {ec ? fs::path() : exe.parent_path(), cwd_ec ? fs::path() : cwd}) {
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      if (holds(dir)) return dir;
      if (dir == dir.parent_path()) break;
    }
  }
  return {};
}

}  // namespace

fs::path find_project_root() {
  return search_upwards([](const fs::path& dir) {
    std::error_code ec;
    return fs::is_regular_file(dir / "package.json", ec) && fs::is_directory(dir / "src", ec);
  });
}

fs::path find_asset_dir(const fs::path& relative, const fs::path& probe) {
  const fs::path found = search_upwards([&](const fs::path& dir) {
    std::error_code ec;
    return fs::exists(dir / relative / probe, ec);
  });
  if (!found.empty()) return found / relative;
  const fs::path root = find_project_root();
  std::error_code ec;
  return (root.empty() ? fs::current_path(ec) : root) / relative;
}

}  // namespace fairdiff
