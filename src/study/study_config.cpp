#include "study/study_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/assets.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/hub_cache.h"

namespace fairdiff::study {
namespace fs = std::filesystem;
namespace {

// Reads one TOML table, remembering which keys were asked for, so the keys nobody asked for (typos, keys of
// another section) are reported with their line.
class Section {
 public:
  Section(const toml::table* table, std::string name, std::string source)
      : table_(table), name_(std::move(name)), source_(std::move(source)) {}

  std::string where(const std::string& key) const {
    const toml::node* node = table_ ? table_->get(key) : nullptr;
    std::string text = source_;
    if (node && node->source().begin.line > 0) text += ":" + std::to_string(node->source().begin.line);
    return text + ": " + qualified(key);
  }
  std::string qualified(const std::string& key) const { return name_.empty() ? key : name_ + "." + key; }

  const toml::node* find(const std::string& key) {
    known_.insert(key);
    return table_ ? table_->get(key) : nullptr;
  }

  void read(const std::string& key, std::string& out) {
    if (const toml::node* node = find(key)) {
      if (!node->is_string()) throw InputError(where(key) + " must be a string (in quotes)");
      out = node->as_string()->get();
    }
  }
  void read(const std::string& key, bool& out) {
    if (const toml::node* node = find(key)) {
      if (!node->is_boolean()) throw InputError(where(key) + " must be true or false");
      out = node->as_boolean()->get();
    }
  }
  void read(const std::string& key, int64_t& out, int64_t min, int64_t max) {
    if (const toml::node* node = find(key)) {
      if (!node->is_integer()) throw InputError(where(key) + " must be a whole number");
      out = check_range(key, node->as_integer()->get(), min, max);
    }
  }
  void read(const std::string& key, uint64_t& out, int64_t max) {
    int64_t value = static_cast<int64_t>(out);
    read(key, value, 0, max);
    out = static_cast<uint64_t>(value);
  }
  void read(const std::string& key, double& out, double min, double max) {
    if (const toml::node* node = find(key)) {
      double value = 0;
      if (node->is_floating_point()) {
        value = node->as_floating_point()->get();
      } else if (node->is_integer()) {
        value = static_cast<double>(node->as_integer()->get());
      } else {
        throw InputError(where(key) + " must be a number");
      }
      if (!(value >= min && value <= max)) {
        std::ostringstream text;
        text << where(key) << " = " << value << " is out of range (expected " << min << " to " << max << ")";
        throw InputError(text.str());
      }
      out = value;
    }
  }
  void read_choice(const std::string& key, std::string& out, const std::vector<std::string>& choices) {
    read(key, out);
    check_choice(key, out, choices);
  }
  void check_choice(const std::string& key, const std::string& value, const std::vector<std::string>& choices) const {
    if (std::find(choices.begin(), choices.end(), value) != choices.end()) return;
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    throw InputError(where(key) + " = \"" + value + "\" is not one of: " + list);
  }
  // A list of strings (a single string is a list of one), each one of `choices`.
  void read_list(const std::string& key, std::vector<std::string>& out, const std::vector<std::string>& choices) {
    const toml::node* node = find(key);
    if (!node) return;
    std::vector<std::string> values;
    if (node->is_string()) {
      values.push_back(node->as_string()->get());
    } else if (const toml::array* array = node->as_array()) {
      for (const toml::node& element : *array) {
        if (!element.is_string()) throw InputError(where(key) + " must be a list of strings");
        values.push_back(element.as_string()->get());
      }
    } else {
      throw InputError(where(key) + " must be a list of strings, e.g. [\"" + choices.front() + "\"]");
    }
    if (values.empty()) throw InputError(where(key) + " is empty (expected at least one value)");
    for (const auto& value : values) check_choice(key, value, choices);
    check_unique(key, values);
    out = values;
  }
  void read_list(const std::string& key, std::vector<int64_t>& out, int64_t min, int64_t max) {
    const toml::node* node = find(key);
    if (!node) return;
    std::vector<int64_t> values;
    if (node->is_integer()) {
      values.push_back(check_range(key, node->as_integer()->get(), min, max));
    } else if (const toml::array* array = node->as_array()) {
      for (const toml::node& element : *array) {
        if (!element.is_integer()) throw InputError(where(key) + " must be a list of whole numbers");
        values.push_back(check_range(key, element.as_integer()->get(), min, max));
      }
    } else {
      throw InputError(where(key) + " must be a list of whole numbers, e.g. [20, 300]");
    }
    if (values.empty()) throw InputError(where(key) + " is empty (expected at least one value)");
    check_unique(key, values);
    out = values;
  }

  // ConfigError for every key of the table nobody asked for.
  void reject_unknown() const {
    if (!table_) return;
    for (const auto& [key, node] : *table_) {
      const std::string name(key.str());
      if (known_.count(name)) continue;
      std::string known;
      for (const auto& k : known_) known += (known.empty() ? "" : ", ") + k;
      std::string line = node.source().begin.line > 0 ? ":" + std::to_string(node.source().begin.line) : "";
      throw InputError(source_ + line + ": unknown key '" + qualified(name) + "'" +
                       (name_.empty() ? " (expected one of the sections or keys: " : " (expected one of: ") + known +
                       ")");
    }
  }

 private:
  int64_t check_range(const std::string& key, int64_t value, int64_t min, int64_t max) const {
    if (value < min || value > max) {
      throw InputError(where(key) + " = " + std::to_string(value) + " is out of range (expected " +
                       std::to_string(min) + " to " + std::to_string(max) + ")");
    }
    return value;
  }
  template <typename T>
  void check_unique(const std::string& key, const std::vector<T>& values) const {
    std::set<T> seen(values.begin(), values.end());
    if (seen.size() != values.size()) throw InputError(where(key) + " lists a value twice");
  }

  const toml::table* table_;
  std::string name_;
  std::string source_;
  std::set<std::string> known_;
};

const toml::table* subtable(Section& top, const toml::table& root, const std::string& key, const std::string& source) {
  const toml::node* node = top.find(key);
  if (!node) return nullptr;
  if (!node->is_table()) throw InputError(top.where(key) + " must be a section ([" + key + "])");
  return node->as_table();
}

fs::path resolve_path(const std::string& value, const fs::path& base) {
  if (value.empty()) return {};
  fs::path path(value);
  return path.is_absolute() ? path : (base / path).lexically_normal();
}

const int64_t kMaxCount = 10000000;

}  // namespace

const std::vector<std::string>& mitigation_methods() {
  static const std::vector<std::string> names = {"dreambooth", "lora",           "balanced_prompting",
                                                 "projection", "fair_diffusion", "uce"};
  return names;
}

std::string GridCell::name() const {
  if (!trains()) return method;
  std::string schedule = lr_scheduler;
  std::replace(schedule.begin(), schedule.end(), '_', '-');
  return method + "-" + schedule + "-c" + std::to_string(num_class_images) + "-s" + std::to_string(max_train_steps);
}

std::vector<GridCell> MitigationConfig::grid() const {
  std::vector<GridCell> cells;
  for (const auto& method : methods) {
    if (method != "dreambooth" && method != "lora") continue;
    for (const auto& schedule : lr_schedulers)
      for (int64_t classes : prior_preservation ? num_class_images : std::vector<int64_t>{0})
        for (int64_t steps : max_train_steps) cells.push_back({method, schedule, classes, steps});
  }
  for (const auto& method : methods) {
    if (method != "dreambooth" && method != "lora") cells.push_back({method, "", 0, 0});
  }
  return cells;
}

bool MitigationConfig::has_training() const {
  for (const auto& method : methods)
    if (method == "dreambooth" || method == "lora") return true;
  return false;
}

fs::path StudyConfig::model_dir() const {
  if (model == "builtin") {
    fs::path dir = builtin_model_dir();
    if (dir.empty()) {
      throw InputError(file.string() +
                       ": model = \"builtin\" but the built-in model (models/builtin/model_index.json in the "
                       "fairdiff source tree) was not found; run fairdiff from its source tree (or restore "
                       "models/builtin from git), or give the folder of a Stable Diffusion model in the diffusers "
                       "layout");
    }
    return dir;
  }
  // A folder or file beside the config, else a Hub id in the Hugging Face cache (core/hub_cache.h).
  return resolve_model_path(model, file.parent_path());
}

fs::path builtin_model_dir() {
  const fs::path dir = find_asset_dir("models/builtin", "model_index.json");
  std::error_code ec;
  if (fs::is_regular_file(dir / "model_index.json", ec)) return dir;
  return {};
}

StudyConfig parse_study_config(const std::string& text, const fs::path& source) {
  toml::table root;
  try {
    root = toml::parse(text, source.string());
  } catch (const toml::parse_error& e) {
    throw InputError(source.string() + ":" + std::to_string(e.source().begin.line) +
                     ": not valid TOML: " + std::string(e.description()));
  }
  const std::string src = source.string();
  const fs::path base = source.parent_path();
  StudyConfig c;
  c.file = source;
  Section top(&root, "", src);
  std::string prompts;
  top.read("name", c.name);
  top.read("model", c.model);
  top.read("device", c.device);
  {
    // auto, cpu, cuda or cuda:N (whether that device exists is checked when a stage needs it).
    const bool indexed = c.device.rfind("cuda:", 0) == 0 && c.device.size() > 5 &&
                         c.device.find_first_not_of("0123456789", 5) == std::string::npos;
    if (!indexed) top.check_choice("device", c.device, {"auto", "cpu", "cuda", "cuda:N"});
  }
  top.read("prompts", prompts);
  if (prompts.empty()) throw InputError(src + ": 'prompts' is required (a prompt_id,prompt CSV file)");
  c.prompts = resolve_path(prompts, base);
  if (c.model.empty()) throw InputError(src + ": 'model' is empty (a diffusers model folder, or \"builtin\")");

  Section generation(subtable(top, root, "generation", src), "generation", src);
  GenerationConfig& g = c.generation;
  generation.read("images_per_prompt", g.images_per_prompt, 1, kMaxCount);
  generation.read("seed", g.seed, int64_t{1} << 53);
  generation.read("steps", g.steps, 1, 1000);
  generation.read("guidance", g.guidance, 0.0, 100.0);
  generation.read_choice("scheduler", g.scheduler, {"pndm", "ddim", "euler", "dpmpp2m"});
  generation.read("negative_prompt", g.negative_prompt);
  generation.read("width", g.width, 0, 4096);
  generation.read("height", g.height, 0, 4096);
  generation.read("batch_size", g.batch_size, 1, 1024);
  generation.read_choice("dtype", g.dtype, {"auto", "fp32", "fp16", "bf16"});
  for (const char* key : {"width", "height"}) {
    const int64_t side = std::string(key) == "width" ? g.width : g.height;
    if (side % 8 != 0)
      throw InputError(generation.where(key) + " = " + std::to_string(side) + " must be a multiple of 8");
  }

  Section analysis(subtable(top, root, "analysis", src), "analysis", src);
  analysis.read("profile", c.analysis.profile);
  analysis.read("batch_size", c.analysis.batch_size, 1, 4096);

  Section plan(subtable(top, root, "plan", src), "plan", src);
  plan.read_choice("rule", c.plan.rule, {"study", "target"});
  plan.read("images_per_group", c.plan.images_per_group, 1, 100000);
  plan.read("threshold", c.plan.threshold, 0.0, 1.0);

  Section mitigation(subtable(top, root, "mitigation", src), "mitigation", src);
  MitigationConfig& m = c.mitigation;
  mitigation.read_list("methods", m.methods, mitigation_methods());
  mitigation.read_list("lr_scheduler", m.lr_schedulers,
                       {"constant", "linear", "polynomial", "cosine", "constant_with_warmup"});
  mitigation.read_list("num_class_images", m.num_class_images, 1, kMaxCount);
  mitigation.read_list("max_train_steps", m.max_train_steps, 1, kMaxCount);
  mitigation.read("learning_rate", m.learning_rate, 1e-12, 1.0);
  mitigation.read_choice("instance_captions", m.instance_captions, {"rewritten", "base"});
  mitigation.read_choice("augment_check", m.augment_check, {"none", "group"});
  mitigation.read("augment_oversample", m.augment_oversample, 1, 100);
  mitigation.read_choice("class_prompts", m.class_prompts, {"per_prompt", "generic"});
  mitigation.read("generic_class_prompt", m.generic_class_prompt);
  mitigation.read("prior_preservation", m.prior_preservation);
  mitigation.read("prior_loss_weight", m.prior_loss_weight, 0.0, 1000.0);
  mitigation.read("train_batch_size", m.train_batch_size, 1, 4096);
  mitigation.read("class_batch_size", m.class_batch_size, 1, 1024);
  mitigation.read_choice("mixed_precision", m.mixed_precision, {"auto", "no", "fp16", "bf16"});
  mitigation.read("resolution", m.resolution, 0, 4096);
  mitigation.read("seed", m.seed, int64_t{1} << 53);
  mitigation.read("checkpointing_steps", m.checkpointing_steps, 0, kMaxCount);
  mitigation.read("lora_rank", m.lora_rank, 1, 1024);
  mitigation.read("lora_alpha", m.lora_alpha, 1e-6, 1e6);
  mitigation.read("train_text_encoder", m.train_text_encoder);
  const std::vector<std::string> attributes = {"gender", "race", "gender_race"};
  mitigation.read("projection_lambda", m.projection_lambda, 0.0, 1e9);
  mitigation.read_choice("projection_attribute", m.projection_attribute, attributes);
  mitigation.read_choice("fair_diffusion_attribute", m.fair_diffusion_attribute, attributes);
  mitigation.read("fair_diffusion_guidance_scale", m.fair_diffusion_guidance_scale, 0.0, 100.0);
  mitigation.read("fair_diffusion_warmup_steps", m.fair_diffusion_warmup_steps, 0, 1000);
  mitigation.read("fair_diffusion_threshold", m.fair_diffusion_threshold, 0.0, 0.9999);
  mitigation.read("fair_diffusion_momentum_scale", m.fair_diffusion_momentum_scale, 0.0, 100.0);
  mitigation.read("fair_diffusion_momentum_beta", m.fair_diffusion_momentum_beta, 0.0, 0.9999);
  mitigation.read("uce_preserve_scale", m.uce_preserve_scale, 0.0, 1e6);
  mitigation.read_choice("uce_attribute", m.uce_attribute, attributes);
  mitigation.read("uce_step", m.uce_step, 0.0, 100.0);
  {
    std::set<std::string> seen;
    for (const auto& method : m.methods) {
      if (!seen.insert(method).second)
        throw InputError(mitigation.where("methods") + " lists \"" + method + "\" twice");
    }
  }
  const bool steers = std::find(m.methods.begin(), m.methods.end(), "fair_diffusion") != m.methods.end();
  if (steers && m.fair_diffusion_warmup_steps >= c.generation.steps)
    throw InputError(mitigation.where("fair_diffusion_warmup_steps") + " = " +
                     std::to_string(m.fair_diffusion_warmup_steps) + " is not below [generation] steps = " +
                     std::to_string(c.generation.steps) + " (the edits would never be applied)");
  if (m.class_prompts == "generic" && m.generic_class_prompt.empty())
    throw InputError(mitigation.where("generic_class_prompt") + " is empty");
  if (m.prior_preservation) {
    for (int64_t n : m.num_class_images) {
      if (n < m.train_batch_size)
        throw InputError(mitigation.where("num_class_images") + ": " + std::to_string(n) +
                         " is smaller than train_batch_size " + std::to_string(m.train_batch_size) +
                         " (each batch pairs instance and class images)");
    }
  }

  Section evaluation(subtable(top, root, "evaluation", src), "evaluation", src);
  evaluation.read("images_per_prompt", c.evaluation.images_per_prompt, 1, kMaxCount);

  Section report(subtable(top, root, "report", src), "report", src);
  std::string confusion;
  report.read("bootstrap", c.report.bootstrap, 0, 100000);
  report.read("bootstrap_seed", c.report.bootstrap_seed, int64_t{1} << 62);
  report.read("confusion", confusion);
  report.read("paired_images", c.report.paired_images, 0, 64);
  if (confusion == "none") {
    c.report.correct = false;
  } else if (!confusion.empty() && confusion != "auto") {
    c.report.confusion = resolve_path(confusion, base);
  }

  for (const Section* section : {&top, &generation, &analysis, &plan, &mitigation, &evaluation, &report})
    section->reject_unknown();
  return c;
}

StudyConfig read_study_config(const fs::path& path) {
  require_file(path, "study config");
  return parse_study_config(read_file(path), path);
}

std::string seed_study_toml(const std::string& model, const std::string& prompts_file) {
  std::string text =
      R"(# A fairdiff study: audit a text-to-image model for gender x race bias, plan the under-represented groups,
# generate images of them, fine-tune the model on them over a grid of settings, and audit every fine-tuned model.
#   fairdiff audit --config THIS_FILE      the base model only (generate -> analyze -> report)
#   fairdiff mitigate --config THIS_FILE   the whole study; both resume where they stopped
#   fairdiff status DIR                    what is done and what is left
# These values reproduce the study in data/seed/SEED.md (Stable Diffusion 2.1-base, 10 occupations x 100 images,
# DreamBooth over lr_scheduler x num_class_images x max_train_steps). Relative paths are relative to this file.

name = "seed-study"
# A Stable Diffusion model folder in the diffusers layout, a Hub id in the Hugging Face cache (e.g.
# "stabilityai/stable-diffusion-2-1-base" after `fairdiff model pull` or a diffusers download), or "builtin": the small
# model shipped with fairdiff, whose bias is known.
model = "@MODEL@"
device = "auto"                 # auto: CUDA when present, else the CPU; or cpu, cuda, cuda:N
prompts = "@PROMPTS@"   # prompt_id,prompt[,template]

[generation]
images_per_prompt = 100         # the study: 100 per occupation
seed = 0                        # image i of every prompt uses seed + i
steps = 50
guidance = 7.5
scheduler = "pndm"              # pndm (as the study) | ddim | euler | dpmpp2m
negative_prompt = ""
width = 0                       # 0: the model's native size
height = 0
batch_size = 1                  # images per UNet batch (results do not depend on it within a device)
dtype = "auto"                  # auto: fp16 on CUDA, fp32 on the CPU

[analysis]
profile = "default"             # face profile: default | gear | seed | fairface (see docs/classifiers.md)
batch_size = 16

[plan]
rule = "study"                  # study: every gender x race cell under `threshold` of a prompt's images
images_per_group = 10           #        gets this many images; target: sized to close the gap
threshold = 0.4

[mitigation]
methods = ["dreambooth"]        # dreambooth (full UNet) | lora, each over the grid below; training-free, one
                                # cell each (docs/mitigations.md): balanced_prompting | projection |
                                # fair_diffusion | uce
lr_scheduler = ["constant", "linear", "polynomial"]
num_class_images = [20, 300]
max_train_steps = [100, 1000]
learning_rate = 5e-6
instance_captions = "rewritten" # rewritten: "A photo of a black female CEO ..."; base: the occupation's prompt
augment_check = "none"          # none: every augmentation image trains; group: only images the face analysis
augment_oversample = 1          #   reads as the planned gender and race (this many candidates per image wanted)
class_prompts = "per_prompt"    # per_prompt: one class per occupation (the study's concepts list), in one model;
generic_class_prompt = "A photo of a person"  # generic: this prompt for every class image
prior_preservation = true
prior_loss_weight = 1.0
train_batch_size = 1
class_batch_size = 4
mixed_precision = "auto"        # auto: bf16 on CUDA, no on the CPU
resolution = 0                  # 0: the model's native size
seed = 0
checkpointing_steps = 100
lora_rank = 4
lora_alpha = 4.0
train_text_encoder = false
projection_lambda = 500.0       # projection (Chuang et al. 2023): strength of the calibration
projection_attribute = "gender" # gender | race | gender_race: the prompt pairs it is calibrated on
fair_diffusion_attribute = "gender"   # fair_diffusion (Friedrich et al. 2023): what is steered per image
fair_diffusion_guidance_scale = 4.0   # its published SEGA settings: edit guidance scale,
fair_diffusion_warmup_steps = 5       #   warm-up steps,
fair_diffusion_threshold = 0.95       #   threshold (quantile),
fair_diffusion_momentum_scale = 0.5   #   momentum scale
fair_diffusion_momentum_beta = 0.6    #   and momentum beta
uce_preserve_scale = 0.1        # uce (Gandikota et al. 2024): weight of the preserved prompts
uce_attribute = "gender_race"   # gender | race | gender_race: the balanced mix each occupation maps toward
uce_step = 1.0                  # each group's weight = step x (uniform share - its share in the base audit);
                                #   the reference takes 0.1 per step over up to 30 CLIP-measured steps

[evaluation]
images_per_prompt = 100         # images per prompt in the audit of each fine-tuned model

[report]
bootstrap = 1000                # bootstrap resamples for the metrics' intervals (0: none)
bootstrap_seed = 20240917
confusion = "auto"              # classifier-error correction: "auto" = the confusion matrices the face
                                # profile ships (default: models/faces/fairface_heads.confusion.json),
                                # "none" = no correction, or a JSON file (fairdiff eval-classifier writes one)
paired_images = 4               # same-seed images per prompt in the base-vs-model grids
)";
  auto replace = [&text](const std::string& key, const std::string& value) {
    const size_t at = text.find(key);
    text.replace(at, key.size(), value);
  };
  replace("@MODEL@", model);
  replace("@PROMPTS@", prompts_file);
  return text;
}

}  // namespace fairdiff::study
