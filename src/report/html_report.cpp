#include "report/html_report.h"

#include "core/fs.h"
#include "report/html_parts.h"
#include "report/metrics_json.h"
#include "report/tables.h"

namespace fairdiff::report {

namespace {

const char* kStyle = R"CSS(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #263238; color: #eceff1; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 2px 0; color: #b0bec5; }
nav { padding: 8px 32px; background: #eceff1; border-bottom: 1px solid #cfd8dc; }
nav a { margin-right: 16px; color: #37474f; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 48px; max-width: 1500px; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #90a4ae; padding-bottom: 4px; }
h3 { margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 8px 0 16px; background: #fff; font-size: 13px; }
th, td { border: 1px solid #cfd8dc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.floor { color: #78909c; font-size: 11px; }
.significant { background: #ffebee; }
.improved { background: #e8f5e9; }
.note { color: #546e7a; }
.caveat { background: #fff8e1; border-left: 4px solid #ffb300; padding: 8px 14px; }
figure { margin: 12px 0 24px; background: #fff; border: 1px solid #e0e0e0; padding: 10px; display: inline-block; }
figcaption { color: #546e7a; max-width: 900px; margin-top: 6px; }
.thumbs { display: flex; flex-wrap: wrap; gap: 2px; }
.thumbs img { width: 48px; height: 48px; object-fit: cover; }
code, pre { background: #eceff1; padding: 1px 4px; border-radius: 3px; }
pre { padding: 8px; overflow-x: auto; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
)CSS";

const char* kRenderScript = R"JS(
(function () {
  function status(state, detail) {
    document.body.setAttribute('data-render-status', state);
    document.title = 'fairdiff report: ' + state + (detail ? ' (' + detail + ')' : '');
  }
  window.addEventListener('error', function (e) { status('error', e.message); });
  var charts = JSON.parse(document.getElementById('fairdiff-charts').textContent);
  if (typeof vegaEmbed !== 'function') { status('error', 'vega-embed did not load'); return; }
  Promise.all(charts.map(function (c) {
    return vegaEmbed('#' + c.id, c.spec, { renderer: 'svg', actions: false }).then(function (r) {
      document.getElementById(c.id).setAttribute('data-rendered', 'yes');
      return r;
    });
  })).then(function () {
    document.body.setAttribute('data-charts-rendered', String(charts.length));
    status('ready', charts.length + ' charts');
  }).catch(function (err) {
    status('error', String(err));
    console.error(err);
  });
})();
)JS";

// JSON inside <script>: "</" would close the element, so it is written "<\/" (the same string in JSON).
std::string script_safe_json(const Json& value) {
  std::string text = value.dump();
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '<' && i + 1 < text.size() && text[i + 1] == '/') {
      out += "<\\/";
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string charts_of_section(const std::vector<Chart>& charts, const std::string& section) {
  std::string out;
  for (const auto& chart : charts) {
    if (chart.section == section) out += chart_block(chart);
  }
  return out;
}

}  // namespace

std::string render_html(const audit::AuditResult& result, const Headline& headline, const std::vector<Chart>& charts,
                        const ChartLibrary& library, const std::vector<RunThumbnails>& thumbnails,
                        const ReportOptions& options) {
  std::string run_names;
  for (const auto& run : result.runs) run_names += (run_names.empty() ? "" : ", ") + run.name;
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>fairdiff report: rendering</title>\n<style>" +
      std::string(kStyle) + "</style>\n";
  for (const auto& [name, source] : library.scripts) {
    html += "<script data-library=\"" + name + "\">\n" + source + "\n</script>\n";
  }
  html += "</head>\n<body data-render-status=\"pending\">\n<header><h1>Demographic bias audit</h1>\n<p>Runs: " +
          html_escape(run_names) + " &middot; " + std::to_string(result.prompts.size()) +
          " prompts &middot; target: " + html_escape(result.target.is_uniform() ? "uniform" : result.target.source()) +
          " &middot; " + std::to_string(result.settings.bootstrap.resamples) + " bootstrap resamples (seed " +
          std::to_string(result.settings.bootstrap.seed) + ")</p></header>\n";
  html +=
      "<nav><a href=\"#headline\">Headline</a><a href=\"#caveat\">Trusting the labels</a>"
      "<a href=\"#distributions\">Distributions</a><a href=\"#metrics\">Bias metrics</a>";
  for (const auto& [id, text] : options.study_links)
    html += "<a href=\"#" + html_escape(id) + "\">" + html_escape(text) + "</a>";
  if (result.runs.size() > 1) html += "<a href=\"#comparisons\">Run comparisons</a>";
  if (result.confusion) html += "<a href=\"#correction\">Error correction</a>";
  html +=
      "<a href=\"#thumbnails\">Images</a><a href=\"#data\">Data</a><a href=\"#methods\">Methods</a></nav>\n<main>\n";
  html += headline_section(result, headline, charts);
  html += options.study_sections_html;
  html += caveat_section(result);
  html += "<section id=\"distributions\"><h2>Distributions per prompt</h2>\n" +
          charts_of_section(charts, "distributions") + "</section>\n";
  html += "<section id=\"metrics\"><h2>Bias metrics</h2>\n" + charts_of_section(charts, "metrics") +
          metrics_tables(result) + "</section>\n";
  if (result.runs.size() > 1) html += comparisons_section(result);
  if (result.confusion) {
    html += "<section id=\"correction\"><h2>Classifier-error correction</h2>\n" +
            charts_of_section(charts, "correction") + correction_tables(result) + "</section>\n";
  }
  html += thumbnails_section(result, thumbnails);
  html += data_section(result, options.label_map, options.command_line);
  html += methods_section(result);
  html += "</main>\n";
  Json chart_list = Json::array();
  for (const auto& chart : charts) chart_list.push_back({{"id", chart.id}, {"spec", chart.spec}});
  html += "<script id=\"fairdiff-charts\" type=\"application/json\">" + script_safe_json(chart_list) + "</script>\n";
  html += "<script>" + std::string(kRenderScript) + "</script>\n</body>\n</html>\n";
  return html;
}

ReportFiles write_report(const audit::AuditResult& result, const std::vector<audit::Run>& runs,
                         const std::filesystem::path& out_dir, const ReportOptions& options) {
  ChartLibrary library = load_chart_library();  // fail before writing anything when it is missing
  ensure_directory(out_dir, "report directory");
  ReportFiles files;
  Headline headline = make_headline(result);
  std::vector<Chart> charts = make_charts(result);
  std::vector<RunThumbnails> thumbnails;
  if (options.with_thumbnails) thumbnails = make_thumbnails(result, runs, options.thumbnails);
  for (const auto& t : thumbnails) files.thumbnails += t.found;
  for (const auto& name : write_tables(result, out_dir / "tables")) files.tables.push_back(out_dir / "tables" / name);
  files.json = out_dir / "metrics.json";
  write_json_file(files.json, metrics_json(result, headline));
  files.html = out_dir / "report.html";
  write_file_atomic(files.html, render_html(result, headline, charts, library, thumbnails, options));
  files.charts = static_cast<int>(charts.size());
  return files;
}

}  // namespace fairdiff::report
