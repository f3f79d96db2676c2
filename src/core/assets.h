// Where fairdiff finds the files it ships beside the binary (models/faces, data/seed, node_modules): the one
// search every module uses, so a binary run from build/, from the project root or from anywhere else finds
// the same files.
#pragma once

#include <filesystem>

namespace fairdiff {

// The project root: the nearest directory holding package.json and src/, going up from the running
// executable's directory, then from the current directory. Empty when neither finds one.
std::filesystem::path find_project_root();

// The folder `relative` (e.g. "models/faces") of the nearest directory, going up from the executable's
// directory and then from the current directory, where `relative`/`probe` exists. When none has it: the
// project root's `relative` (the current directory's when there is no root), so that an error can name
// where the file was expected.
std::filesystem::path find_asset_dir(const std::filesystem::path& relative, const std::filesystem::path& probe);

}  // namespace fairdiff
