#include "faces/folder_analysis.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>

#include "core/csv.h"
#include "core/error.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/progress.h"

namespace fairdiff {

namespace fs = std::filesystem;

namespace {

// Natural order: digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      std::string na = a.substr(i, ie - i), nb = b.substr(j, je - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = ie, j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i, ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::vector<fs::path> sorted_children(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (directories ? e.is_directory() : e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return natural_less(a.filename().string(), b.filename().string());
  });
  return out;
}

std::string format_float(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

}  // namespace

std::vector<ImageEntry> list_images(const fs::path& dir, bool by_folder) {
  std::vector<ImageEntry> entries;
  const std::string folder_name = fs::absolute(dir).lexically_normal().filename().string().empty()
                                      ? fs::absolute(dir).lexically_normal().parent_path().filename().string()
                                      : fs::absolute(dir).lexically_normal().filename().string();
  if (!by_folder) {
    for (const auto& f : sorted_children(dir, false)) entries.push_back({folder_name, f.filename().string(), f});
    if (entries.empty()) {
      size_t with_files = 0;
      for (const auto& sub : sorted_children(dir, true)) with_files += sorted_children(sub, false).empty() ? 0 : 1;
      if (with_files > 0) {
        throw InputError(dir.string() + " holds no files at its top level but " + std::to_string(with_files) +
                         " sub-folder(s) with files: pass --by-folder to analyse one folder per prompt");
      }
    }
    return entries;
  }
  const auto top_level = sorted_children(dir, false);
  if (!top_level.empty()) {
    std::fprintf(stderr,
                 "analyze: warning: --by-folder reads the sub-folders of %s; its %zu file(s) at the top level (e.g. "
                 "%s) belong to no prompt and are left out\n",
                 dir.string().c_str(), top_level.size(), top_level.front().filename().string().c_str());
  }
  for (const auto& sub : sorted_children(dir, true)) {
    for (const auto& f : sorted_children(sub, false)) {
      entries.push_back({sub.filename().string(), (sub.filename() / f.filename()).string(), f});
    }
  }
  return entries;
}

FolderAnalysis analyze_images(FaceAnalyzer& analyzer, const std::vector<ImageEntry>& entries, bool show_progress,
                              int64_t max_pixels, AnalysisJournal* journal) {
  FolderAnalysis result;
  std::vector<const ImageAnalysis*> recorded(entries.size(), nullptr);
  if (journal) {
    for (size_t i = 0; i < entries.size(); ++i) recorded[i] = journal->find(entries[i].path, entries[i].file);
  }
  const long long reused = static_cast<long long>(
      std::count_if(recorded.begin(), recorded.end(), [](const ImageAnalysis* a) { return a != nullptr; }));
  Progress progress("analyze", static_cast<long long>(entries.size()), reused, "img");
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < entries.size(); ++i) {
    const ImageEntry& entry = entries[i];
    if (recorded[i]) {
      result.images.push_back({entry, *recorded[i]});
      ++result.reused;
      continue;
    }
    check_interrupt();
    if (!looks_like_image_file(entry.file)) {
      result.skipped.push_back({entry.path, "not a PNG or JPEG file"});
    } else {
      std::optional<ImageAnalysis> analysis;
      try {
        analysis = analyzer.analyze(read_image(entry.file, max_pixels));
      } catch (const InputError& e) {
        result.skipped.push_back({entry.path, e.what()});
      }
      if (analysis) {
        // Outside the try: a journal that cannot be written (full disk) stops the run, it does not skip images.
        if (journal) journal->record(entry.path, entry.file, *analysis);
        result.images.push_back({entry, std::move(*analysis)});
      }
    }
    if (show_progress) progress.advance(1);
  }
  progress.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string study_csv(const FolderAnalysis& result) {
  std::string out = csv_line({"prompt", "path", "gender", "age", "race"});
  for (const auto& img : result.images) {
    StudyLabels l = study_labels(img.analysis);
    out += csv_line({img.entry.prompt, img.entry.path, l.gender, l.age, l.race});
  }
  return out;
}

std::string faces_csv(const FolderAnalysis& result) {
  std::vector<std::string> header = {"prompt", "path", "face",  "principal", "x0",  "y0",
                                     "x1",     "y1",   "score", "gender",    "age", "race"};
  // The heads' columns come from the first classified face: a profile's heads are the same for every face.
  const FaceAttributes* layout = nullptr;
  for (const auto& img : result.images) {
    if (!img.analysis.faces.empty()) {
      layout = &img.analysis.faces[0].attributes;
      break;
    }
  }
  if (layout) {
    for (const auto& p : layout->predictions) {
      const std::string prefix = p.source + "." + p.attribute;
      header.push_back(prefix);
      for (const auto& label : p.labels) header.push_back(prefix + ".p." + label);
      if (p.years) header.push_back(prefix + ".years");
    }
  }
  std::string out = csv_line(header);
  for (const auto& img : result.images) {
    const ImageAnalysis& a = img.analysis;
    for (size_t i = 0; i < a.faces.size(); ++i) {
      const Face& f = a.faces[i];
      ImageAnalysis single = a;
      single.principal = static_cast<int>(i);
      StudyLabels l = study_labels(single);
      std::vector<std::string> row = {img.entry.prompt,
                                      img.entry.path,
                                      std::to_string(i),
                                      static_cast<int>(i) == a.principal ? "1" : "0",
                                      format_float(f.box.x0, 1),
                                      format_float(f.box.y0, 1),
                                      format_float(f.box.x1, 1),
                                      format_float(f.box.y1, 1),
                                      format_float(f.box.score, 4),
                                      l.gender,
                                      l.age,
                                      l.race};
      for (const auto& p : f.attributes.predictions) {
        row.push_back(p.label());
        for (float prob : p.probabilities) row.push_back(format_float(prob, 5));
        if (p.years) row.push_back(format_float(*p.years, 1));
      }
      out += csv_line(row);
    }
  }
  return out;
}

std::string skipped_csv(const FolderAnalysis& result) {
  std::string out = csv_line({"path", "reason"});
  for (const auto& s : result.skipped) out += csv_line({s.path, s.reason});
  return out;
}

}  // namespace fairdiff
