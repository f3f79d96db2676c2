// File-system helpers: atomic writes (so a crash never leaves a half-written output that looks finished)
// and checks with clear errors.
#pragma once

#include <filesystem>
#include <string>

namespace fairdiff {

// Writes `contents` to a temporary file beside `path`, fsyncs it, renames it over `path` and fsyncs the folder:
// after a crash or power loss `path` is the old file or the whole new one.
void write_file_atomic(const std::filesystem::path& path, const std::string& contents);
std::string read_file(const std::filesystem::path& path);
// InputError "<what> <path> does not exist (expected ...)" unless `path` is an existing directory.
void require_directory(const std::filesystem::path& path, const std::string& what);
void require_file(const std::filesystem::path& path, const std::string& what);
// Whether `path` does not exist or is an empty directory: where a command may write a new output folder.
bool is_new_or_empty_directory(const std::filesystem::path& path);
// Creates the directory (and parents); InputError naming it when that fails.
void ensure_directory(const std::filesystem::path& path, const std::string& what);

}  // namespace fairdiff
