// Shared by the libFuzzer harnesses (docs/fuzzing.md): a scratch folder for loaders that read files, and the
// one rule every harness checks: a bad input gets fairdiff's own error (core/error.h), never anything else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <typeinfo>

#include "core/error.h"

namespace fairdiff::fuzz {

// This process's scratch folder (under $TMPDIR), created on first use and removed at exit.
const std::filesystem::path& scratch_dir();
// Writes `size` bytes to scratch_dir() / name (replacing the file) and returns its path.
std::filesystem::path write_scratch_file(const std::string& name, const uint8_t* data, size_t size);
std::filesystem::path write_scratch_file(const std::string& name, const std::string& text);
// The project root (the harnesses read the built-in tokenizer and the seed prompts from it).
std::filesystem::path source_dir();

// Prints a finding and aborts, so that libFuzzer keeps the input as a crash.
[[noreturn]] void report_finding(const char* what, const std::string& detail);

// Runs `body`. fairdiff::Error (InputError, UsageError, UnsupportedError, ...) is the expected answer to a bad
// input and is swallowed; any other exception escaping the library (nlohmann's, c10::Error, std::out_of_range,
// std::invalid_argument, ...) is a finding. Returns true when `body` finished without an error.
template <typename Body>
bool expect_clear_errors(const char* what, Body&& body) {
  try {
    body();
    return true;
  } catch (const Error&) {
    return false;
  } catch (const std::exception& e) {
    report_finding(what, std::string("unexpected exception ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    report_finding(what, "unexpected exception of a type that is not std::exception");
  }
}

// Runs `body`, which must not throw at all (a property of an input the library has accepted): any exception is
// a finding.
template <typename Body>
void expect_no_error(const char* what, Body&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    report_finding(what, std::string("exception ") + typeid(e).name() + ": " + e.what());
  } catch (...) {
    report_finding(what, "exception of a type that is not std::exception");
  }
}

}  // namespace fairdiff::fuzz
