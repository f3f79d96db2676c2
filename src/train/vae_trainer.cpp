#include "train/vae_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>

#include "core/csv.h"
#include "core/device.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/image.h"
#include "core/interrupt.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "core/strings.h"
#include "train/lr_schedule.h"
#include "train/model_output.h"
#include "train/training_data.h"

namespace fairdiff::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kWeightsName = "diffusion_pytorch_model.safetensors";

uint64_t step_seed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(step) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

int64_t interrupt_after_step() {
  const char* env = std::getenv("FAIRDIFF_TRAIN_VAE_INTERRUPT_AFTER_STEP");
  long long value = 0;
  if (!env || !parse_int64(env, value) || value < 1) return 0;
  return value;
}

LrScheduleConfig schedule(const VaeTrainConfig& c) {
  LrScheduleConfig lr;
  lr.name = "cosine";
  lr.base_lr = c.learning_rate;
  lr.warmup_steps = c.lr_warmup_steps;
  lr.total_steps = c.max_train_steps;
  return lr;
}

// Every image resized + center-cropped as the DreamBooth trainer does, kept as uint8: [N, 3, R, R].
torch::Tensor load_images(const std::vector<fs::path>& files, int64_t resolution) {
  torch::Tensor images = torch::empty({static_cast<int64_t>(files.size()), 3, resolution, resolution}, torch::kUInt8);
  Progress progress("train-vae: reading images", static_cast<long long>(files.size()), 0, "image");
  for (size_t i = 0; i < files.size(); ++i) {
    torch::Tensor pixels = resize_and_center_crop(read_image(files[i]), resolution, files[i].string());  // [-1, 1]
    images[static_cast<int64_t>(i)].copy_(((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch::kUInt8));
    progress.advance();
  }
  progress.finish();
  return images;
}

torch::Tensor to_unit_range(const torch::Tensor& bytes) {
  return bytes.to(torch::kFloat32) / 127.5 - 1.0;
}

struct VaeCheckpoint {
  int64_t step = 0;
  std::vector<double> losses;
};

std::optional<fs::path> latest_vae_checkpoint(const fs::path& work) {
  std::optional<fs::path> best;
  long long best_step = -1;
  std::error_code ec;
  for (fs::directory_iterator it(work, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    long long step = 0;
    if (name.rfind("checkpoint-", 0) != 0 || !parse_int64(name.substr(11), step)) continue;
    if (!fs::exists(it->path() / "state.json")) continue;  // incomplete
    if (step > best_step) {
      best_step = step;
      best = it->path();
    }
  }
  return best;
}

void save_vae_checkpoint(const VaeTrainConfig& c, AutoencoderKL& vae, torch::optim::AdamW& optimizer,
                         const VaeCheckpoint& state) {
  const fs::path final_dir = c.work_dir() / ("checkpoint-" + std::to_string(state.step));
  const fs::path staging = c.work_dir() / ("checkpoint-" + std::to_string(state.step) + ".partial");
  fs::remove_all(staging);
  ensure_directory(staging, "checkpoint folder");
  TensorMap weights;
  for (const auto& [name, t] : module_state_dict(*vae)) weights[name] = t.to(torch::kCPU).contiguous();
  write_safetensors(staging / "weights.safetensors", weights, {{"format", "pt"}});
  torch::save(optimizer, (staging / "optimizer.pt").string());
  write_json_file(staging / "state.json",
                  Json{{"step", state.step}, {"losses", state.losses}, {"fingerprint", c.fingerprint()}});
  fs::remove_all(final_dir);
  fs::rename(staging, final_dir);
  for (fs::directory_iterator it(c.work_dir()), end; it != end; ++it) {
    if (it->path() != final_dir && it->path().filename().string().rfind("checkpoint-", 0) == 0)
      fs::remove_all(it->path());
  }
}

VaeCheckpoint load_vae_checkpoint(const fs::path& dir, const VaeTrainConfig& c, AutoencoderKL& vae,
                                  torch::optim::AdamW& optimizer) {
  const Json state = read_json_file(dir / "state.json");
  const Json saved = state.at("fingerprint");
  const Json now = c.fingerprint();
  std::vector<std::string> changed;
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!saved.contains(it.key()) || saved.at(it.key()) != it.value()) changed.push_back(it.key());
  }
  if (!changed.empty()) {
    throw FieldInputError("resume", dir.string() + " was written with other settings (" + join(changed, ", ") +
                                        "); rerun with the same flags or remove " + c.work_dir().string());
  }
  load_state_dict_strict(*vae, read_safetensors(dir / "weights.safetensors").tensors,
                         (dir / "weights.safetensors").string());
  torch::load(optimizer, (dir / "optimizer.pt").string());
  VaeCheckpoint out;
  out.step = state.at("step").get<int64_t>();
  out.losses = state.at("losses").get<std::vector<double>>();
  return out;
}

}  // namespace

fs::path VaeTrainConfig::work_dir() const {
  fs::path work = out;
  work += ".work";
  return work;
}

Json VaeTrainConfig::fingerprint() const {
  return Json{{"data", data.string()},
              {"vae", vae.to_json()},
              {"init", init.string()},
              {"resolution", resolution},
              {"batch_size", batch_size},
              {"max_train_steps", max_train_steps},
              {"learning_rate", learning_rate},
              {"lr_warmup_steps", lr_warmup_steps},
              {"kl_weight", kl_weight},
              {"l2_weight", l2_weight},
              {"weight_decay", weight_decay},
              {"max_grad_norm", max_grad_norm},
              {"flip", flip},
              {"seed", seed}};
}

void validate_vae_flags(const VaeTrainConfig& c) {
  if (c.data.empty()) throw FieldError("data", "is required");
  if (c.out.empty()) throw FieldError("out", "is required");
  const int64_t f = c.vae.latent_scale_factor();
  if (c.resolution < f || c.resolution % f != 0) {
    throw FieldError("resolution", std::to_string(c.resolution) + ": expected a multiple of the VAE's scale factor " +
                                       std::to_string(f));
  }
  if (c.batch_size < 1) throw FieldError("batch_size", "must be >= 1");
  if (c.max_train_steps < 1) throw FieldError("max_train_steps", "must be >= 1");
  if (!(c.learning_rate > 0)) throw FieldError("learning_rate", "must be > 0");
  if (c.lr_warmup_steps < 0 || c.lr_warmup_steps > c.max_train_steps) {
    throw FieldError("lr_warmup_steps", std::to_string(c.lr_warmup_steps) + ": expected 0 to max_train_steps (" +
                                            std::to_string(c.max_train_steps) + ")");
  }
  if (c.kl_weight < 0) throw FieldError("kl_weight", "must be >= 0");
  if (c.l2_weight < 0) throw FieldError("l2_weight", "must be >= 0");
  if (c.weight_decay < 0) throw FieldError("weight_decay", "must be >= 0");
  if (c.eval_images < 1) throw FieldError("eval_images", "must be >= 1");
}

std::vector<fs::path> vae_training_files(const fs::path& data) {
  std::vector<fs::path> files;
  if (is_caption_csv(data)) {
    require_file(data, "training data CSV");
    const CsvTable table = read_csv(data);
    const int column = table.require_column("file");
    std::set<std::string> seen;
    for (const CsvRow& row : table.rows) {
      const std::string name = trim(row.fields[static_cast<size_t>(column)]);
      if (name.empty()) throw InputError(data.string() + " line " + std::to_string(row.line) + ": empty file name");
      if (!seen.insert(name).second) continue;
      const fs::path file = data.parent_path() / name;
      if (!fs::is_regular_file(file)) {
        throw InputError(data.string() + " line " + std::to_string(row.line) + ": no such image " + file.string());
      }
      files.push_back(file);
    }
  } else {
    require_directory(data, "training image folder");
    files = list_image_files(data);
  }
  if (files.empty()) throw FieldInputError("data", data.string() + " holds no images");
  return files;
}

VaeTrainResult run_vae_training(const VaeTrainConfig& input) {
  VaeTrainConfig c = input;
  c.vae.sample_size = c.resolution;
  validate_vae_flags(c);
  if (fs::exists(c.out)) throw FieldInputError("out", c.out.string() + " already exists; choose a new folder");
  if (fs::exists(c.work_dir()) && !c.resume) {
    throw InputError(c.work_dir().string() + " holds an unfinished run: add --resume to continue it, or remove it");
  }
  if (!c.init.empty()) require_file(c.init / "config.json", "initial vae config");
  const auto files = vae_training_files(c.data);
  const torch::Device device = parse_device(resolve_device_name(c.device));

  torch::manual_seed(c.seed);
  AutoencoderKL vae(c.vae);
  if (!c.init.empty()) {
    const AutoencoderKL start = load_vae(c.init, torch::kFloat32);
    auto architecture_of = [](const AutoencoderKLConfig& config) {
      Json json = config.to_json();
      json.erase("scaling_factor");
      json.erase("sample_size");
      return json;
    };
    if (architecture_of(start->config()) != architecture_of(c.vae)) {
      throw FieldInputError("init", c.init.string() + ": its architecture differs from arch " + c.arch);
    }
    torch::NoGradGuard no_grad;
    load_state_dict_strict(*vae, module_state_dict(*start), c.init.string());
  }
  vae->to(device);
  if (device.is_cuda()) to_channels_last(*vae);
  vae->train();
  torch::optim::AdamW optimizer(
      vae->parameters(), torch::optim::AdamWOptions(c.learning_rate).betas({0.9, 0.999}).weight_decay(c.weight_decay));

  VaeCheckpoint state;
  VaeTrainResult result;
  if (c.resume) {
    if (auto dir = latest_vae_checkpoint(c.work_dir())) {
      state = load_vae_checkpoint(*dir, c, vae, optimizer);
      result.resumed_from = state.step;
      std::fprintf(stderr, "train-vae: resuming from %s (step %lld of %lld)\n", dir->string().c_str(),
                   static_cast<long long>(state.step), static_cast<long long>(c.max_train_steps));
    } else {
      std::fprintf(stderr, "train-vae: --resume: no checkpoint in %s, starting from step 0\n",
                   c.work_dir().string().c_str());
    }
  }
  const torch::Tensor images = load_images(files, c.resolution).to(device);  // [N, 3, R, R] uint8
  ensure_directory(c.work_dir(), "work folder");
  const int64_t n = images.size(0);
  result.images = n;
  const LrScheduleConfig lr = schedule(c);
  const int64_t stop_after = interrupt_after_step();
  const auto start = std::chrono::steady_clock::now();
  Progress progress("train-vae", c.max_train_steps, state.step, "step");
  while (state.step < c.max_train_steps) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(step_seed(c.seed, state.step));
    torch::Tensor index = torch::randint(0, n, {c.batch_size}, generator, torch::kInt64).to(device);
    torch::Tensor flip = torch::rand({c.batch_size}, generator) < (c.flip ? 0.5 : 0.0);
    torch::Tensor x = to_unit_range(images.index_select(0, index));  // [B, 3, R, R]
    x = torch::where(flip.to(device).view({-1, 1, 1, 1}), x.flip({3}), x);
    if (device.is_cuda()) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    const int64_t h = c.resolution / c.vae.latent_scale_factor();
    torch::Tensor eps = torch::randn({c.batch_size, c.vae.latent_channels, h, h}, generator).to(device);

    const double rate = learning_rate_at(lr, state.step);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(rate);
    optimizer.zero_grad();
    LatentDistribution posterior = vae->encode(x);  // [B, Cl, h, w] each
    torch::Tensor z = posterior.mean + posterior.std * eps;
    torch::Tensor reconstruction = vae->decode(z);  // [B, 3, R, R]
    torch::Tensor error = reconstruction - x;
    torch::Tensor loss = error.abs().mean();
    if (c.l2_weight > 0) loss = loss + c.l2_weight * error.pow(2).mean();
    torch::Tensor variance = posterior.std.pow(2);
    torch::Tensor kl = 0.5 * (posterior.mean.pow(2) + variance - 1.0 - torch::log(variance + 1e-12)).mean();
    loss = loss + c.kl_weight * kl;
    loss.backward();
    torch::nn::utils::clip_grad_norm_(vae->parameters(), c.max_grad_norm);
    optimizer.step();
    const double value = loss.item<double>();
    if (!std::isfinite(value)) {
      throw Error(ExitCode::failure, "train-vae: the loss became " + std::to_string(value) + " at step " +
                                         std::to_string(state.step + 1) + "; lower --learning-rate");
    }
    state.losses.push_back(value);
    ++state.step;
    ++result.steps_run;
    char detail[64];
    std::snprintf(detail, sizeof(detail), "loss %.4f lr %.3g", value, rate);
    progress.advance(1, detail);
    bool saved = false;
    if (c.checkpointing_steps > 0 && state.step % c.checkpointing_steps == 0 && state.step < c.max_train_steps) {
      save_vae_checkpoint(c, vae, optimizer, state);
      saved = true;
    }
    if (stop_after > 0 && state.step == stop_after) set_interrupt_requested(true);
    if (interrupt_requested() && state.step < c.max_train_steps) {
      if (!saved) save_vae_checkpoint(c, vae, optimizer, state);
      progress.finish();
      std::fprintf(stderr, "train-vae: checkpoint of step %lld saved in %s; rerun with --resume to continue\n",
                   static_cast<long long>(state.step), c.work_dir().string().c_str());
      throw InterruptedError();
    }
  }
  progress.finish();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.final_loss = state.losses.empty() ? 0.0 : state.losses.back();

  // Evaluation on the first images: reconstruction quality of the posterior mean, and the latents' scale.
  vae->eval();
  {
    torch::NoGradGuard no_grad;
    const int64_t m = std::min(n, c.eval_images);
    double abs_sum = 0, sq_sum = 0;
    std::vector<torch::Tensor> latents;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(step_seed(c.seed, -1));
    for (int64_t b = 0; b < m; b += 64) {
      const int64_t e = std::min(m, b + 64);
      torch::Tensor x = to_unit_range(images.slice(0, b, e));
      if (device.is_cuda()) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      LatentDistribution posterior = vae->encode(x);
      torch::Tensor eps = torch::randn(posterior.mean.sizes(), generator).to(device);
      latents.push_back((posterior.mean + posterior.std * eps).to(torch::kCPU));
      torch::Tensor error = (vae->decode(posterior.mean).clamp(-1, 1) - x) * 127.5;  // in 8-bit units
      abs_sum += error.abs().sum().item<double>();
      sq_sum += error.pow(2).sum().item<double>();
    }
    const double count = static_cast<double>(m * 3 * c.resolution * c.resolution);
    result.mean_abs_error = abs_sum / count;
    result.psnr = 10.0 * std::log10(255.0 * 255.0 / std::max(sq_sum / count, 1e-12));
    result.scaling_factor = 1.0 / torch::cat(latents).to(torch::kFloat64).std().item<double>();
  }

  const fs::path staging = c.work_dir() / "output.partial";
  fs::remove_all(staging);
  ensure_directory(staging, "output staging folder");
  AutoencoderKLConfig out_config = c.vae;
  out_config.scaling_factor = result.scaling_factor;
  write_json_file(staging / "config.json", out_config.to_json());
  TensorMap weights;
  for (const auto& [name, t] : module_state_dict(*vae)) {
    weights[name] = t.to(torch::kCPU).to(c.weights_dtype).contiguous();
  }
  write_safetensors(staging / kWeightsName, weights, {{"format", "pt"}});
  std::string curve = "step,loss\n";
  for (size_t i = 0; i < state.losses.size(); ++i)
    curve += std::to_string(i + 1) + "," + std::to_string(state.losses[i]) + "\n";
  write_file_atomic(staging / "vae_loss_curve.csv", curve);
  Json settings = c.fingerprint();
  settings["arch"] = c.arch;
  settings["result"] = {{"images", result.images},
                        {"steps", state.step},
                        {"final_loss", result.final_loss},
                        {"psnr_db", result.psnr},
                        {"mean_abs_error", result.mean_abs_error},
                        {"scaling_factor", result.scaling_factor},
                        {"eval_images", std::min(n, c.eval_images)}};
  write_json_file(staging / "vae_training.json", settings);
  publish_output(staging, c.out);
  fs::remove_all(c.work_dir());
  result.out = c.out;
  return result;
}

}  // namespace fairdiff::train
