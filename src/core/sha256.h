// SHA-256 (FIPS 180-4) of bytes and files, as 64 lower-case hex digits: the run store records each image's
// digest, so a resumed study can tell a finished file from a damaged one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace fairdiff {

// Incremental SHA-256, for data that arrives in pieces or does not fit in memory (a multi-gigabyte download).
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  // The digest of everything passed to update(); the hasher is spent afterwards.
  std::string hex_digest();

 private:
  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> block_{};
  size_t block_used_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(const std::string& bytes);
// Reads the file in pieces (any size); InputError naming the file when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace fairdiff
