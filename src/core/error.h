// Errors that reach the user. Every message names the input and what was expected; main() catches once
// and maps the error's kind to the process exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace fairdiff {

enum class ExitCode : int {
  ok = 0,
  failure = 1,      // an internal or unexpected failure
  usage = 2,        // bad command line: unknown flag, missing or out-of-range value
  bad_input = 3,    // a file or directory the user named is missing, malformed or of the wrong layout
  unsupported = 4,  // valid request this build or device cannot run (dtype on device, missing OpenCV, ...)
  interrupted = 130,
};

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

// Bad command-line usage (unknown flag, invalid value).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ExitCode::usage, message) {}
};

// A user-supplied file or directory is missing or malformed.
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(ExitCode::bad_input, message) {}
};

// The request is valid but cannot run here (device, dtype, optional dependency).
class UnsupportedError : public Error {
 public:
  explicit UnsupportedError(const std::string& message) : Error(ExitCode::unsupported, message) {}
};

// The user pressed Ctrl-C (or sent SIGTERM); finished work has been kept.
class InterruptedError : public Error {
 public:
  InterruptedError() : Error(ExitCode::interrupted, "interrupted; finished work is kept, rerun to resume") {}
};

}  // namespace fairdiff
