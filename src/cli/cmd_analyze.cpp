// fairdiff analyze: finds every face in a folder of images (flat, or one folder per prompt with --by-folder),
// classifies perceived gender, race and age, and writes the study's CSV layout and a per-face CSV.
#include <algorithm>
#include <cstdio>

#include "cli/args.h"
#include "cli/cmd_face_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/json.h"
#include "core/shard.h"
#include "faces/folder_analysis.h"

namespace fairdiff::cli {
namespace {

// The model files a profile's flags name (absolute), for the journal's settings.
Json profile_files(const ProfileOptions& o) {
  Json files = Json::object();
  const std::pair<const char*, const std::filesystem::path*> paths[] = {
      {"human_models_dir", &o.human_models_dir},   {"heads", &o.heads},
      {"ssd_detector_dir", &o.ssd_detector_dir},   {"gender_prototxt", &o.gender_prototxt},
      {"gender_caffemodel", &o.gender_caffemodel}, {"age_prototxt", &o.age_prototxt},
      {"age_caffemodel", &o.age_caffemodel},       {"race_h5", &o.race_h5},
      {"fairface_weights", &o.fairface_weights}};
  for (const auto& [name, path] : paths) {
    if (!path->empty()) files[name] = std::filesystem::absolute(*path).lexically_normal().string();
  }
  if (!o.detector.empty()) files["detector"] = o.detector;
  return files;
}

// The journals of `analyze --shard K/N` runs in `out` (journal.K-of-N.jsonl), in name order.
std::vector<std::filesystem::path> sorted_shard_journals(const std::filesystem::path& out) {
  std::vector<std::filesystem::path> journals;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("journal.", 0) == 0 && name.find("-of-") != std::string::npos &&
        entry.path().extension() == ".jsonl")
      journals.push_back(entry.path());
  }
  std::sort(journals.begin(), journals.end());
  return journals;
}

int run_analyze(const std::vector<std::string>& argv) {
  std::filesystem::path images, out;
  bool by_folder = false;
  int64_t max_pixels = kMaxImagePixels;
  std::string profile = "default";
  std::string shard_flag;
  ProfileOptions profile_options;
  OptionTable table;
  table.value("images", "DIR", "folder of images, or of one folder per prompt with --by-folder", images)
      .flag("by-folder", "DIR holds one folder of images per prompt (the folder's name is the prompt)", by_folder)
      .value("out", "DIR",
             "output folder: detections.csv (prompt,path,gender,age,race), faces.csv, skipped.csv, and journal.jsonl "
             "(each finished image: a stopped run resumes, a rerun analyses only new or changed images)",
             out)
      .value("max-pixels", "N", "skip (with a reason in skipped.csv) images whose header declares more pixels",
             max_pixels, 1, 1LL << 40)
      .value("shard", "K/N",
             "analyse only shard K of N (counted from 0) of the folder's images, recording them in --out's\n"
             "journal.K-of-N.jsonl; a later run without --shard on the same --out takes in every shard's work and\n"
             "writes the outputs (default: from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX; docs/cluster.md)",
             shard_flag);
  bind_face_profile(table, profile, profile_options);
  Args args("analyze", "detect faces and classify perceived gender, race and age", table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (images.empty()) throw UsageError("analyze: --images is required");
  require_directory(images, "--images");
  if (out.empty()) throw UsageError("analyze: --out is required");
  table.with_flag_names([&] { validate_profile(profile, profile_options); });
  std::string shard_source;
  const Shard shard = resolve_shard(shard_flag, shard_source);
  std::vector<ImageEntry> entries = list_images(images, by_folder);
  if (entries.empty()) {
    throw InputError("--images " + images.string() + " holds no files" +
                     (by_folder ? " in its sub-folders (one folder per prompt expected)" : ""));
  }
  const size_t files = entries.size();
  if (shard.sharded()) {
    if (shard_source != "--shard")
      std::fprintf(stderr, "fairdiff analyze: shard %s of the folder (from %s)\n", shard.str().c_str(),
                   shard_source.c_str());
    std::vector<ImageEntry> owned;
    for (size_t i = 0; i < entries.size(); ++i)
      if (shard.owns(static_cast<int64_t>(i))) owned.push_back(entries[i]);
    entries = std::move(owned);
  }
  ensure_directory(out, "--out");

  auto analyzer = make_analyzer(profile, profile_options);
  // Everything the labels depend on: a journal made with other settings is started over.
  const Json identity{{"profile", analyzer->profile()},
                      {"detector", analyzer->detector_name()},
                      {"classifiers", analyzer->classifier_names()},
                      {"models", profile_files(profile_options)},
                      {"score_threshold", profile_options.score_threshold},
                      {"embedder_crop_scale", profile_options.embedder_crop_scale},
                      {"pad_fraction", profile_options.analyzer.pad_fraction},
                      {"pad_fill", profile_options.analyzer.pad_fill},
                      {"max_pixels", max_pixels}};
  const std::filesystem::path journal_file =
      out / (shard.sharded()
                 ? "journal." + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) + ".jsonl"
                 : std::string("journal.jsonl"));
  AnalysisJournal journal(journal_file, identity);
  if (journal.started_over()) {
    std::fprintf(stderr, "fairdiff analyze: %s was made with other settings; analysing every image again\n",
                 journal_file.string().c_str());
  }
  if (!shard.sharded()) {
    // The shards' work (analyze --shard K/N on this --out), taken in: only what no shard analysed is analysed.
    for (const auto& file : sorted_shard_journals(out)) {
      const int64_t taken = journal.absorb(file);
      if (taken < 0) {
        std::fprintf(stderr, "fairdiff analyze: %s was made with other settings; not used\n", file.string().c_str());
      } else if (taken > 0) {
        std::fprintf(stderr, "fairdiff analyze: took %lld analyses from %s\n", static_cast<long long>(taken),
                     file.filename().string().c_str());
      }
    }
  }
  FolderAnalysis result = analyze_images(*analyzer, entries, true, max_pixels, &journal);
  if (shard.sharded()) {
    std::printf(
        "shard %s: analyzed %zu of the folder's %zu files (%zu skipped; %zu kept from its journal) in %.1f s -> %s\n"
        "run `fairdiff analyze` without --shard on the same --out once every shard is done: it takes in their work "
        "and writes detections.csv for the whole folder\n",
        shard.str().c_str(), result.images.size(), files, result.skipped.size(), result.reused, result.seconds,
        journal_file.string().c_str());
    if (result.images.empty() && !result.skipped.empty()) {
      throw InputError("--images " + images.string() + ": none of shard " + shard.str() + "'s " +
                       std::to_string(result.skipped.size()) + " files could be analyzed");
    }
    return 0;
  }
  write_file_atomic(out / "detections.csv", study_csv(result));
  write_file_atomic(out / "faces.csv", faces_csv(result));
  write_file_atomic(out / "skipped.csv", skipped_csv(result));
  write_file_atomic(out / kAnalysisInfoFile, analysis_info(*analyzer, profile_options).dump(1) + "\n");
  long long with_face = 0, faces = 0;
  for (const auto& img : result.images) {
    with_face += img.analysis.principal >= 0;
    faces += static_cast<long long>(img.analysis.faces.size());
  }
  for (size_t i = 0; i < result.skipped.size() && i < 10; ++i) {
    std::fprintf(stderr, "fairdiff analyze: skipped %s: %s\n", result.skipped[i].path.c_str(),
                 result.skipped[i].reason.c_str());
  }
  if (result.skipped.size() > 10) {
    std::fprintf(stderr, "fairdiff analyze: ... and %zu more skipped files (see skipped.csv)\n",
                 result.skipped.size() - 10);
  }
  const size_t fresh = result.images.size() - result.reused;
  std::printf(
      "analyzed %zu images (%lld with a face, %lld faces, %zu skipped; %zu kept from journal.jsonl) in %.1f s "
      "(%.1f images/s) -> %s\n",
      result.images.size(), with_face, faces, result.skipped.size(), result.reused, result.seconds,
      result.seconds > 0 ? static_cast<double>(fresh) / result.seconds : 0.0, out.string().c_str());
  if (result.images.empty()) {
    // Nothing analysed is a failure a script must see (the outputs, skipped.csv with each reason, are kept).
    throw InputError("--images " + images.string() + ": none of its " + std::to_string(result.skipped.size()) +
                     " files could be analyzed (each is listed with its reason in " + (out / "skipped.csv").string() +
                     ")");
  }
  return 0;
}

}  // namespace

FAIRDIFF_SUBCOMMAND("analyze", "detect faces and classify perceived gender, race and age (study CSV + per-face CSV)",
                    run_analyze);

}  // namespace fairdiff::cli
