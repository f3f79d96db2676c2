// `fairdiff report`'s outputs: DIR/report.html (one self-contained page: charts rendered by the inlined
// Vega-Lite, tables, thumbnails, methods), DIR/metrics.json and DIR/tables/*.csv.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "audit/audit_result.h"
#include "report/assets.h"
#include "report/charts.h"
#include "report/headline.h"
#include "report/thumbnails.h"

namespace fairdiff::report {

struct ReportOptions {
  ThumbnailOptions thumbnails;
  bool with_thumbnails = true;
  std::vector<std::string> label_map;  // --map entries in force, for the data notes
  std::string command_line;            // how the report was made, for the data notes
  // Extra sections placed after the headline (a mitigation study's grid, targeted groups, provenance and paired
  // images), with their navigation links: (anchor id, link text).
  std::string study_sections_html;
  std::vector<std::pair<std::string, std::string>> study_links;
};

struct ReportFiles {
  std::filesystem::path html;
  std::filesystem::path json;
  std::vector<std::filesystem::path> tables;
  int charts = 0;
  int thumbnails = 0;
};

// The page's HTML (exposed for tests).
std::string render_html(const audit::AuditResult& result, const Headline& headline, const std::vector<Chart>& charts,
                        const ChartLibrary& library, const std::vector<RunThumbnails>& thumbnails,
                        const ReportOptions& options);

// Writes report.html, metrics.json and tables/ under `out_dir` (created when missing).
ReportFiles write_report(const audit::AuditResult& result, const std::vector<audit::Run>& runs,
                         const std::filesystem::path& out_dir, const ReportOptions& options);

}  // namespace fairdiff::report
