// Command-line flags shared by the face subcommands (analyze, eval-classifier, train-classifier, bench analyze):
// --profile and the files each profile needs, bound to a ProfileOptions.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/options.h"
#include "faces/profiles.h"

namespace fairdiff::cli {

// Binds --profile to `profile` and the profile's flags to the fields of `options`.
void bind_face_profile(OptionTable& table, std::string& profile, ProfileOptions& options);

// The same flags as plain specs, and reading them from Args: for callers that do not use an OptionTable.
std::vector<OptionSpec> face_profile_options();
// Reads and validates the flags (files exist, values in range) without loading any model; errors name the flag.
ProfileOptions read_face_profile_options(const Args& args, const std::string& profile);

}  // namespace fairdiff::cli
