// Command-line flags shared by the face subcommands (analyze, eval-classifier): --profile and the files
// each profile needs.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "faces/profiles.h"

namespace fairdiff::cli {

std::vector<OptionSpec> face_profile_options();
// Reads and validates the flags (files exist, values in range) without loading any model.
ProfileOptions read_face_profile_options(const Args& args, const std::string& profile);

}  // namespace fairdiff::cli
