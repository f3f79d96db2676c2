// One table per subcommand binding each flag to a field of its config struct, on top of Args (args.h).
//
// Why our own Args and not CLI11: Args already gives every subcommand the errors and --help layout the tests
// and docs rely on (unknown flags, repeated flags, range errors naming flag and value, exit code 2), other
// subcommands are being written against it, and the binding below is ~150 lines; CLI11 would add a second
// parser with its own messages and exit codes, and its defaults would still have to be copied from the
// structs.
//
// A binding's default is the field's value when it is bound (the struct's initialiser), printed in --help;
// reading the command line assigns only the flags that were given, range-checked. Library code reports a bad
// field with FieldError / FieldInputError (core/error.h); with_flag_names() turns the field into its flag.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "core/error.h"

namespace fairdiff::cli {

class OptionTable {
 public:
  // A boolean flag that sets `field` to true (or, with `sets` = false, to false, e.g. --no-cache-latents).
  OptionTable& flag(const std::string& name, const std::string& help, bool& field, const std::string& field_name = "",
                    bool sets = true);
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help,
                     std::string& field, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help,
                     std::filesystem::path& field, const std::string& field_name = "");
  // One of `choices`.
  OptionTable& choice(const std::string& name, const std::string& help, std::string& field,
                      const std::vector<std::string>& choices, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, int64_t& field,
                     long long min, long long max, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, long long& field,
                     long long min, long long max, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, int& field,
                     long long min, long long max, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, uint64_t& field,
                     long long min, long long max, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, double& field,
                     double min, double max, const std::string& field_name = "");
  OptionTable& value(const std::string& name, const std::string& value_name, const std::string& help, float& field,
                     double min, double max, const std::string& field_name = "");
  // Options read by hand with Args (not bound to a field); a FieldError naming `name` with '-' as '_' still
  // reports the flag.
  OptionTable& unbound(const std::vector<OptionSpec>& specs);

  // A field that `flag` (already in the table) also sets, e.g. lr.total_steps from --max-train-steps: a
  // FieldError naming it reports the flag.
  OptionTable& reports(const std::string& field, const std::string& flag);

  // The specs for Args, each bound one's help ending in "(default X)" unless it says its default itself.
  std::vector<OptionSpec> specs() const;
  // Assigns the bound fields of the flags given in `args`.
  void read(const Args& args) const;
  // "--flag" of a bound field, "" when no flag sets it.
  std::string flag_of(const std::string& field) const;

  // Runs `work`; a FieldError (FieldInputError) naming a bound field is rethrown as a UsageError (InputError)
  // naming its flag.
  template <class Work>
  decltype(auto) with_flag_names(Work&& work) const {
    try {
      return work();
    } catch (const FieldError& e) {
      const std::string flag = flag_of(e.field());
      if (flag.empty()) throw;
      throw UsageError(flag + " " + e.detail());
    } catch (const FieldInputError& e) {
      const std::string flag = flag_of(e.field());
      if (flag.empty()) throw;
      throw InputError(flag + " " + e.detail());
    }
  }

 private:
  struct Binding {
    OptionSpec spec;
    std::string field;         // empty for an unbound option
    std::string default_text;  // empty: no default printed
    std::function<void(const Args&)> read;
    bool hidden = false;  // an alias from reports(): not a spec of its own
  };
  OptionTable& add(Binding binding);
  std::vector<Binding> bindings_;
};

}  // namespace fairdiff::cli
