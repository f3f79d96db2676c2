// DIR/metrics.json: everything the audit computed, for programs (the HTML report reads the same data).
//   {"fairdiff_report": 1, "settings": {...}, "prompts": [{"id","text"}], "taxonomy": {...},
//    "runs": [{"name","source","layout","n_images","rows_read","notes",
//              "distributions": {"<prompt_id>|all": {"<attribute>": {"labels","counts","n_images","n_none",
//                                "share_all","share_all_ci","share_determined","share_determined_ci"}}},
//              "metrics": {"<attribute>": {"per_prompt": {"<prompt_id>": {"n","chi_square_p",
//                          "small_expected_counts", "<metric>": {"value","ci","floor_mean","floor_q95"}}},
//                          "average": {"prompts": [...], "<metric>": {...}}}},
//              "corrected": {"<attribute>": {"<prompt_id>": {"labels","raw","raw_ci","corrected",
//                            "corrected_ci","metrics"}}}}],
//    "homogeneity": {"<attribute>": {"<prompt_id>": {"statistic","df","p_value","p_value_mc",...}}},
//    "comparisons": [{"run","baseline","prompts","tests","share_changes","average_changes"}],
//    "headline": {...}}
// Numbers that are undefined (a prompt without faces) are null.
#pragma once

#include "audit/audit_result.h"
#include "core/json.h"
#include "report/headline.h"

namespace fairdiff::report {

Json metrics_json(const audit::AuditResult& result, const Headline& headline);

// A double as JSON: null when NaN, the string "inf" when infinite.
Json json_number(double value);

}  // namespace fairdiff::report
