#include "study/study_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "audit/audit_result.h"
#include "audit/detections.h"
#include "audit/planner.h"
#include "core/csv.h"
#include "core/device.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/prompts.h"
#include "core/sha256.h"
#include "core/strings.h"
#include "core/tensor_io.h"
#include "diffusion/schedulers/scheduler.h"
#include "diffusion/stable_diffusion.h"
#include "faces/analysis_json.h"
#include "faces/folder_analysis.h"
#include "faces/profiles.h"
#include "mitigate/methods.h"
#include "mitigate/uce.h"
#include "report/headline.h"
#include "report/html_report.h"
#include "study/study_report.h"
#include "train/dreambooth_trainer.h"
#include "train/finetune_config.h"
#include "train/lora.h"
#include "train/model_output.h"

namespace fairdiff::study {
namespace fs = std::filesystem;
namespace {

// Seeds of the three kinds of generated images, apart so that no training image shares its noise with an image
// the audits generate (image i of an audit uses generation.seed + i).
constexpr uint64_t kAugmentSeedOffset = 1000000;
constexpr uint64_t kClassSeedOffset = 2000000;

const char* kBaseRun = "base";
const char* kAugmentRun = "augment";
const char* kClassRun = "class";

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string image_file_name(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof(name), "%05lld.png", static_cast<long long>(index));
  return name;
}

std::string run_dir_name(const std::string& run) {
  return "runs/" + run;
}

std::string generate_stage_name(const std::string& run) {
  return "generate:" + run;
}
std::string analyze_stage_name(const std::string& run) {
  return "analyze:" + run;
}

struct WorkItem {
  const StudyPrompt* prompt;
  int64_t index;
};

}  // namespace

StudyRunner::StudyRunner(StudyConfig config, fs::path study_dir)
    : config_(std::move(config)), dir_(std::move(study_dir)), store_(dir_) {
  // read_prompts_csv has checked that every id is folder-safe (images/<prompt_id>/ is a folder).
  const PromptSet prompts = read_prompts_csv(config_.prompts);
  for (int i = 0; i < prompts.size(); ++i)
    prompts_.emplace_back(prompts.ids[static_cast<size_t>(i)], prompts.texts[static_cast<size_t>(i)]);
}

std::string StudyRunner::device() const {
  return resolve_device_name(config_.device);
}

std::string StudyRunner::generation_dtype() const {
  return resolve_inference_dtype(config_.generation.dtype, device());
}

std::string StudyRunner::mixed_precision() const {
  return resolve_mixed_precision(config_.mitigation.mixed_precision, device());
}

std::vector<StudyPrompt> StudyRunner::base_prompts(int64_t images_per_prompt) const {
  std::vector<StudyPrompt> prompts;
  for (const auto& [id, text] : prompts_) prompts.push_back({id, text, images_per_prompt, id, text});
  return prompts;
}

std::vector<StudyPrompt> StudyRunner::class_prompts() const {
  const auto& m = config_.mitigation;
  const int64_t n = *std::max_element(m.num_class_images.begin(), m.num_class_images.end());
  if (m.class_prompts == "generic") return {{"generic", m.generic_class_prompt, n, "generic", m.generic_class_prompt}};
  return base_prompts(n);
}

namespace {

// write_file_atomic's temporaries ("<name>.tmp<pid>") left by a killed process: half-written, never results.
void remove_stale_temporaries(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    // Shards may be running: their folders are theirs to clean.
    if (it.depth() == 0 && it->path().filename() == "shards") it.disable_recursion_pending();
    if (!it->is_regular_file(ec)) continue;
    const std::string ext = it->path().extension().string();
    if (ext.size() > 4 && ext.compare(0, 4, ".tmp") == 0 && ext.find_first_not_of("0123456789", 4) == std::string::npos)
      stale.push_back(it->path());
  }
  for (const auto& file : stale) fs::remove(file, ec);
}

}  // namespace

void StudyRunner::check_inputs() {
  // Everything that can fail without loading a model, before any work.
  validate_model_directory(config_.model_dir());
  parse_device(device());
  require_dtype_supported(parse_device(device()), parse_dtype(generation_dtype()));
  make_scheduler(config_.generation.scheduler, SchedulerConfig());
  ProfileOptions options;
  validate_profile(config_.analysis.profile, options);
  if (!config_.report.confusion.empty()) require_file(config_.report.confusion, "report.confusion");
  report_confusion_ = config_.report.confusion;
  if (config_.report.correct && report_confusion_.empty())
    report_confusion_ = profile_confusion_file(config_.analysis.profile, options);
  remove_stale_temporaries(dir_);
  // The study's own record of what it was asked to do, for `fairdiff status`.
  Statement(store_.db(), "INSERT OR REPLACE INTO meta(key, value) VALUES('config', ?1)")
      .bind(1, read_file(config_.file))
      .run();
  Statement(store_.db(), "INSERT OR REPLACE INTO meta(key, value) VALUES('config_path', ?1)")
      .bind(1, fs::absolute(config_.file).string())
      .run();
}

void StudyRunner::generate_stage(const std::string& run, const std::vector<StudyPrompt>& prompts,
                                 const fs::path& model_dir, const fs::path& lora_file, uint64_t seed_base,
                                 const Intervention& intervention) {
  const std::string stage = generate_stage_name(run);
  const GenerationConfig& g = config_.generation;
  Json prompt_list = Json::array();
  int64_t total = 0;
  for (const auto& p : prompts) {
    prompt_list.push_back({p.prompt_id, p.prompt, p.n_images});
    total += p.n_images;
  }
  // The base model by its name in the config, a fine-tuned one by its folder inside the study (which may move).
  const std::string model_name =
      model_dir == config_.model_dir() ? config_.model : fs::relative(model_dir, dir_).generic_string();
  const Json settings{
      {"model", model_name},        {"lora", lora_file.empty() ? "" : fs::relative(lora_file, dir_).generic_string()},
      {"prompts", prompt_list},     {"seed", seed_base},
      {"steps", g.steps},           {"guidance", g.guidance},
      {"scheduler", g.scheduler},   {"negative_prompt", g.negative_prompt},
      {"width", g.width},           {"height", g.height},
      {"batch_size", g.batch_size}, {"device", parse_device(device()).is_cuda() ? "cuda" : "cpu"},
      {"dtype", generation_dtype()}};
  Json stage_settings = settings;
  if (!intervention.empty()) stage_settings["mitigation"] = intervention.settings;
  const size_t batch = static_cast<size_t>(g.batch_size);
  // A shard owns the fixed batches b with b % N == K (the batching is the unsharded run's).
  const auto owned = [&](size_t begin) { return shard_.owns(static_cast<int64_t>(begin / batch)); };
  if (shard_.sharded()) {
    int64_t mine = 0;
    for (size_t begin = 0; begin < static_cast<size_t>(total); begin += batch)
      if (owned(begin)) mine += static_cast<int64_t>(std::min(static_cast<size_t>(total), begin + batch) - begin);
    total = mine;
  }
  store_.begin_stage(stage, stage_settings, total);
  if (store_.stage_done(stage)) return;
  Json info{{"model", settings["model"]}, {"lora", settings["lora"]}, {"generation", settings}};
  if (!intervention.empty()) info["mitigation"] = intervention.settings;
  store_.put_run(run, info);
  store_.put_prompts(run, prompts);

  std::vector<WorkItem> items;
  for (const auto& p : prompts)
    for (int64_t i = 0; i < p.n_images; ++i) items.push_back({&p, i});
  absorb_shards(run);
  const auto done = store_.image_keys(run);
  const auto started = std::chrono::steady_clock::now();
  std::optional<StableDiffusionModel> model;
  std::optional<StableDiffusionPipeline> pipeline;
  Progress progress(stage, total, static_cast<long long>(done.size()), "img");
  // Fixed batches (items [kB, (k+1)B) of the run's order): a resumed run batches exactly as an uninterrupted one.
  for (size_t begin = 0; begin < items.size(); begin += batch) {
    if (!owned(begin)) continue;
    const size_t end = std::min(items.size(), begin + batch);
    bool all_done = true;
    for (size_t k = begin; k < end; ++k)
      all_done = all_done && done.count({items[k].prompt->prompt_id, items[k].index});
    if (all_done) continue;
    check_interrupt();
    if (!model) {
      PipelineLoadOptions load;
      load.channels_last = channels_last_pays(parse_device(device()), g.batch_size);  // as `generate` does
      model = load_stable_diffusion(model_dir, parse_device(device()), parse_dtype(generation_dtype()), load);
      if (!lora_file.empty()) train::apply_lora(*model, lora_file, 1.0);
      if (intervention.prepare) intervention.prepare(*model);
      pipeline.emplace(*model);
    }
    GenerationRequest request;
    request.negative_prompt = g.negative_prompt;
    request.steps = g.steps;
    request.guidance_scale = g.guidance;
    request.scheduler = g.scheduler;
    request.width = g.width;
    request.height = g.height;
    std::vector<ImageSlot> slots;
    for (size_t k = begin; k < end; ++k) {
      request.prompts.push_back(items[k].prompt->prompt);
      request.seeds.push_back(seed_base + static_cast<uint64_t>(items[k].index));
      slots.push_back({items[k].prompt->prompt_id, items[k].prompt->prompt, items[k].index, request.seeds.back()});
    }
    if (intervention.apply) intervention.apply(request, slots);
    torch::Tensor images = pipeline->generate(request, [](size_t, const torch::Tensor&) { check_interrupt(); });
    std::vector<ImageRow> rows;
    for (size_t k = begin; k < end; ++k) {
      const std::string file =
          run_dir_name(run) + "/images/" + items[k].prompt->prompt_id + "/" + image_file_name(items[k].index);
      const std::vector<uint8_t> png = encode_png(image_from_unit_tensor(images[static_cast<int64_t>(k - begin)]));
      const std::string bytes(png.begin(), png.end());
      ensure_directory((dir_ / file).parent_path(), "image folder");
      write_file_atomic(dir_ / file, bytes);
      rows.push_back({run, items[k].prompt->prompt_id, items[k].index,
                      seed_base + static_cast<uint64_t>(items[k].index), file, sha256_hex(bytes)});
    }
    store_.add_images(rows);  // one transaction: the batch is recorded whole or not at all
    progress.advance(static_cast<long long>(end - begin), items[end - 1].prompt->prompt_id);
  }
  progress.finish();
  store_.finish_stage(stage, Json{{"images", total}}, seconds_since(started));
}

Json StudyRunner::analyze_settings(const std::string& run) {
  return Json{{"profile", config_.analysis.profile},
              {"batch_size", config_.analysis.batch_size},
              {"images", store_.stage(generate_stage_name(run))->settings_hash}};
}

fs::path StudyRunner::shard_folder(const fs::path& study_dir, const Shard& shard) {
  return study_dir / "shards" / (std::to_string(shard.index) + "-of-" + std::to_string(shard.count));
}

void StudyRunner::absorb_shards(const std::string& run) {
  const fs::path root = dir_ / "shards";
  std::error_code ec;
  if (shard_.sharded() || !fs::is_directory(root, ec)) return;
  const std::string generate = generate_stage_name(run), analyze = analyze_stage_name(run);
  const StageRecord ours = *store_.stage(generate);
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (fs::is_regular_file(RunStore::file_in(entry.path()), ec)) folders.push_back(entry.path());
  std::sort(folders.begin(), folders.end());
  int64_t images = 0, analyses = 0;
  for (const fs::path& folder : folders) {
    RunStore shard(folder);
    const auto theirs = shard.stage(generate);
    if (!theirs) continue;
    if (theirs->settings_hash != ours.settings_hash) {
      throw InputError("shard folder " + folder.string() + " holds images of '" + run + "' made with other settings (" +
                       differing_keys(theirs->settings, ours.settings) +
                       "); run it again with this study's config, or move it out of " + root.string());
    }
    const auto present = store_.image_keys(run);
    std::vector<ImageRow> rows;
    for (const ImageRow& row : shard.images(run)) {
      if (present.count({row.prompt_id, row.index})) continue;
      // The shard's file at the same place in this folder: a hard link where the file system allows.
      const fs::path from = folder / row.file, to = dir_ / row.file;
      ensure_directory(to.parent_path(), "image folder");
      fs::remove(to, ec);
      fs::create_hard_link(from, to, ec);
      if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
      rows.push_back(row);
    }
    store_.add_images(rows);
    images += static_cast<int64_t>(rows.size());
    // Its analyses, when made with the analysis settings this folder uses.
    const auto their_analysis = shard.stage(analyze);
    if (their_analysis && their_analysis->settings == analyze_settings(run)) {
      const auto analyzed = store_.analysis_keys(run);
      std::vector<AnalysisRow> found;
      for (AnalysisRow& row : shard.analyses(run))
        if (!analyzed.count({row.prompt_id, row.index})) found.push_back(std::move(row));
      store_.add_analyses(found);
      analyses += static_cast<int64_t>(found.size());
      if (!found.empty() && !store_.run_info(run).contains("face_profile")) {
        Json info = store_.run_info(run);
        info["face_profile"] = shard.run_info(run).value("face_profile", Json());
        store_.put_run(run, info);
      }
    }
  }
  if (images + analyses > 0)
    std::fprintf(stderr, "%s: took %lld images and %lld analyses from the shard folders in %s\n", generate.c_str(),
                 static_cast<long long>(images), static_cast<long long>(analyses), root.string().c_str());
}

void StudyRunner::analyze_stage(const std::string& run) {
  const std::string stage = analyze_stage_name(run);
  const auto images = store_.images(run);
  const Json settings = analyze_settings(run);
  store_.begin_stage(stage, settings, static_cast<int64_t>(images.size()));
  if (store_.stage_done(stage)) return;
  const auto done = store_.analysis_keys(run);
  const auto started = std::chrono::steady_clock::now();
  std::unique_ptr<FaceAnalyzer> analyzer;
  Progress progress(stage, static_cast<long long>(images.size()), static_cast<long long>(done.size()), "img");
  const size_t batch = static_cast<size_t>(config_.analysis.batch_size);
  for (size_t begin = 0; begin < images.size(); begin += batch) {
    const size_t end = std::min(images.size(), begin + batch);
    std::vector<AnalysisRow> rows;
    for (size_t k = begin; k < end; ++k) {
      const ImageRow& image = images[k];
      if (done.count({image.prompt_id, image.index})) continue;
      check_interrupt();
      if (!analyzer) {
        ProfileOptions options;
        validate_profile(config_.analysis.profile, options);
        analyzer = make_analyzer(config_.analysis.profile, options);
        Json info = store_.run_info(run);
        info["face_profile"] = {{"profile", analyzer->profile()},
                                {"detector", analyzer->detector_name()},
                                {"classifiers", analyzer->classifier_names()}};
        store_.put_run(run, info);
      }
      const fs::path file = dir_ / image.file;
      std::error_code ec;
      if (!fs::is_regular_file(file, ec)) {
        throw InputError("image " + file.string() + " of run '" + run +
                         "' is recorded in the run store but missing; restore it, or start the study in a new folder");
      }
      const std::string bytes = read_file(file);
      if (sha256_hex(bytes) != image.sha256) {
        throw InputError("image " + file.string() +
                         " changed after it was generated (its SHA-256 differs from "
                         "the run store's); restore it, or start the study in a new folder");
      }
      const ImageAnalysis analysis =
          analyzer->analyze(decode_image(std::vector<uint8_t>(bytes.begin(), bytes.end()), file.string()));
      const StudyLabels labels = study_labels(analysis);
      rows.push_back({run, image.prompt_id, image.index, static_cast<int64_t>(analysis.faces.size()), labels.gender,
                      labels.age, labels.race, analysis_to_json(analysis)});
    }
    if (rows.empty()) continue;
    store_.add_analyses(rows);
    progress.advance(static_cast<long long>(rows.size()), rows.back().prompt_id);
  }
  progress.finish();
  export_run(run);
  store_.finish_stage(stage, Json{{"images", images.size()}}, seconds_since(started));
}

void StudyRunner::export_run(const std::string& run) {
  FolderAnalysis folder;
  const std::string prefix = run_dir_name(run) + "/";
  for (const AnalysisRow& row : store_.analyses(run)) {
    AnalyzedImage image;
    image.entry.prompt = row.prompt_id;
    image.entry.path = "images/" + row.prompt_id + "/" + image_file_name(row.index);
    image.entry.file = dir_ / prefix / image.entry.path;
    image.analysis = analysis_from_json(row.analysis, store_.db().path().string() + " (" + run + "/" + row.prompt_id +
                                                          "/" + std::to_string(row.index) + ")");
    folder.images.push_back(std::move(image));
  }
  ensure_directory(dir_ / prefix, "run folder");
  write_file_atomic(dir_ / prefix / "detections.csv", study_csv(folder));
  write_file_atomic(dir_ / prefix / "faces.csv", faces_csv(folder));
}

void StudyRunner::audit_run(const std::string& run, const fs::path& model_dir, const fs::path& lora_file,
                            int64_t images_per_prompt, const Intervention& intervention) {
  generate_stage(run, base_prompts(images_per_prompt), model_dir, lora_file, config_.generation.seed, intervention);
  analyze_stage(run);
  // The exports are rebuilt from the store when missing (a crash between the last batch and the export).
  std::error_code ec;
  if (!fs::is_regular_file(dir_ / run_dir_name(run) / "detections.csv", ec)) export_run(run);
}

void StudyRunner::plan_stage() {
  const std::string stage = "plan";
  const PlanConfig& p = config_.plan;
  const Json settings{{"rule", p.rule},
                      {"images_per_group", p.images_per_group},
                      {"threshold", p.threshold},
                      {"detections", store_.stage(analyze_stage_name(kBaseRun))->settings_hash}};
  store_.begin_stage(stage, settings, 1);
  if (store_.stage_done(stage)) return;
  const auto started = std::chrono::steady_clock::now();
  const PromptSet prompts = read_prompts_csv(config_.prompts);
  audit::DetectionOptions options;
  const fs::path detections = dir_ / run_dir_name(kBaseRun) / "detections.csv";
  const audit::Run base = audit::read_detections(detections, kBaseRun, prompts, options);
  audit::PlanSettings plan_settings;
  plan_settings.rule = p.rule == "study" ? audit::PlanRule::study : audit::PlanRule::target;
  plan_settings.images_per_group = static_cast<int>(p.images_per_group);
  plan_settings.share_threshold = p.threshold;
  const audit::Plan plan =
      audit::make_plan(prompts, base, options.taxonomy, audit::Target(options.taxonomy, prompts.size()), plan_settings);
  for (const auto& note : plan.notes) std::fprintf(stderr, "plan: %s\n", note.c_str());
  const std::string csv = audit::plan_csv(plan);
  write_file_atomic(dir_ / "plan.csv", csv);
  std::vector<std::map<std::string, std::string>> rows;
  for (const auto& row : plan.rows) {
    rows.push_back({{"prompt_id", row.prompt_id},
                    {"prompt", row.prompt},
                    {"gender", row.gender},
                    {"race", row.race},
                    {"share", audit::format_share(row.share)},
                    {"n_images", std::to_string(row.n_images)},
                    {"augmented_prompt", row.augmented_prompt}});
  }
  Transaction t(store_.db());
  store_.put_plan(rows, csv);
  store_.finish_stage(stage, Json{{"groups", rows.size()}, {"notes", plan.notes}}, seconds_since(started));
  t.commit();
}

void StudyRunner::augment_stage() {
  const bool checked = config_.mitigation.augment_check == "group";
  std::vector<StudyPrompt> prompts;
  std::map<std::string, std::string> base_text(prompts_.begin(), prompts_.end());
  for (const auto& row : store_.plan()) {
    StudyPrompt p;
    p.prompt_id = plan_group_id(row.at("prompt_id"), row.at("gender"), row.at("race"));
    p.prompt = row.at("augmented_prompt");
    p.n_images = std::stoll(row.at("n_images")) * (checked ? config_.mitigation.augment_oversample : 1);
    p.base_prompt_id = row.at("prompt_id");
    p.caption = config_.mitigation.instance_captions == "rewritten" ? p.prompt : base_text.at(p.base_prompt_id);
    prompts.push_back(p);
  }
  if (prompts.empty()) return;
  generate_stage(kAugmentRun, prompts, config_.model_dir(), {}, config_.mitigation.seed + kAugmentSeedOffset);
  if (checked) analyze_stage(kAugmentRun);
  // The fine-tuning input: every augmentation image with its caption (paths relative to this CSV's folder); with
  // the group check, per group the first images (by index) read as its gender and race, as many as the plan wants.
  std::map<std::string, std::string> captions;
  for (const auto& p : store_.prompts(kAugmentRun)) captions[p.prompt_id] = p.caption;
  std::set<std::pair<std::string, int64_t>> kept;
  if (checked) {
    std::map<std::string, std::pair<std::string, std::string>> group;  // prompt_id -> (gender, race)
    std::map<std::string, int64_t> wanted, found;
    for (const auto& row : store_.plan()) {
      const std::string id = plan_group_id(row.at("prompt_id"), row.at("gender"), row.at("race"));
      group[id] = {to_lower(row.at("gender")), to_lower(row.at("race"))};
      wanted[id] = std::stoll(row.at("n_images"));
    }
    auto analyses = store_.analyses(kAugmentRun);
    std::sort(analyses.begin(), analyses.end(), [](const AnalysisRow& a, const AnalysisRow& b) {
      return std::tie(a.prompt_id, a.index) < std::tie(b.prompt_id, b.index);
    });
    for (const auto& row : analyses) {
      const auto& g = group.at(row.prompt_id);
      if (to_lower(row.gender) != g.first || to_lower(row.race) != g.second) continue;
      if (found[row.prompt_id] >= wanted[row.prompt_id]) continue;
      ++found[row.prompt_id];
      kept.insert({row.prompt_id, row.index});
    }
    int64_t total_wanted = 0, short_groups = 0;
    for (const auto& [id, n] : wanted) {
      total_wanted += n;
      if (found[id] < n) ++short_groups;
    }
    std::fprintf(stderr,
                 "augment: %zu of %zu candidates read as their planned group are kept (%lld wanted; %lld group(s) "
                 "short of their count)\n",
                 kept.size(), analyses.size(), static_cast<long long>(total_wanted),
                 static_cast<long long>(short_groups));
    if (kept.empty()) {
      throw InputError("augment: none of the " + std::to_string(analyses.size()) +
                       " augmentation images was read as its planned gender and race, so there is nothing to "
                       "fine-tune on; raise mitigation.augment_oversample or set mitigation.augment_check = \"none\"");
    }
  }
  std::string csv = csv_line({"file", "caption"});
  for (const auto& image : store_.images(kAugmentRun)) {
    if (checked && !kept.count({image.prompt_id, image.index})) continue;
    csv += csv_line({"../" + image.file, captions.at(image.prompt_id)});
  }
  ensure_directory(dir_ / "augment", "augment folder");
  write_file_atomic(dir_ / "augment" / "instance.csv", csv);
}

void StudyRunner::class_images_stage() {
  if (!config_.mitigation.prior_preservation) return;
  generate_stage(kClassRun, class_prompts(), config_.model_dir(), {}, config_.mitigation.seed + kClassSeedOffset);
}

void StudyRunner::finetune_stage(const GridCell& cell) {
  const MitigationConfig& m = config_.mitigation;
  const std::string stage = "finetune:" + cell.name();
  const fs::path out = dir_ / "models" / cell.name();
  train::FinetuneConfig fc;
  fc.model_dir = config_.model_dir();
  fc.instance_data = dir_ / "augment" / "instance.csv";
  fc.out = out;
  fc.with_prior_preservation = m.prior_preservation;
  if (m.prior_preservation) {
    for (const auto& p : class_prompts())
      fc.class_concepts.push_back({p.prompt, dir_ / run_dir_name(kClassRun) / "images" / p.prompt_id});
    fc.num_class_images = cell.num_class_images;
  }
  fc.prior_loss_weight = m.prior_loss_weight;
  fc.lr.name = cell.lr_scheduler;
  fc.lr.base_lr = m.learning_rate;
  fc.lr.total_steps = cell.max_train_steps;
  fc.max_train_steps = cell.max_train_steps;
  fc.train_batch_size = m.train_batch_size;
  fc.resolution = m.resolution;
  fc.mixed_precision = mixed_precision();
  fc.train_text_encoder = m.train_text_encoder;
  fc.seed = m.seed;
  fc.checkpointing_steps = m.checkpointing_steps;
  fc.checkpoints_total_limit = 1;
  fc.use_lora = cell.method == "lora";
  fc.lora.rank = m.lora_rank;
  fc.lora.alpha = m.lora_alpha;
  fc.device = device();
  Json settings = fc.fingerprint();
  // Paths inside the study folder are recorded relative to it (the folder may move).
  settings["instance_data"] = "augment/instance.csv";
  settings["out"] = "models/" + cell.name();
  settings["model"] = config_.model;
  if (settings.contains("class_concepts")) {
    for (auto& c : settings["class_concepts"])
      c["class_data"] = fs::relative(c["class_data"].get<std::string>(), dir_).string();
  }
  settings["augment"] = store_.stage(generate_stage_name(kAugmentRun))->settings_hash;
  if (m.augment_check != "none") settings["augment_check"] = {m.augment_check, m.augment_oversample};
  store_.begin_stage(stage, settings, cell.max_train_steps);
  if (store_.stage_done(stage)) return;
  const auto started = std::chrono::steady_clock::now();
  std::error_code ec;
  const bool finished_before = fs::is_regular_file(out / "finetune_settings.json", ec);
  if (finished_before) {
    fs::remove_all(fc.work_dir(), ec);  // killed after publishing the output, before removing its work folder
  } else {
    fc.resume = fs::exists(fc.work_dir(), ec);
    if (fs::exists(out, ec) && fs::is_empty(out, ec)) fs::remove(out, ec);
    ensure_directory(out.parent_path(), "study models folder");
    train::run_finetune(fc);
  }
  ModelRow row;
  row.cell = cell.name();
  row.path = "models/" + cell.name();
  // The model's settings as finetune wrote them, with the study's relative paths and without the facts of
  // an interruption (whether and from where it resumed): the store is the same however often it was killed.
  row.settings = read_json_file(out / "finetune_settings.json");
  for (auto it = settings.begin(); it != settings.end(); ++it) row.settings[it.key()] = it.value();
  row.settings.erase("resume");
  if (row.settings.contains("result")) row.settings["result"].erase("resumed_from_step");
  row.loss_curve_csv = read_file(out / "loss_curve.csv");
  row.final_loss = row.settings.contains("result") ? row.settings["result"].value("final_loss", 0.0) : 0.0;
  row.seconds = seconds_since(started);
  Transaction t(store_.db());
  store_.put_model(row);
  store_.finish_stage(stage, Json{{"steps", cell.max_train_steps}}, row.seconds);
  t.commit();
}

void StudyRunner::edit_stage(const GridCell& cell) {
  const MitigationConfig& m = config_.mitigation;
  const std::string stage = "edit:" + cell.name();
  const fs::path out = dir_ / "models" / cell.name();
  const audit::Attribute attribute = audit::parse_attribute(m.uce_attribute, "mitigation.uce_attribute");
  // Each occupation is moved toward the groups its base audit under-represents: one step of the reference's rule,
  // weight_j = uce_step (uniform share - measured share_j) over the images whose attribute was read.
  const PromptSet prompts = read_prompts_csv(config_.prompts);
  audit::DetectionOptions detection_options;
  const audit::Taxonomy& taxonomy = detection_options.taxonomy;
  const audit::Run base =
      audit::read_detections(dir_ / run_dir_name(kBaseRun) / "detections.csv", kBaseRun, prompts, detection_options);
  mitigate::uce::UceOptions options;
  options.preserve_scale = m.uce_preserve_scale;
  Json measured = Json::object();
  for (int p = 0; p < prompts.size(); ++p) {
    const std::string& text = prompts.templates[static_cast<size_t>(p)].empty()
                                  ? prompts.texts[static_cast<size_t>(p)]
                                  : prompts.templates[static_cast<size_t>(p)];
    mitigate::uce::DebiasConcept concept = mitigate::uce::concept_with_groups(text, attribute, taxonomy);
    const size_t groups = concept.attribute_prompts.size();
    std::vector<double> shares(groups, 0.0);
    double determined = 0;
    for (const audit::ImageRecord* image : base.images_of(p)) {
      int k = -1;
      if (attribute == audit::Attribute::gender) k = image->gender;
      if (attribute == audit::Attribute::race) k = image->race;
      if (attribute == audit::Attribute::gender_race && image->gender >= 0 && image->race >= 0)
        k = taxonomy.gender_race_index(image->gender, image->race);
      if (k < 0) continue;
      shares[static_cast<size_t>(k)] += 1;
      determined += 1;
    }
    if (determined > 0) {
      for (double& share : shares) share /= determined;
      concept.weights = mitigate::uce::weights_from_shares(shares, {}, m.uce_step);
      measured[prompts.ids[static_cast<size_t>(p)]] = shares;
    } else {
      // No face read in its images: nothing measured to move it from, so the symmetric push toward every group
      // (UceOptions::equal_weight), said in the model's settings.
      measured[prompts.ids[static_cast<size_t>(p)]] = nullptr;
    }
    options.concepts.push_back(concept);
  }
  const Json settings{{"method", "uce"},
                      {"model", config_.model},
                      {"attribute", m.uce_attribute},
                      {"preserve_scale", m.uce_preserve_scale},
                      {"step", m.uce_step},
                      {"lambda", options.lambda},
                      {"edit_scale", options.edit_scale},
                      {"with_to_k", options.with_to_k},
                      {"detections", store_.stage(analyze_stage_name(kBaseRun))->settings_hash}};
  store_.begin_stage(stage, settings, 1);
  if (store_.stage_done(stage)) return;
  const auto started = std::chrono::steady_clock::now();
  std::error_code ec;
  // A model published by a run killed before it was recorded is remade: the settings may differ.
  fs::remove_all(out, ec);
  ensure_directory(out.parent_path(), "study models folder");
  const mitigate::uce::UceEdit edit = mitigate::uce::write_edited_model(config_.model_dir(), out, options);
  ModelRow row;
  row.cell = cell.name();
  row.path = "models/" + cell.name();
  row.settings = settings;
  row.settings["measured_shares"] = measured;
  row.settings["concept_weights"] = edit.concept_weights;
  row.seconds = seconds_since(started);
  Transaction t(store_.db());
  store_.put_model(row);
  store_.finish_stage(stage, Json{{"concepts", options.concepts.size()}}, row.seconds);
  t.commit();
}

Intervention StudyRunner::intervention(const GridCell& cell) const {
  const MitigationConfig& m = config_.mitigation;
  mitigate::MethodSettings settings;
  // The study's target is uniform over the taxonomy's gender x race groups (as the planner's).
  settings.targets.all = mitigate::GroupDistribution::uniform(settings.taxonomy);
  settings.seed = m.seed;
  settings.steps = config_.generation.steps;
  for (const auto& prompt : prompts_) settings.prompts.push_back(prompt.second);
  settings.projection_lambda = m.projection_lambda;
  settings.projection_attribute = m.projection_attribute;
  settings.fair_diffusion_attribute = m.fair_diffusion_attribute;
  settings.fair_diffusion_guidance_scale = m.fair_diffusion_guidance_scale;
  settings.fair_diffusion_warmup_steps = m.fair_diffusion_warmup_steps;
  settings.fair_diffusion_threshold = m.fair_diffusion_threshold;
  settings.fair_diffusion_momentum_scale = m.fair_diffusion_momentum_scale;
  settings.fair_diffusion_momentum_beta = m.fair_diffusion_momentum_beta;
  return mitigate::generation_method(cell.method, settings);
}

StudySummary StudyRunner::report_stage(const std::string& stage, const std::vector<std::string>& runs) {
  const fs::path out_dir = stage == "report:study" ? dir_ / "report" : dir_ / run_dir_name(runs.front()) / "report";
  Json inputs = Json::array();
  for (const auto& run : runs) inputs.push_back({run, store_.stage(analyze_stage_name(run))->settings_hash});
  const Json settings{{"runs", inputs},
                      {"bootstrap", config_.report.bootstrap},
                      {"bootstrap_seed", config_.report.bootstrap_seed},
                      {"confusion", report_confusion_.string()},
                      {"paired_images", config_.report.paired_images}};
  store_.begin_stage(stage, settings, 1);
  StudySummary summary;
  summary.report_html = out_dir / "report.html";
  const auto started = std::chrono::steady_clock::now();
  const bool done = store_.stage_done(stage);
  if (!done) {
    StudyReportInputs inputs;
    inputs.study_dir = dir_;
    inputs.runs = runs;
    inputs.prompts = config_.prompts;
    inputs.bootstrap = static_cast<int>(config_.report.bootstrap);
    inputs.bootstrap_seed = config_.report.bootstrap_seed;
    inputs.confusion = report_confusion_;
    inputs.paired_images = static_cast<int>(config_.report.paired_images);
    inputs.command_line = stage == "report:study" ? "fairdiff mitigate" : "fairdiff audit";
    const StudyReportResult result = write_study_report(store_, inputs, out_dir);
    Transaction t(store_.db());
    for (const auto& m : result.metrics) store_.put_metric(m.run, m.key, m.value, m.low, m.high);
    store_.finish_stage(stage, Json::object(), seconds_since(started));
    t.commit();
  }
  const auto metrics = store_.metrics();
  for (const auto& run : runs) {
    std::string line = run + ": " + std::to_string(store_.images(run).size()) + " images";
    auto it = metrics.find(run);
    if (it != metrics.end()) {
      auto bias = it->second.find("shen_gender_race_normalized");
      if (bias != it->second.end())
        line += ", avg normalized Shen bias (gender x race) " + format_interval(bias->second);
      auto change = it->second.find("change_shen_gender_race_normalized");
      if (change != it->second.end()) line += ", change " + format_interval(change->second);
    }
    summary.lines.push_back(line);
  }
  return summary;
}

std::vector<PlannedStage> StudyRunner::planned_stages(bool mitigate) {
  std::vector<PlannedStage> stages;
  auto add = [&](const std::string& name, const std::string& description, int64_t work, const std::string& unit) {
    PlannedStage s{name, description, work, unit, false, 0};
    if (auto record = store_.stage(name)) {
      s.done = record->status == "done";
      s.seconds = record->seconds;
      if (work < 0) s.work = record->work_total;
    }
    stages.push_back(s);
  };
  const int64_t n_prompts = static_cast<int64_t>(prompts_.size());
  const int64_t base_images = n_prompts * config_.generation.images_per_prompt;
  add(generate_stage_name(kBaseRun), "generate the base model's images", base_images, "images");
  add(analyze_stage_name(kBaseRun), "detect faces, classify gender / race / age", base_images, "images");
  if (!mitigate) {
    add("report:base", "distributions, bias metrics, report.html", 1, "report");
    return stages;
  }
  add("plan", "find under-represented gender x race groups", 1, "plan");
  const int64_t eval_images = n_prompts * config_.evaluation.images_per_prompt;
  if (!config_.mitigation.has_training()) {
    for (const auto& cell : config_.mitigation.grid()) {
      if (cell.method == "uce") add("edit:" + cell.name(), "closed-form cross-attention edit (UCE)", 1, "model");
      add(generate_stage_name(cell.name()), "generate with " + cell.method, eval_images, "images");
      add(analyze_stage_name(cell.name()), "detect and classify", eval_images, "images");
    }
    add("report:study", "compare every method with the base: report.html", 1, "report");
    return stages;
  }
  int64_t augment = -1;
  if (store_.stage_done("plan")) {
    augment = 0;
    for (const auto& row : store_.plan()) augment += std::stoll(row.at("n_images"));
    if (config_.mitigation.augment_check == "group") augment *= config_.mitigation.augment_oversample;
  }
  add(generate_stage_name(kAugmentRun), "generate the groups with rewritten prompts", augment, "images");
  if (config_.mitigation.augment_check == "group")
    add(analyze_stage_name(kAugmentRun), "read the groups' faces; keep those of the planned group", augment, "images");
  if (config_.mitigation.prior_preservation) {
    const auto classes = class_prompts();
    add(generate_stage_name(kClassRun), "generate prior-preservation class images",
        static_cast<int64_t>(classes.size()) * classes.front().n_images, "images");
  }
  for (const auto& cell : config_.mitigation.grid()) {
    if (cell.trains()) {
      add("finetune:" + cell.name(), "fine-tune (" + cell.method + ")", cell.max_train_steps, "steps");
    } else if (cell.method == "uce") {
      add("edit:" + cell.name(), "closed-form cross-attention edit (UCE)", 1, "model");
    }
    add(generate_stage_name(cell.name()),
        cell.trains() ? "generate with the fine-tuned model" : "generate with " + cell.method, eval_images, "images");
    add(analyze_stage_name(cell.name()), "detect and classify", eval_images, "images");
  }
  add("report:study", "compare every model with the base: report.html", 1, "report");
  return stages;
}

StudySummary StudyRunner::run_shard() {
  check_inputs();
  audit_run(kBaseRun, config_.model_dir(), {}, config_.generation.images_per_prompt);
  StudySummary summary;
  summary.lines.push_back("shard " + shard_.str() + ": " + std::to_string(store_.images(kBaseRun).size()) +
                          " images generated and analyzed in " + dir_.string() +
                          "; when every shard is done, run the same command without a shard on the study folder");
  return summary;
}

StudySummary StudyRunner::run_audit() {
  check_inputs();
  audit_run(kBaseRun, config_.model_dir(), {}, config_.generation.images_per_prompt);
  return report_stage("report:base", {kBaseRun});
}

StudySummary StudyRunner::run_mitigate() {
  check_inputs();
  audit_run(kBaseRun, config_.model_dir(), {}, config_.generation.images_per_prompt);
  report_stage("report:base", {kBaseRun});
  plan_stage();
  const bool train = config_.mitigation.has_training() && !store_.plan().empty();
  if (config_.mitigation.has_training() && store_.plan().empty()) {
    std::fprintf(stderr,
                 "mitigate: the plan found no under-represented group, so there is nothing to fine-tune on; the "
                 "fine-tuning cells are left out of the report\n");
  }
  if (train) {
    augment_stage();
    class_images_stage();
  }
  std::vector<std::string> runs = {kBaseRun};
  const int64_t n = config_.evaluation.images_per_prompt;
  for (const auto& cell : config_.mitigation.grid()) {
    const fs::path out = dir_ / "models" / cell.name();
    if (cell.trains()) {
      if (!train) continue;
      finetune_stage(cell);
      if (cell.method == "lora") {
        audit_run(cell.name(), config_.model_dir(), out / train::kLoraWeightsName, n);
      } else {
        audit_run(cell.name(), out, {}, n);
      }
    } else if (cell.method == "uce") {
      edit_stage(cell);
      audit_run(cell.name(), out, {}, n);
    } else {
      audit_run(cell.name(), config_.model_dir(), {}, n, intervention(cell));
    }
    runs.push_back(cell.name());
  }
  return report_stage("report:study", runs);
}

std::string study_status(const fs::path& study_dir) {
  std::error_code ec;
  if (!fs::is_regular_file(RunStore::file_in(study_dir), ec)) {
    throw InputError("no study in " + study_dir.string() + " (expected " + RunStore::file_in(study_dir).string() +
                     "; start one with fairdiff audit or mitigate --config FILE)");
  }
  RunStore store(study_dir);
  std::string config_text, config_path;
  {
    Statement s(store.db(), "SELECT key, value FROM meta WHERE key IN ('config', 'config_path')");
    while (s.step()) (s.text(0) == "config" ? config_text : config_path) = s.text(1);
  }
  const bool mitigate = store.stage("plan").has_value() || store.stage("report:study").has_value();
  std::string text = "study " + fs::absolute(study_dir).lexically_normal().string() + "\n";
  if (config_text.empty()) return text + "no configuration recorded yet\n";
  StudyRunner runner(parse_study_config(config_text, config_path), study_dir);
  const auto stages = runner.planned_stages(mitigate);
  // Seconds per unit of each kind of stage, from the finished ones.
  std::map<std::string, std::pair<double, int64_t>> speed;
  for (const auto& s : stages) {
    if (!s.done || s.work <= 0) continue;
    const std::string kind = s.name.substr(0, s.name.find(':'));
    speed[kind].first += s.seconds;
    speed[kind].second += s.work;
  }
  double left = 0;
  bool unknown = false;
  int done_count = 0;
  char line[256];
  for (const auto& s : stages) {
    const std::string kind = s.name.substr(0, s.name.find(':'));
    int64_t finished = 0;
    if (s.done) {
      finished = s.work;
      ++done_count;
    } else if (kind == "generate") {
      finished = static_cast<int64_t>(store.image_keys(s.name.substr(9)).size());
    } else if (kind == "analyze") {
      finished = static_cast<int64_t>(store.analysis_keys(s.name.substr(8)).size());
    }
    std::string state = s.done ? "done" : (finished > 0 ? "partly done" : "to do");
    std::string amount = s.work < 0 ? "? " + s.unit + " (after the plan)"
                                    : std::to_string(finished) + "/" + std::to_string(s.work) + " " + s.unit;
    std::string time = s.done ? format_duration(s.seconds) : "";
    if (!s.done) {
      auto it = speed.find(kind);
      if (s.work >= 0 && it != speed.end() && it->second.second > 0) {
        left += it->second.first / static_cast<double>(it->second.second) * static_cast<double>(s.work - finished);
      } else if (kind != "report" && kind != "plan") {
        unknown = true;
      }
    }
    std::snprintf(line, sizeof(line), "  %-44s %-12s %-30s %s\n", s.name.c_str(), state.c_str(), amount.c_str(),
                  time.c_str());
    text += line;
  }
  text += std::to_string(done_count) + " of " + std::to_string(stages.size()) + " stages done";
  if (done_count < static_cast<int>(stages.size())) {
    text += "; time left: about " + format_duration(left);
    if (unknown) text += " plus stages of a kind not yet timed";
  }
  return text + "\n";
}

}  // namespace fairdiff::study
