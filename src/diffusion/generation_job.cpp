#include "diffusion/generation_job.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "core/csv.h"
#include "core/device.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "core/strings.h"
#include "core/tensor_io.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff {
namespace {

// Whether `dir` (recursively) holds a PNG: a run folder whose earlier run failed before its first image holds
// none, and its run.json does not bind the next run to that run's settings.
bool holds_png(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return false;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != std::filesystem::end(it);
       it.increment(ec)) {
    if (it->path().extension() == ".png") return true;
  }
  return false;
}

// Where a run keeps image `index` of a prompt, relative to the run folder.
std::filesystem::path image_file(const std::string& prompt_id, int64_t index) {
  return std::filesystem::path("images") / prompt_id / (std::to_string(index) + ".png");
}

struct WorkItem {
  const PromptItem* prompt;
  int64_t index;
  uint64_t seed;
  std::filesystem::path file;  // relative to the run directory
};

const std::vector<std::string> kManifestColumns = {
    "prompt_id", "prompt", "index",  "seed",  "file", "negative_prompt", "scheduler", "steps",  "guidance", "width",
    "height",    "dtype",  "device", "model", "lora", "lora_scale",      "bytes",     "sha256", "group"};

struct FileDigest {
  uintmax_t bytes = 0;
  std::string sha256;
  std::string group;  // the manifest's `group`: what a mitigation steered the image toward
};

// What an earlier run's manifest recorded for each image (file -> size and SHA-256). A manifest cut short by a
// crash loses at most its last line; one from before the digests were recorded, or unreadable, records nothing
// (each kept image is then checked by decoding it).
std::map<std::string, FileDigest> recorded_digests(const std::filesystem::path& manifest) {
  std::map<std::string, FileDigest> digests;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(manifest, ec)) return digests;
  std::string text = read_file(manifest);
  if (!text.empty() && text.back() != '\n') {
    const size_t last_newline = text.rfind('\n');
    text.erase(last_newline == std::string::npos ? 0 : last_newline + 1);  // the torn last line
  }
  try {
    CsvTable table = parse_csv(text, manifest.string());
    const int file = table.column("file"), bytes = table.column("bytes"), sha = table.column("sha256");
    const int group = table.column("group");  // absent in manifests written before mitigations
    if (file < 0 || bytes < 0 || sha < 0) return digests;
    for (const auto& row : table.rows) {
      digests[row.fields[static_cast<size_t>(file)]] = {
          std::strtoull(row.fields[static_cast<size_t>(bytes)].c_str(), nullptr, 10),
          row.fields[static_cast<size_t>(sha)], group < 0 ? "" : row.fields[static_cast<size_t>(group)]};
    }
  } catch (const InputError&) {
    digests.clear();
  }
  return digests;
}

// Whether a kept image is the one generate wrote: its size and digest as the manifest recorded them, or, with no
// record, a PNG that decodes whole at the run's size. `why` says what is wrong otherwise.
bool kept_image_is_intact(const std::filesystem::path& path, const std::string& file,
                          const std::map<std::string, FileDigest>& recorded, int64_t width, int64_t height,
                          FileDigest& digest, std::string& why) {
  const std::string bytes = read_file(path);
  digest = {bytes.size(), sha256_hex(bytes), ""};
  auto it = recorded.find(file);
  if (it != recorded.end()) {
    if (it->second.bytes != digest.bytes) {
      why = std::to_string(digest.bytes) + " bytes, the manifest recorded " + std::to_string(it->second.bytes);
      return false;
    }
    if (it->second.sha256 != digest.sha256) {
      why = "its SHA-256 differs from the one the manifest recorded";
      return false;
    }
    return true;
  }
  try {
    Image image = decode_image(std::vector<uint8_t>(bytes.begin(), bytes.end()), path.string());
    if (image.width != width || image.height != height) {
      why = std::to_string(image.width) + "x" + std::to_string(image.height) + " pixels, the run makes " +
            std::to_string(width) + "x" + std::to_string(height);
      return false;
    }
  } catch (const std::exception& e) {
    why = e.what();
    return false;
  }
  return true;
}

}  // namespace

std::string prompt_id_for(const std::string& prompt) {
  std::string id;
  for (char c : to_lower(prompt)) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      id += c;
    } else if (!id.empty() && id.back() != '_') {
      id += '_';
    }
    if (id.size() >= 48) break;
  }
  while (!id.empty() && id.back() == '_') id.pop_back();
  return id.empty() ? "prompt" : id;
}

Json GenerationSettings::identity() const {
  Json prompts_json = Json::array();
  for (const auto& p : prompts) {
    Json item{{"prompt_id", p.prompt_id}, {"prompt", p.prompt}};
    if (p.images > 0) item["images"] = p.images;  // absent for the run's images_per_prompt (older runs resume)
    prompts_json.push_back(item);
  }
  Json identity{{"model", std::filesystem::absolute(model_dir).lexically_normal().string()},
                {"prompts", prompts_json},
                {"negative_prompt", negative_prompt},
                {"steps", steps},
                {"guidance", guidance_scale},
                {"scheduler", scheduler},
                {"seed", seed},
                {"width", width},
                {"height", height},
                {"dtype", dtype},
                {"lora", lora_file.empty() ? "" : std::filesystem::absolute(lora_file).lexically_normal().string()},
                {"lora_scale", lora_scale}};
  // Absent unless given, so runs made before single-file checkpoints (or mitigations) resume.
  if (!intervention.empty()) identity["mitigation"] = intervention.settings;
  if (!single_file.arch.empty()) identity["model_arch"] = single_file.arch;
  if (!single_file.config_dir.empty()) {
    identity["model_config"] = std::filesystem::absolute(single_file.config_dir).lexically_normal().string();
  }
  return identity;
}

GenerationSummary run_generation(const GenerationSettings& requested, const ModelHook& hook) {
  GenerationSettings s = requested;  // with device and dtype resolved: run.json and the manifest say what ran
  s.device = resolve_device_name(s.device);
  s.dtype = resolve_inference_dtype(s.dtype, s.device);
  // Everything that can be checked without loading the model, first.
  validate_model_directory(s.model_dir, s.single_file);
  if (s.prompts.empty()) throw UsageError("no prompts given");
  torch::Device device = parse_device(s.device);
  torch::Dtype dtype = parse_dtype(s.dtype);
  require_dtype_supported(device, dtype);
  make_scheduler(s.scheduler, SchedulerConfig());  // validates the name
  ensure_directory(s.out_dir, "output folder");

  const auto run_json = s.out_dir / "run.json";
  Json identity = s.identity();
  if (std::filesystem::exists(run_json)) {
    Json previous = read_json_file(run_json);
    Json previous_identity = previous.value("identity", Json());
    const std::string previous_shard = previous.value("shard", std::string());
    const std::string shard = s.shard.sharded() ? s.shard.str() : "";
    const bool has_images = holds_png(s.out_dir / "images");
    if (previous_shard != shard && has_images) {
      throw FieldInputError("out", s.out_dir.string() + " holds " +
                                       (previous_shard.empty() ? "the unsharded run" : "shard " + previous_shard) +
                                       ", not " + (shard.empty() ? "the unsharded run" : "shard " + shard) +
                                       "; its images are kept: give each shard its own output folder");
    }
    if (previous_identity != identity && has_images) {
      std::string differences;
      for (auto it = identity.begin(); it != identity.end(); ++it) {
        if (!previous_identity.contains(it.key()) || previous_identity[it.key()] != *it) {
          differences += (differences.empty() ? "" : ", ") + it.key();
        }
      }
      throw FieldInputError("out", s.out_dir.string() + " holds a run with different settings (" + differences +
                                       "); its images are kept: use another output folder, or the same settings "
                                       "to resume");
    }
  }
  Json run{{"identity", identity}, {"images_per_prompt", s.images_per_prompt}};
  if (s.shard.sharded()) run["shard"] = s.shard.str();
  write_json_file(run_json, run);

  // Kept images are checked before they count as done: a truncated, emptied or replaced file is made again.
  const auto manifest_path = s.out_dir / "manifest.csv";
  const std::map<std::string, FileDigest> recorded = recorded_digests(manifest_path);
  std::map<std::string, FileDigest> digests;  // of every finished image, for the manifest
  std::vector<WorkItem> todo;
  std::vector<std::string> damaged;
  int64_t total = 0, skipped = 0;
  auto images_of = [&](const PromptItem& p) { return p.images > 0 ? p.images : s.images_per_prompt; };
  // The images this shard owns (all of them unsharded), by their ordinal in the run's order.
  std::set<std::pair<std::string, int64_t>> owned;
  int64_t ordinal = 0;
  for (const auto& p : s.prompts) {
    for (int64_t i = 0; i < images_of(p); ++i) {
      if (!s.shard.owns(ordinal++)) continue;
      owned.emplace(p.prompt_id, i);
      WorkItem item{&p, i, s.seed + static_cast<uint64_t>(i), image_file(p.prompt_id, i)};
      ++total;
      if (!std::filesystem::exists(s.out_dir / item.file)) {
        todo.push_back(item);
        continue;
      }
      FileDigest digest;
      std::string why;
      if (kept_image_is_intact(s.out_dir / item.file, item.file.string(), recorded, s.width, s.height, digest, why)) {
        ++skipped;
        auto record = recorded.find(item.file.string());
        if (record != recorded.end()) digest.group = record->second.group;
        digests[item.file.string()] = digest;
      } else {
        damaged.push_back(item.file.string() + " (" + why + ")");
        todo.push_back(item);
      }
    }
  }
  for (size_t k = 0; k < damaged.size() && k < 5; ++k) {
    std::fprintf(stderr, "generate: kept image %s in %s is damaged; making it again\n", damaged[k].c_str(),
                 s.out_dir.string().c_str());
  }
  if (damaged.size() > 5) std::fprintf(stderr, "generate: ... and %zu more damaged images\n", damaged.size() - 5);
  GenerationSummary summary;
  summary.skipped = skipped;
  summary.damaged = static_cast<int64_t>(damaged.size());
  if (todo.empty()) {
    std::fprintf(stderr, "generate: all %lld images already exist in %s\n", static_cast<long long>(total),
                 s.out_dir.string().c_str());
  }

  // The manifest lists exactly the finished images: rewritten whole (in prompt order) at the start and the end,
  // appended to after each batch, so a long run costs no more than its images (a crash leaves at worst a
  // partial last line, and the next run rewrites it from what is on disk).
  std::set<std::pair<std::string, int64_t>> finished = owned;
  for (const auto& item : todo) finished.erase({item.prompt->prompt_id, item.index});
  char guidance[32];
  std::snprintf(guidance, sizeof(guidance), "%g", s.guidance_scale);
  char lora_scale[32];
  std::snprintf(lora_scale, sizeof(lora_scale), "%g", s.lora_scale);
  auto manifest_row = [&](const PromptItem& p, int64_t i) {
    const auto file = image_file(p.prompt_id, i);
    const FileDigest& digest = digests.at(file.string());
    return csv_line({p.prompt_id, p.prompt, std::to_string(i), std::to_string(s.seed + static_cast<uint64_t>(i)),
                     file.string(), s.negative_prompt, s.scheduler, std::to_string(s.steps), guidance,
                     std::to_string(s.width), std::to_string(s.height), s.dtype, s.device,
                     identity["model"].get<std::string>(), identity["lora"].get<std::string>(), lora_scale,
                     std::to_string(digest.bytes), digest.sha256, digest.group});
  };
  auto write_manifest = [&]() {
    std::string text = csv_line(kManifestColumns);
    for (const auto& p : s.prompts) {
      for (int64_t i = 0; i < images_of(p); ++i) {
        if (finished.count({p.prompt_id, i})) text += manifest_row(p, i);
      }
    }
    write_file_atomic(manifest_path, text);
  };
  write_manifest();
  if (todo.empty()) return summary;

  PipelineLoadOptions load_options;
  load_options.single_file = s.single_file;
  load_options.channels_last = channels_last_pays(device, s.batch_size);
  StableDiffusionModel model = load_stable_diffusion(s.model_dir, device, dtype, load_options);
  if (hook) hook(model);
  if (s.intervention.prepare) s.intervention.prepare(model);
  StableDiffusionPipeline pipeline(model);
  Progress progress("generate", total, skipped, "img");
  try {
    for (size_t start = 0; start < todo.size(); start += static_cast<size_t>(s.batch_size)) {
      check_interrupt();
      size_t end = std::min(todo.size(), start + static_cast<size_t>(s.batch_size));
      GenerationRequest request;
      request.negative_prompt = s.negative_prompt;
      request.steps = s.steps;
      request.guidance_scale = s.guidance_scale;
      request.scheduler = s.scheduler;
      request.width = s.width;
      request.height = s.height;
      std::vector<ImageSlot> slots;
      for (size_t k = start; k < end; ++k) {
        request.prompts.push_back(todo[k].prompt->prompt);
        request.seeds.push_back(todo[k].seed);
        slots.push_back({todo[k].prompt->prompt_id, todo[k].prompt->prompt, todo[k].index, todo[k].seed});
      }
      std::vector<std::string> batch_groups(slots.size());
      if (s.intervention.apply) batch_groups = s.intervention.apply(request, slots);
      // Ctrl-C between denoising steps abandons only the batch in flight.
      torch::Tensor images = pipeline.generate(request, [](size_t, const torch::Tensor&) { check_interrupt(); });
      std::string rows;
      for (size_t k = start; k < end; ++k) {
        auto path = s.out_dir / todo[k].file;
        ensure_directory(path.parent_path(), "image folder");
        const std::vector<uint8_t> png = encode_png(image_from_unit_tensor(images[static_cast<int64_t>(k - start)]));
        const std::string bytes(png.begin(), png.end());
        write_file_atomic(path, bytes);
        digests[todo[k].file.string()] = {bytes.size(), sha256_hex(bytes), batch_groups[k - start]};
        ++summary.generated;
        finished.emplace(todo[k].prompt->prompt_id, todo[k].index);
        rows += manifest_row(*todo[k].prompt, todo[k].index);
      }
      {
        std::ofstream manifest(manifest_path, std::ios::app | std::ios::binary);
        manifest << rows;
        manifest.flush();
        // The images are written; the manifest is rebuilt from them at the next start.
        if (!manifest) throw InputError("failed while appending to " + manifest_path.string() + " (is the disk full?)");
      }
      progress.advance(static_cast<long long>(end - start), todo[end - 1].prompt->prompt_id);
    }
  } catch (...) {
    try {
      write_manifest();
    } catch (const std::exception&) {
      // The first error is the one to report (e.g. a full disk fails this write too); the next start rebuilds
      // the manifest from the images on disk.
    }
    throw;
  }
  write_manifest();
  progress.finish();
  summary.seconds = progress.elapsed_seconds();
  return summary;
}

int64_t merge_generation_shards(const std::vector<std::filesystem::path>& shard_dirs,
                                const std::filesystem::path& out_dir) {
  namespace fs = std::filesystem;
  if (shard_dirs.empty()) throw UsageError("merge: give the shards' run folders");
  // Every check first; nothing is written until all pass.
  struct ShardRun {
    fs::path dir;
    Shard shard;
    std::map<std::string, std::vector<std::string>> rows;  // file -> manifest fields
  };
  std::vector<ShardRun> runs;
  Json identity;
  int64_t images_per_prompt = 0;
  std::vector<std::string> header;
  int bytes_column = -1, sha_column = -1;
  for (const fs::path& dir : shard_dirs) {
    const fs::path run_json = dir / "run.json";
    if (!fs::is_regular_file(run_json))
      throw InputError(dir.string() + " is not a generation run folder (no run.json)");
    const Json run = read_json_file(run_json);
    if (!run.contains("shard")) {
      throw InputError(dir.string() +
                       " holds an unsharded run (its run.json names no shard); merge joins the "
                       "folders of `generate --shard K/N`");
    }
    ShardRun shard_run{dir, parse_shard(run["shard"].get<std::string>(), run_json.string() + " shard"), {}};
    if (runs.empty()) {
      identity = run.value("identity", Json());
      images_per_prompt = run.value("images_per_prompt", int64_t{0});
    } else {
      const ShardRun& first = runs.front();
      if (run.value("identity", Json()) != identity || run.value("images_per_prompt", int64_t{0}) != images_per_prompt)
        throw InputError(dir.string() + " holds a run with other settings than " + first.dir.string() +
                         " (run.json's identity differs): shards of one run must share every setting");
      if (shard_run.shard.count != first.shard.count)
        throw InputError(dir.string() + " is shard " + shard_run.shard.str() + ", " + first.dir.string() +
                         " is shard " + first.shard.str() + ": every shard must split the run the same way");
      for (const ShardRun& other : runs) {
        if (other.shard.index == shard_run.shard.index)
          throw InputError(dir.string() + " and " + other.dir.string() + " are both shard " + shard_run.shard.str());
      }
    }
    const CsvTable manifest = read_csv(dir / "manifest.csv");
    if (header.empty()) {
      header = manifest.header;
      bytes_column = manifest.column("bytes");
      sha_column = manifest.column("sha256");
    }
    if (manifest.header != header)
      throw InputError((dir / "manifest.csv").string() + " has other columns than the first shard's manifest");
    const int file = manifest.require_column("file");
    for (const auto& row : manifest.rows) shard_run.rows[row.fields[static_cast<size_t>(file)]] = row.fields;
    runs.push_back(std::move(shard_run));
  }
  const int64_t count = runs.front().shard.count;
  if (static_cast<int64_t>(runs.size()) != count) {
    std::string missing;
    for (int64_t k = 0; k < count; ++k) {
      bool present = false;
      for (const ShardRun& r : runs) present = present || r.shard.index == k;
      if (!present) missing += (missing.empty() ? "" : ", ") + std::to_string(k) + "/" + std::to_string(count);
    }
    throw InputError("merge: the run has " + std::to_string(count) + " shards and " + std::to_string(runs.size()) +
                     " were given; missing: " + missing);
  }
  std::map<int64_t, const ShardRun*> by_index;
  for (const ShardRun& r : runs) by_index[r.shard.index] = &r;

  // The images in the unsharded run's order, each from the shard that owns it, checked against its manifest row.
  if (bytes_column < 0 || sha_column < 0)
    throw InputError((runs.front().dir / "manifest.csv").string() + " has no bytes and sha256 columns");
  struct Entry {
    const ShardRun* run;
    std::string file;
    const std::vector<std::string>* row;
  };
  std::vector<Entry> entries;
  std::map<int64_t, int64_t> unfinished;  // shard index -> images it lacks
  int64_t ordinal = 0;
  for (const Json& p : identity.at("prompts")) {
    const std::string prompt_id = p.at("prompt_id").get<std::string>();
    const int64_t images = p.value("images", images_per_prompt);
    for (int64_t i = 0; i < images; ++i, ++ordinal) {
      const ShardRun* owner = by_index.at(ordinal % count);
      const std::string file = image_file(prompt_id, i).string();
      auto row = owner->rows.find(file);
      if (row == owner->rows.end()) {
        ++unfinished[owner->shard.index];
        continue;
      }
      entries.push_back({owner, file, &row->second});
    }
  }
  if (!unfinished.empty()) {
    std::string which;
    for (const auto& [index, missing] : unfinished) {
      const ShardRun* run = by_index.at(index);
      which += (which.empty() ? "" : "; ") + run->dir.string() + " (shard " + run->shard.str() + ") lacks " +
               std::to_string(missing) + " of its images";
    }
    throw InputError("merge: unfinished shards: " + which + " (run its generate again: it resumes)");
  }
  for (const Entry& e : entries) {
    const std::string bytes = read_file(e.run->dir / e.file);
    if (std::to_string(bytes.size()) != (*e.row)[static_cast<size_t>(bytes_column)] ||
        sha256_hex(bytes) != (*e.row)[static_cast<size_t>(sha_column)]) {
      throw InputError("merge: " + (e.run->dir / e.file).string() +
                       " differs from its manifest's record (damaged or replaced; run that shard's generate again)");
    }
  }
  std::error_code ec;
  if (!is_new_or_empty_directory(out_dir))
    throw InputError("merge: --out " + out_dir.string() + " exists and is not empty (expected a new folder)");

  // Written into a staging folder beside the output and renamed into place at the end.
  const fs::path staging = out_dir.string() + ".merging";
  fs::remove_all(staging);
  try {
    std::string manifest = csv_line(header);
    for (const Entry& e : entries) {
      const fs::path target = staging / e.file;
      ensure_directory(target.parent_path(), "merged image folder");
      fs::create_hard_link(e.run->dir / e.file, target, ec);
      if (ec) fs::copy_file(e.run->dir / e.file, target);
      manifest += csv_line(*e.row);
    }
    write_file_atomic(staging / "manifest.csv", manifest);
    write_json_file(staging / "run.json", Json{{"identity", identity}, {"images_per_prompt", images_per_prompt}});
    if (fs::exists(out_dir)) fs::remove(out_dir);  // the empty folder
    fs::rename(staging, out_dir);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  return static_cast<int64_t>(entries.size());
}

}  // namespace fairdiff
