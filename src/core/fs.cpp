#include "core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace fairdiff {

namespace {

// fsync of a file or folder opened read-only; failures (e.g. a filesystem without fsync) are not fatal: the
// rename still makes the file appear whole or not at all.
void sync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  std::filesystem::path temporary = path;
  // Unique per process and thread: ranks (or threads) writing the same file each rename a whole copy
  // (digits only: study_runner.cpp recognises what a killed process left by them).
  temporary += ".tmp" + std::to_string(::getpid()) +
               std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()) % 1000000);
  std::error_code ec;
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw InputError("cannot write " + path.string() + ": " + std::strerror(errno) + " (is the folder writable?)");
  }
  size_t written = 0;
  int failure = 0;
  while (written < contents.size() && failure == 0) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failure = n < 0 ? errno : ENOSPC;
    } else {
      written += static_cast<size_t>(n);
    }
  }
  // The data reaches the disk before the rename makes it visible under its name: after a power loss the file is
  // either the old one or the whole new one, never a truncated one that looks finished.
  if (failure == 0 && ::fsync(fd) != 0 && errno != EINVAL && errno != EROFS) failure = errno;
  if (::close(fd) != 0 && failure == 0) failure = errno;
  if (failure != 0) {
    std::filesystem::remove(temporary, ec);  // never leave a half-written file behind
    throw InputError("failed while writing " + path.string() + ": " + std::strerror(failure) +
                     " (is the disk full? what was written before is kept)");
  }
  std::filesystem::rename(temporary, path, ec);
  if (ec) {
    std::filesystem::remove(temporary, ec);
    throw InputError("cannot move " + temporary.string() + " to " + path.string());
  }
  sync_path(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path());
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + path.string() + " (expected an existing, readable file)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool is_new_or_empty_directory(const std::filesystem::path& path) {
  std::error_code ec;
  return !std::filesystem::exists(path, ec) ||
         (std::filesystem::is_directory(path, ec) && std::filesystem::is_empty(path, ec));
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
