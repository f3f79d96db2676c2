#include "faces/analysis_journal.h"

#include <chrono>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "faces/analysis_json.h"

namespace fairdiff {
namespace {

// Size and modification time (nanoseconds) of a file; false when it cannot be read.
bool file_stamp(const std::filesystem::path& file, uintmax_t& bytes, int64_t& mtime) {
  std::error_code ec;
  bytes = std::filesystem::file_size(file, ec);
  if (ec) return false;
  const auto time = std::filesystem::last_write_time(file, ec);
  if (ec) return false;
  mtime = static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count());
  return true;
}

Json entry_json(const std::string& key, uintmax_t bytes, int64_t mtime, const ImageAnalysis& analysis) {
  return Json{{"path", key}, {"bytes", bytes}, {"mtime_ns", mtime}, {"analysis", analysis_to_json(analysis)}};
}

}  // namespace

int AnalysisJournal::read_entries(const std::filesystem::path& file, const Json& identity,
                                  std::map<std::string, Entry>& entries) {
  std::istringstream in(read_file(file));
  std::string line;
  bool first = true;
  int matches = -1;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // the last line had no newline: torn by a crash
    Json json = Json::parse(line, nullptr, false);
    if (first) {
      first = false;
      matches = !json.is_discarded() && json.is_object() && json.value("identity", Json()) == identity ? 1 : 0;
      if (matches == 0) return 0;
      continue;
    }
    if (json.is_discarded() || !json.is_object()) continue;
    try {
      Entry entry;
      entry.bytes = json.at("bytes").get<uintmax_t>();
      entry.mtime = json.at("mtime_ns").get<int64_t>();
      entry.analysis = analysis_from_json(json.at("analysis"), file.string());
      entries[json.at("path").get<std::string>()] = std::move(entry);
    } catch (const std::exception&) {
      // A line this version cannot read is analysed again.
    }
  }
  return matches;
}

AnalysisJournal::AnalysisJournal(std::filesystem::path file, Json identity)
    : file_(std::move(file)), identity_(std::move(identity)) {
  const Json header{{"journal", "fairdiff analyze"}, {"identity", identity_}};
  std::error_code ec;
  if (std::filesystem::is_regular_file(file_, ec)) {
    // A journal without a whole first line (torn before its header was written) holds nothing to start over.
    started_over_ = read_entries(file_, identity_, entries_) == 0;
  }
  std::string text = header.dump() + "\n";
  for (const auto& [key, e] : entries_) text += entry_json(key, e.bytes, e.mtime, e.analysis).dump() + "\n";
  write_file_atomic(file_, text);
  out_.open(file_, std::ios::app | std::ios::binary);
  if (!out_) throw InputError("cannot append to " + file_.string() + " (is the folder writable?)");
}

int64_t AnalysisJournal::absorb(const std::filesystem::path& other) {
  std::map<std::string, Entry> entries;
  if (read_entries(other, identity_, entries) != 1) return -1;
  int64_t taken = 0;
  for (auto& [key, entry] : entries) {
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.bytes == entry.bytes && it->second.mtime == entry.mtime) continue;
    out_ << entry_json(key, entry.bytes, entry.mtime, entry.analysis).dump() << '\n';
    entries_[key] = std::move(entry);
    ++taken;
  }
  out_.flush();
  if (!out_) throw InputError("failed while appending to " + file_.string() + " (is the disk full?)");
  return taken;
}

const ImageAnalysis* AnalysisJournal::find(const std::string& key, const std::filesystem::path& image) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  uintmax_t bytes = 0;
  int64_t mtime = 0;
  if (!file_stamp(image, bytes, mtime) || bytes != it->second.bytes || mtime != it->second.mtime) return nullptr;
  return &it->second.analysis;
}

void AnalysisJournal::record(const std::string& key, const std::filesystem::path& image,
                             const ImageAnalysis& analysis) {
  uintmax_t bytes = 0;
  int64_t mtime = 0;
  if (!file_stamp(image, bytes, mtime)) return;  // gone since it was read: nothing to vouch for
  out_ << entry_json(key, bytes, mtime, analysis).dump() << '\n';
  out_.flush();
  if (!out_) throw InputError("failed while appending to " + file_.string() + " (is the disk full?)");
  entries_[key] = {bytes, mtime, analysis};
}

}  // namespace fairdiff
