#include "core/fs.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace fairdiff {

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  std::filesystem::path temporary = path;
  temporary += ".tmp" + std::to_string(::getpid());
  std::error_code ec;
  {
    errno = 0;
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) {
      throw InputError("cannot write " + path.string() + ": " + std::strerror(errno) + " (is the folder writable?)");
    }
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      const std::string reason = std::strerror(errno);
      out.close();
      std::filesystem::remove(temporary, ec);  // never leave a half-written file behind
      throw InputError("failed while writing " + path.string() + ": " + reason +
                       " (is the disk full? what was written before is kept)");
    }
  }
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::filesystem::remove(temporary, ec);
    throw InputError("cannot move " + temporary.string() + " to " + path.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + path.string() + " (expected an existing, readable file)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void require_directory(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    throw InputError(what + " " + path.string() +
                     (std::filesystem::exists(path, ec) ? " is not a directory" : " does not exist") +
                     " (expected a directory)");
  }
}

void require_file(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw InputError(what + " " + path.string() +
                     (std::filesystem::exists(path, ec) ? " is not a regular file" : " does not exist") +
                     " (expected a file)");
  }
}

void ensure_directory(const std::filesystem::path& path, const std::string& what) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec || !std::filesystem::is_directory(path)) {
    throw InputError("cannot create " + what + " " + path.string() + ": " + ec.message());
  }
}

}  // namespace fairdiff
