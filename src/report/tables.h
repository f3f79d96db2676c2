// CSV exports of an audit, under DIR/tables:
//  - prompt_gender.csv, prompt_race.csv, prompt_gender_race.csv: the study's layout, one row per prompt and
//    group ("--" included), one column per run holding the group's share of all the prompt's images
//    (empty when the run lacks the prompt);
//  - summary_gender.csv, summary_race.csv, summary_gender_race.csv: those shares averaged over the prompts
//    every run has;
//  - distributions.csv: long form with counts, both shares and Wilson intervals (age included);
//  - metrics.csv: every metric per run, attribute and prompt (and "average") with interval and noise floor;
//  - comparisons.csv: chi-square homogeneity of each run against the baseline, per prompt;
//  - corrected.csv: raw and corrected shares side by side (with --confusion).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "audit/audit_result.h"

namespace fairdiff::report {

// Numbers for people and files: shortest round-trip text for exact shares, 6 decimals otherwise.
std::string format_number(double value, int decimals = 6);

// Returns the written files' names (relative to `tables_dir`).
std::vector<std::string> write_tables(const audit::AuditResult& result, const std::filesystem::path& tables_dir);

// Text of one study-layout table (exposed for tests).
std::string prompt_table_csv(const audit::AuditResult& result, audit::Attribute attribute);
std::string summary_table_csv(const audit::AuditResult& result, audit::Attribute attribute);

}  // namespace fairdiff::report
