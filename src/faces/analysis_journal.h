// The record an `analyze` run keeps of the images it has finished (OUT/journal.jsonl: one JSON line per image with
// its size, modification time and full analysis), so a run stopped by Ctrl-C, a crash or a full disk resumes where
// it stopped, and a rerun over a folder with new images analyses only those. The first line holds the settings the
// labels depend on (profile, models, thresholds); a journal with other settings is started over. A sharded run
// (`analyze --shard K/N`) keeps its own journal, journal.K-of-N.jsonl, beside it; an unsharded run on the same
// output folder takes in every shard's journal made with its settings (absorb), so it analyses only what no
// shard did and writes the outputs of the whole folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "core/json.h"
#include "faces/face_types.h"

namespace fairdiff {

class AnalysisJournal {
 public:
  // Reads the journal at `file` when it was made with `identity` (a torn last line is dropped), rewrites it with
  // what it keeps, and opens it for appending. InputError naming the file when it cannot be written.
  AnalysisJournal(std::filesystem::path file, Json identity);

  // The recorded analysis of `image` (keyed by `key`, its path inside the analysed folder) when the file still has
  // the size and modification time it had then; nullptr otherwise.
  const ImageAnalysis* find(const std::string& key, const std::filesystem::path& image) const;
  // Appends one image's analysis (flushed at once: a crash loses at most the line being written).
  void record(const std::string& key, const std::filesystem::path& image, const ImageAnalysis& analysis);

  // Takes the entries of another journal made with the same settings (a shard's, `analyze --shard K/N`; read, not
  // changed) into this one, recording them here too; returns how many it took, or -1 when `other` was made with
  // other settings (nothing taken).
  int64_t absorb(const std::filesystem::path& other);

  size_t size() const { return entries_.size(); }
  // Whether an existing journal was dropped because its settings differ.
  bool started_over() const { return started_over_; }

 private:
  struct Entry {
    uintmax_t bytes = 0;
    int64_t mtime = 0;
    ImageAnalysis analysis;
  };
  // The entries of the journal `file` when its first line holds `identity`: 1, 0 when it holds other settings (no
  // entries read), -1 when it has no whole first line.
  static int read_entries(const std::filesystem::path& file, const Json& identity,
                          std::map<std::string, Entry>& entries);

  std::filesystem::path file_;
  Json identity_;
  std::map<std::string, Entry> entries_;
  std::ofstream out_;
  bool started_over_ = false;
};

}  // namespace fairdiff
