// Pieces of report.html (the report module's, also used by the study report's sections).
#pragma once

#include <string>
#include <vector>

#include "audit/audit_result.h"
#include "report/charts.h"
#include "report/headline.h"
#include "report/thumbnails.h"

namespace fairdiff::report {

std::string html_escape(const std::string& text);
// "0.412 [0.351, 0.470]" with `decimals` digits; "–" when undefined.
std::string estimate_text(double value, const audit::Interval& ci, int decimals = 3);
std::string chart_block(const Chart& chart);

std::string headline_section(const audit::AuditResult& result, const Headline& headline,
                             const std::vector<Chart>& charts);
std::string caveat_section(const audit::AuditResult& result);
std::string metrics_tables(const audit::AuditResult& result);
std::string comparisons_section(const audit::AuditResult& result);
std::string correction_tables(const audit::AuditResult& result);
std::string thumbnails_section(const audit::AuditResult& result, const std::vector<RunThumbnails>& thumbnails);
std::string data_section(const audit::AuditResult& result, const std::vector<std::string>& label_map,
                         const std::string& command_line);
std::string methods_section(const audit::AuditResult& result);

}  // namespace fairdiff::report
