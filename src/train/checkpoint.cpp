#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>

#include "core/csv.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/strings.h"

namespace fairdiff::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPrefix = "checkpoint-";

std::string exact(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

double parse_number(const std::string& text, const std::string& where) {
  double value = 0;
  if (!parse_double(text, value)) throw InputError(where + ": '" + text + "' is not a number");
  return value;
}

std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& work_dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (!fs::is_directory(work_dir)) return found;
  for (const auto& entry : fs::directory_iterator(work_dir)) {
    const std::string name = entry.path().filename().string();
    long long step = 0;
    if (entry.is_directory() && starts_with(name, kPrefix) &&
        parse_int64(name.substr(std::string(kPrefix).size()), step) &&
        fs::exists(entry.path() / "training_state.safetensors")) {
      found.emplace_back(step, entry.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::vector<LossRecord> parse_loss_curve(const fs::path& path) {
  CsvTable table = read_csv(path);
  std::vector<LossRecord> curve;
  for (const auto& row : table.rows) {
    const std::string where = path.string() + " line " + std::to_string(row.line);
    if (row.fields.size() != 6) throw InputError(where + ": expected 6 columns");
    LossRecord r;
    r.step = static_cast<int64_t>(parse_number(row.fields[0], where));
    r.loss = parse_number(row.fields[1], where);
    r.loss_instance = parse_number(row.fields[2], where);
    r.loss_prior = parse_number(row.fields[3], where);
    r.lr = parse_number(row.fields[4], where);
    r.grad_norm = parse_number(row.fields[5], where);
    curve.push_back(r);
  }
  return curve;
}

}  // namespace

std::string loss_curve_csv(const std::vector<LossRecord>& curve) {
  std::string text = "step,loss,loss_instance,loss_prior,lr,grad_norm\n";
  for (const auto& r : curve) {
    text += csv_line({std::to_string(r.step), exact(r.loss), exact(r.loss_instance), exact(r.loss_prior), exact(r.lr),
                      exact(r.grad_norm)});  // csv_line ends the line
  }
  return text;
}

fs::path save_checkpoint(const FinetuneConfig& config, const FlatAdamW& optimizer, const TrainingState& state) {
  const fs::path work = config.work_dir();
  ensure_directory(work, "work folder");
  const fs::path final_dir = work / (kPrefix + std::to_string(state.step));
  const fs::path partial = work / (kPrefix + std::to_string(state.step) + ".partial");
  fs::remove_all(partial);
  ensure_directory(partial, "checkpoint folder");
  std::map<std::string, std::string> metadata{{"step", std::to_string(state.step)},
                                              {"loss_scale", exact(state.loss_scale)},
                                              {"loss_scale_growth", std::to_string(state.loss_scale_growth)},
                                              {"settings", config.fingerprint().dump()}};
  write_safetensors(partial / "training_state.safetensors", optimizer.state(), metadata);
  write_file_atomic(partial / "loss_curve.csv", loss_curve_csv(state.curve));
  write_json_file(partial / "settings.json", config.to_json());
  fs::remove_all(final_dir);
  fs::rename(partial, final_dir);
  auto all = complete_checkpoints(work);
  const auto limit = static_cast<size_t>(std::max<int64_t>(1, config.checkpoints_total_limit));
  for (size_t i = 0; i + limit < all.size(); ++i) fs::remove_all(all[i].second);
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& work_dir) {
  auto all = complete_checkpoints(work_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

TrainingState load_checkpoint(const fs::path& dir, const FinetuneConfig& config, FlatAdamW& optimizer) {
  const fs::path file = dir / "training_state.safetensors";
  SafetensorsFile saved = read_safetensors(file);
  auto meta = [&](const std::string& key) {
    auto it = saved.metadata.find(key);
    if (it == saved.metadata.end()) throw InputError(file.string() + ": missing metadata '" + key + "'");
    return it->second;
  };
  Json settings;
  try {
    settings = Json::parse(meta("settings"));
  } catch (const Json::exception& e) {
    throw InputError(file.string() + ": unreadable settings: " + e.what());
  }
  const Json expected = config.fingerprint();
  if (settings != expected) {
    std::vector<std::string> changed;
    for (const auto& [key, value] : expected.items()) {
      if (!settings.contains(key) || settings[key] != value) {
        changed.push_back(key + " (checkpoint: " + (settings.contains(key) ? settings[key].dump() : "unset") +
                          ", now: " + value.dump() + ")");
      }
    }
    throw FieldInputError("resume", dir.string() + " was written with other settings: " + join(changed, "; ") +
                                        ". Resume with the same settings, or delete " + config.work_dir().string() +
                                        " to start over");
  }
  optimizer.load_state(saved.tensors, file.string());
  TrainingState state;
  state.step = static_cast<int64_t>(parse_number(meta("step"), file.string()));
  state.loss_scale = parse_number(meta("loss_scale"), file.string());
  state.loss_scale_growth = static_cast<int64_t>(parse_number(meta("loss_scale_growth"), file.string()));
  state.curve = parse_loss_curve(dir / "loss_curve.csv");
  if (static_cast<int64_t>(state.curve.size()) != state.step) {
    throw InputError(dir.string() + " is inconsistent: step " + std::to_string(state.step) + " but " +
                     std::to_string(state.curve.size()) + " loss rows");
  }
  return state;
}

}  // namespace fairdiff::train
