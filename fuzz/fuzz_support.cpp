#include "fuzz_support.h"

#include <unistd.h>

#include <fstream>

namespace fairdiff::fuzz {
namespace fs = std::filesystem;

namespace {

fs::path make_scratch_dir() {
  const fs::path dir = fs::temp_directory_path() / ("fairdiff-fuzz-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::atexit([] {
    std::error_code ignored;
    fs::remove_all(scratch_dir(), ignored);
  });
  return dir;
}

}  // namespace

const fs::path& scratch_dir() {
  static const fs::path dir = make_scratch_dir();
  return dir;
}

fs::path write_scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const fs::path path = scratch_dir() / name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) report_finding("write_scratch_file", "cannot write " + path.string());
  return path;
}

fs::path write_scratch_file(const std::string& name, const std::string& text) {
  return write_scratch_file(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

fs::path source_dir() {
  return FAIRDIFF_SOURCE_DIR;
}

void report_finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n==fairdiff-fuzz== FINDING in %s: %s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace fairdiff::fuzz
