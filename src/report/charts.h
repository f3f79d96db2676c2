// Vega-Lite specifications of the report's charts, built from an audit. The HTML page renders them with
// vega-embed (inlined from node_modules), so the report opens offline.
#pragma once

#include <string>
#include <vector>

#include "audit/audit_result.h"
#include "core/json.h"

namespace fairdiff::report {

struct Chart {
  std::string id;       // DOM id, "chart-<something>"
  std::string section;  // which report section shows it
  std::string title;
  std::string caption;
  Json spec;  // a complete Vega-Lite spec with inline data
};

std::vector<Chart> make_charts(const audit::AuditResult& result);

}  // namespace fairdiff::report
