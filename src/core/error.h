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

// Errors about a field of a config struct, named by the field ("steps", "class_inference_steps"), never by a
// flag: library code does not know which flag set it. The CLI's option table (cli/options.h) turns the field back
// into its flag; elsewhere the message reads "<field> <detail>".
class FieldNamed {
 public:
  FieldNamed(std::string field, std::string detail) : field_(std::move(field)), detail_(std::move(detail)) {}
  const std::string& field() const { return field_; }
  const std::string& detail() const { return detail_; }

 private:
  std::string field_, detail_;
};

// The field holds a bad value (exit code 2, like UsageError).
class FieldError : public UsageError, public FieldNamed {
 public:
  FieldError(const std::string& field, const std::string& detail)
      : UsageError(field + " " + detail), FieldNamed(field, detail) {}
};

// The file or folder the field names is missing or malformed (exit code 3, like InputError).
class FieldInputError : public InputError, public FieldNamed {
 public:
  FieldInputError(const std::string& field, const std::string& detail)
      : InputError(field + " " + detail), FieldNamed(field, detail) {}
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
