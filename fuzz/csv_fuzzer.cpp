// libFuzzer harness: the CSV reader (core/csv.h) and the readers built on it: prompts CSVs and plan CSVs
// (core/prompts.h), and the audit's detection CSVs with their gender/race/age labels (audit/detections.h).
#include "audit/detections.h"
#include "core/csv.h"
#include "core/prompts.h"
#include "fuzz_support.h"

namespace {

struct Fixed {
  fairdiff::PromptSet prompts;
  fairdiff::audit::DetectionOptions options;
};

const Fixed& fixed() {
  static const Fixed value = [] {
    Fixed f;
    f.prompts = fairdiff::read_prompts_csv(fairdiff::fuzz::source_dir() / "data/seed/prompts_info.csv");
    f.options.label_map.add("race:latino=latino hispanic");
    f.options.label_map.add("prompt:delivery_driver=delivery");
    return f;
  }();
  return value;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fixed();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using fairdiff::fuzz::expect_clear_errors;
  using fairdiff::fuzz::report_finding;
  const std::string text(reinterpret_cast<const char*>(data), size);

  fairdiff::CsvTable table;
  if (expect_clear_errors("parse_csv", [&] { table = fairdiff::parse_csv(text, "input.csv"); })) {
    for (const auto& row : table.rows) {
      if (row.fields.size() != table.header.size() || row.line < 2) report_finding("parse_csv", "inconsistent row");
    }
    // What csv_line writes, parse_csv reads back as the same table (a field's spaces are kept except in the
    // header, which is trimmed; and a lone empty field is a blank line, which is skipped).
    std::string written = fairdiff::csv_line(table.header);
    bool comparable = true;
    for (const auto& row : table.rows) {
      comparable = comparable && !(row.fields.size() == 1 && row.fields[0].empty());
      written += fairdiff::csv_line(row.fields);
    }
    if (comparable && !(table.header.size() == 1 && table.header[0].empty())) {
      fairdiff::fuzz::expect_no_error("csv_line round trip", [&] {
        const fairdiff::CsvTable again = fairdiff::parse_csv(written, "written.csv");
        bool same = again.header == table.header && again.rows.size() == table.rows.size();
        for (size_t r = 0; same && r < table.rows.size(); ++r) same = again.rows[r].fields == table.rows[r].fields;
        if (!same) report_finding("csv_line round trip", "the written table reads back differently");
      });
    }
  }

  const auto path = fairdiff::fuzz::write_scratch_file("input.csv", data, size);
  expect_clear_errors("read_prompts_csv", [&] {
    const fairdiff::PromptSet prompts = fairdiff::read_prompts_csv(path);
    for (int i = 0; i < prompts.size(); ++i) {
      if (!fairdiff::is_folder_safe_id(prompts.ids[i]) || prompts.texts[i].empty()) {
        report_finding("read_prompts_csv", "accepted an unusable prompt");
      }
    }
  });
  expect_clear_errors("read_plan_as_prompts", [&] {
    if (!fairdiff::is_plan_csv(path)) return;
    const fairdiff::PlannedPrompts plan = fairdiff::read_plan_as_prompts(path);
    for (int i = 0; i < plan.prompts.size(); ++i) {
      if (!fairdiff::is_folder_safe_id(plan.prompts.ids[i]) || plan.images[i] <= 0) {
        report_finding("read_plan_as_prompts", "accepted an unusable planned prompt");
      }
    }
  });
  expect_clear_errors("parse_detections", [&] {
    const fairdiff::audit::Run run =
        fairdiff::audit::parse_detections(text, "detections.csv", "run", fixed().prompts, fixed().options);
    const auto& taxonomy = fixed().options.taxonomy;
    for (const auto& image : run.images) {
      if (image.prompt < 0 || image.prompt >= fixed().prompts.size() || image.gender < -1 ||
          image.gender >= static_cast<int>(taxonomy.genders.size()) || image.race < -1 ||
          image.race >= static_cast<int>(taxonomy.races.size())) {
        report_finding("parse_detections", "an image record with an index out of range");
      }
    }
  });
  return 0;
}
