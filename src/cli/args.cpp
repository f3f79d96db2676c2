#include "cli/args.h"

#include "core/error.h"
#include "core/strings.h"

namespace fairdiff::cli {

Args::Args(std::string command, std::string summary, std::vector<OptionSpec> specs,
           const std::vector<std::string>& argv, std::string positional_name)
    : command_(std::move(command)),
      summary_(std::move(summary)),
      specs_(std::move(specs)),
      positional_name_(std::move(positional_name)) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& word = argv[i];
    if (word == "--help" || word == "-h") {
      help_ = true;
      continue;
    }
    if (!starts_with(word, "--")) {
      if (positional_name_.empty()) {
        throw UsageError(command_ + ": unexpected argument '" + word + "' (options start with --; see --help)");
      }
      positionals_.push_back(word);
      continue;
    }
    std::string name = word.substr(2);
    std::optional<std::string> inline_value;
    size_t equals = name.find('=');
    if (equals != std::string::npos) {
      inline_value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    const OptionSpec* spec = find_spec(name);
    if (!spec) throw UsageError(command_ + ": unknown option --" + name + " (see " + command_ + " --help)");
    if (!spec->repeatable && values_.count(name)) {
      throw UsageError(command_ + ": --" + name + " given more than once");
    }
    if (spec->value_name.empty()) {
      if (inline_value) throw UsageError(command_ + ": --" + name + " takes no value");
      values_[name].push_back("true");
      continue;
    }
    if (inline_value) {
      values_[name].push_back(*inline_value);
    } else {
      if (i + 1 >= argv.size()) {
        throw UsageError(command_ + ": --" + name + " needs a value (" + spec->value_name + ")");
      }
      values_[name].push_back(argv[++i]);
    }
  }
}

const OptionSpec* Args::find_spec(const std::string& name) const {
  for (const auto& spec : specs_) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string Args::usage() const {
  std::string text = "usage: fairdiff " + command_ + " [options]" +
                     (positional_name_.empty() ? "" : " " + positional_name_) + "\n" + summary_ + "\n\noptions:\n";
  for (const auto& spec : specs_) {
    std::string left = "  --" + spec.name + (spec.value_name.empty() ? "" : " " + spec.value_name);
    if (left.size() < 30)
      left.resize(30, ' ');
    else
      left += "\n" + std::string(30, ' ');
    text += left + spec.help + (spec.repeatable ? " (repeatable)" : "") + "\n";
  }
  return text;
}

bool Args::has(const std::string& name) const {
  return values_.count(name) > 0;
}

bool Args::flag(const std::string& name) const {
  return has(name);
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second.back();
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  auto value = get(name);
  return value ? *value : fallback;
}

std::string Args::require(const std::string& name) const {
  auto value = get(name);
  if (!value) {
    const OptionSpec* spec = find_spec(name);
    throw UsageError(command_ + ": --" + name + " is required" + (spec ? " (" + spec->help + ")" : ""));
  }
  return *value;
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

long long Args::parse_int_value(const std::string& name, const std::string& value, long long min, long long max) const {
  long long parsed = 0;
  if (!parse_int64(value, parsed)) throw UsageError(command_ + ": --" + name + " " + value + ": expected an integer");
  if (parsed < min || parsed > max) {
    throw UsageError(command_ + ": --" + name + " " + value + ": expected an integer in [" + std::to_string(min) +
                     ", " + std::to_string(max) + "]");
  }
  return parsed;
}

long long Args::get_int(const std::string& name, long long fallback, long long min, long long max) const {
  auto value = get(name);
  return value ? parse_int_value(name, *value, min, max) : fallback;
}

double Args::get_double(const std::string& name, double fallback, double min, double max) const {
  auto value = get(name);
  if (!value) return fallback;
  double parsed = 0;
  if (!parse_double(*value, parsed)) throw UsageError(command_ + ": --" + name + " " + *value + ": expected a number");
  if (parsed < min || parsed > max) {
    throw UsageError(command_ + ": --" + name + " " + *value + ": expected a number in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
  }
  return parsed;
}

std::string Args::get_choice(const std::string& name, const std::string& fallback,
                             const std::vector<std::string>& choices) const {
  std::string value = get(name, fallback);
  for (const auto& choice : choices) {
    if (choice == value) return value;
  }
  throw UsageError(command_ + ": --" + name + " " + value + ": expected one of " + join(choices, ", "));
}

}  // namespace fairdiff::cli
