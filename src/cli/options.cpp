#include "cli/options.h"

#include <cstdio>

namespace fairdiff::cli {
namespace {

std::string field_of(const std::string& flag, const std::string& field_name) {
  if (!field_name.empty()) return field_name;
  std::string field = flag;
  for (char& c : field) {
    if (c == '-') c = '_';
  }
  return field;
}

std::string number_text(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

}  // namespace

OptionTable& OptionTable::add(Binding binding) {
  bindings_.push_back(std::move(binding));
  return *this;
}

OptionTable& OptionTable::flag(const std::string& name, const std::string& help, bool& field,
                               const std::string& field_name, bool sets) {
  return add({{name, "", help}, field_of(name, field_name), "", [name, &field, sets](const Args& args) {
                if (args.flag(name)) field = sets;
              }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                std::string& field, const std::string& field_name) {
  return add({{name, value_name, help}, field_of(name, field_name), field, [name, &field](const Args& args) {
                if (auto v = args.get(name)) field = *v;
              }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                std::filesystem::path& field, const std::string& field_name) {
  return add({{name, value_name, help}, field_of(name, field_name), field.string(), [name, &field](const Args& args) {
                if (auto v = args.get(name)) field = *v;
              }});
}

OptionTable& OptionTable::choice(const std::string& name, const std::string& help, std::string& field,
                                 const std::vector<std::string>& choices, const std::string& field_name) {
  std::string value_name;
  for (const auto& c : choices) value_name += (value_name.empty() ? "" : "|") + c;
  return add({{name, value_name, help}, field_of(name, field_name), field, [name, &field, choices](const Args& args) {
                if (args.has(name)) field = args.get_choice(name, field, choices);
              }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                int64_t& field, long long min, long long max, const std::string& field_name) {
  return add({{name, value_name, help},
              field_of(name, field_name),
              std::to_string(field),
              [name, &field, min, max](const Args& args) { field = args.get_int(name, field, min, max); }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                long long& field, long long min, long long max, const std::string& field_name) {
  return add({{name, value_name, help},
              field_of(name, field_name),
              std::to_string(field),
              [name, &field, min, max](const Args& args) { field = args.get_int(name, field, min, max); }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                int& field, long long min, long long max, const std::string& field_name) {
  return add(
      {{name, value_name, help},
       field_of(name, field_name),
       std::to_string(field),
       [name, &field, min, max](const Args& args) { field = static_cast<int>(args.get_int(name, field, min, max)); }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                uint64_t& field, long long min, long long max, const std::string& field_name) {
  return add({{name, value_name, help},
              field_of(name, field_name),
              std::to_string(field),
              [name, &field, min, max](const Args& args) {
                if (args.has(name)) field = static_cast<uint64_t>(args.get_int(name, 0, min, max));
              }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                double& field, double min, double max, const std::string& field_name) {
  return add({{name, value_name, help},
              field_of(name, field_name),
              number_text(field),
              [name, &field, min, max](const Args& args) { field = args.get_double(name, field, min, max); }});
}

OptionTable& OptionTable::value(const std::string& name, const std::string& value_name, const std::string& help,
                                float& field, double min, double max, const std::string& field_name) {
  return add({{name, value_name, help},
              field_of(name, field_name),
              number_text(field),
              [name, &field, min, max](const Args& args) {
                field = static_cast<float>(args.get_double(name, field, min, max));
              }});
}

OptionTable& OptionTable::unbound(const std::vector<OptionSpec>& specs) {
  for (const auto& spec : specs) add({spec, field_of(spec.name, ""), "", nullptr});
  return *this;
}

OptionTable& OptionTable::reports(const std::string& field, const std::string& flag) {
  Binding alias{{flag, "", ""}, field, "", nullptr};
  alias.hidden = true;
  return add(alias);
}

std::vector<OptionSpec> OptionTable::specs() const {
  std::vector<OptionSpec> out;
  for (const auto& b : bindings_) {
    if (b.hidden) continue;
    OptionSpec spec = b.spec;
    if (b.read && !b.default_text.empty() && spec.help.find("(default") == std::string::npos) {
      spec.help += " (default " + b.default_text + ")";
    }
    out.push_back(spec);
  }
  return out;
}

void OptionTable::read(const Args& args) const {
  for (const auto& b : bindings_) {
    if (b.read) b.read(args);
  }
}

std::string OptionTable::flag_of(const std::string& field) const {
  for (const auto& b : bindings_) {
    if (b.field == field) return "--" + b.spec.name;
  }
  return "";
}

}  // namespace fairdiff::cli
