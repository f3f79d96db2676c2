// Analysing a folder of images (flat, or one sub-folder per prompt as the study's post-tuning detection
// does) and writing the study's CSV layout and the per-face CSV.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/image.h"
#include "faces/analysis_journal.h"
#include "faces/face_analyzer.h"

namespace fairdiff {

struct ImageEntry {
  std::string prompt;          // the sub-folder's name, or the folder's name when flat
  std::string path;            // relative to the analysed folder
  std::filesystem::path file;  // full path
};

struct SkippedFile {
  std::string path;
  std::string reason;
};

struct AnalyzedImage {
  ImageEntry entry;
  ImageAnalysis analysis;
};

struct FolderAnalysis {
  std::vector<AnalyzedImage> images;
  std::vector<SkippedFile> skipped;
  size_t reused = 0;  // images whose analysis came from the journal
  double seconds = 0;
};

// Every regular file of `dir` (or of each sub-folder of `dir` when `by_folder`) in natural order
// ("img_2" before "img_10"). Hidden files are ignored.
std::vector<ImageEntry> list_images(const std::filesystem::path& dir, bool by_folder);

// Analyses every entry; files that are not images or do not decode are skipped and reported, never fatal.
// Images whose header declares more than `max_pixels` pixels are skipped the same way. With a journal, images it
// holds (unchanged since) are not analysed again and every new analysis is recorded in it as it finishes.
FolderAnalysis analyze_images(FaceAnalyzer& analyzer, const std::vector<ImageEntry>& entries, bool show_progress = true,
                              int64_t max_pixels = kMaxImagePixels, AnalysisJournal* journal = nullptr);

// detections.csv: prompt,path,gender,age,race with "--" for images without a face (the study's layout).
std::string study_csv(const FolderAnalysis& result);
// faces.csv: one row per face: prompt,path,face,principal,x0,y0,x1,y1,score,gender,age,race, then for every
// head <source>.<attribute> (its label), <source>.<attribute>.p.<label> (each probability) and
// <source>.age.years when the head estimates years.
std::string faces_csv(const FolderAnalysis& result);
std::string skipped_csv(const FolderAnalysis& result);

}  // namespace fairdiff
