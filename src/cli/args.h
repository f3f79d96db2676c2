// Command-line options of one subcommand: declared up front (for --help and for rejecting unknown flags),
// then read with typed, range-checked getters whose errors name the flag and what was expected.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fairdiff::cli {

struct OptionSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // empty for a boolean flag
  std::string help;
  bool repeatable = false;
};

class Args {
 public:
  // Parses `--name value`, `--name=value` and boolean `--name`. Throws UsageError for unknown options,
  // missing values, repeated non-repeatable options and stray positional words (unless `positional_name`
  // is given, then they are collected). `--help` sets help_requested().
  Args(std::string command, std::string summary, std::vector<OptionSpec> specs, const std::vector<std::string>& argv,
       std::string positional_name = "");

  bool help_requested() const { return help_; }
  std::string usage() const;

  bool has(const std::string& name) const;
  bool flag(const std::string& name) const;
  std::optional<std::string> get(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  std::string require(const std::string& name) const;
  std::vector<std::string> get_all(const std::string& name) const;
  long long get_int(const std::string& name, long long fallback, long long min, long long max) const;
  double get_double(const std::string& name, double fallback, double min, double max) const;
  // One of `choices`; UsageError listing them otherwise.
  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  const OptionSpec* find_spec(const std::string& name) const;
  long long parse_int_value(const std::string& name, const std::string& value, long long min, long long max) const;

  std::string command_;
  std::string summary_;
  std::vector<OptionSpec> specs_;
  std::string positional_name_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positionals_;
  bool help_ = false;
};

}  // namespace fairdiff::cli
