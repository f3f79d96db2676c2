// SHA-256 (FIPS 180-4) of bytes and files, as 64 lower-case hex digits: the run store records each image's
// digest, so a resumed study can tell a finished file from a damaged one.
#pragma once

#include <filesystem>
#include <string>

namespace fairdiff {

std::string sha256_hex(const std::string& bytes);
// InputError naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace fairdiff
