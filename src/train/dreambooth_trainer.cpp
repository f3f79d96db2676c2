#include "train/dreambooth_trainer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/device.h"
#include "core/error.h"
#include "diffusion/cuda/captured_work.h"
#include "train/dreambooth_loss.h"

namespace fairdiff::train {
namespace {

// splitmix64: independent seeds for the random streams of (seed, stream, index).
uint64_t derive_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream * 0x100000001B3ULL + index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kStreamBatch = 1, kStreamEpoch = 2, kStreamLora = 3, kStreamCaption = 4;

void freeze_and_cast(torch::nn::Module& module, torch::Dtype dtype) {
  for (auto& p : module.parameters()) p.set_requires_grad(false);
  module.to(dtype);
}

NamedTensors prefixed_parameters(torch::nn::Module& module, const std::string& prefix) {
  NamedTensors out;
  for (const auto& item : module.named_parameters()) out.emplace_back(prefix + item.key(), item.value());
  return out;
}

TensorMap strip_prefix(const TensorMap& weights, const std::string& prefix) {
  TensorMap out;
  for (const auto& [name, t] : weights) {
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t.to(torch::kCPU).contiguous();
  }
  return out;
}

}  // namespace

torch::Dtype mixed_precision_dtype(const std::string& mixed_precision) {
  if (mixed_precision == "no") return torch::kFloat32;
  if (mixed_precision == "fp16") return torch::kFloat16;
  if (mixed_precision == "bf16") return torch::kBFloat16;
  throw FieldError("mixed_precision", "'" + mixed_precision + "': expected no, fp16 or bf16");
}

DreamBoothTrainer::DreamBoothTrainer(const FinetuneConfig& config, StableDiffusionModel& model,
                                     std::vector<TrainingExample> instance, std::vector<TrainingExample> class_examples,
                                     DataParallel* parallel)
    : config_(config),
      model_(model),
      instance_(std::move(instance)),
      class_(std::move(class_examples)),
      dtype_(mixed_precision_dtype(config.mixed_precision)),
      parallel_(parallel ? *parallel : single_process_) {
  if (model.dtype != torch::kFloat32) throw std::invalid_argument("DreamBoothTrainer: load the model in fp32");
  if (instance_.empty()) throw std::invalid_argument("DreamBoothTrainer: no instance examples");
  if (config_.with_prior_preservation && class_.empty())
    throw std::invalid_argument("DreamBoothTrainer: no class examples");
  noise_scheduler_ = make_scheduler("ddim", model.scheduler_config);
  const std::string& prediction = model.scheduler_config.prediction_type;
  if (prediction != "epsilon" && prediction != "v_prediction") {
    throw UnsupportedError(model.dir.string() + ": the scheduler's prediction_type '" + prediction +
                           "' cannot be fine-tuned (expected epsilon or v_prediction)");
  }

  // The frozen VAE runs in the compute dtype, or fp32 when fp16 would overflow it (force_upcast).
  model_.vae_dtype = (dtype_ == torch::kFloat16 && model_.vae->config().force_upcast) ? torch::kFloat32 : dtype_;
  freeze_and_cast(*model_.vae, model_.vae_dtype);
  model_.vae->eval();
  NamedTensors trainable;
  if (config_.use_lora) {
    freeze_and_cast(*model_.unet, dtype_);
    freeze_and_cast(*model_.text_encoder, dtype_);
    // The adapters keep the frozen base weights in the compute dtype; their factors start in fp32 (the masters).
    LoraConfig lora = config_.lora;
    lora.text_encoder = config_.train_text_encoder;
    lora_ = std::make_unique<LoraAdapters>(
        model_, lora, at::make_generator<at::CPUGeneratorImpl>(derive_seed(config_.seed, kStreamLora, 0)));
    trainable = lora_->trainable();
  } else {
    trainable = prefixed_parameters(*model_.unet, "unet.");
    if (config_.train_text_encoder) {
      auto te = prefixed_parameters(*model_.text_encoder, "text_encoder.");
      trainable.insert(trainable.end(), te.begin(), te.end());
    } else {
      freeze_and_cast(*model_.text_encoder, dtype_);
    }
  }
  const bool accumulate_fp32 = config_.gradient_accumulation_steps > 1;
  optimizer_ = std::make_unique<FlatAdamW>(trainable, config_.adam, dtype_, accumulate_fp32);
  model_.dtype = dtype_;
  model_.unet->train();
  if (config_.train_text_encoder && !config_.use_lora)
    model_.text_encoder->train();
  else
    model_.text_encoder->eval();
  if (dtype_ == torch::kFloat16) state_.loss_scale = 65536.0;
}

DreamBoothTrainer::~DreamBoothTrainer() = default;

int64_t DreamBoothTrainer::batches_per_epoch() const {
  const auto n = static_cast<int64_t>(config_.with_prior_preservation ? std::max(instance_.size(), class_.size())
                                                                      : instance_.size());
  return (n + config_.train_batch_size - 1) / config_.train_batch_size;  // the last batch may be short
}

std::vector<int64_t> DreamBoothTrainer::batch_indices(int64_t micro) const {
  const auto n = static_cast<int64_t>(config_.with_prior_preservation ? std::max(instance_.size(), class_.size())
                                                                      : instance_.size());
  const int64_t epoch = micro / batches_per_epoch();
  const int64_t k = micro % batches_per_epoch();
  auto generator =
      at::make_generator<at::CPUGeneratorImpl>(derive_seed(config_.seed, kStreamEpoch, static_cast<uint64_t>(epoch)));
  torch::Tensor order = torch::randperm(n, generator, torch::kInt64);
  const int64_t begin = k * config_.train_batch_size;
  const int64_t end = std::min(n, begin + config_.train_batch_size);
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(order[i].item<int64_t>());
  return out;
}

torch::Tensor DreamBoothTrainer::text_states(const std::vector<std::string>& prompts) {
  if (config_.train_text_encoder) {
    // The whole batch in one forward pass, with grad (rows do not interact: CLIP's mask is causal only).
    std::vector<int64_t> ids;
    for (const auto& prompt : prompts) {
      const auto one = model_.tokenizer.encode(prompt);
      ids.insert(ids.end(), one.begin(), one.end());
    }
    const int64_t b = static_cast<int64_t>(prompts.size());
    torch::Tensor input_ids =
        torch::tensor(ids, torch::kInt64).view({b, model_.tokenizer.max_length()}).to(model_.device);
    return model_.text_encoder->forward(input_ids);  // [B, L, E]
  }
  std::vector<torch::Tensor> rows;
  for (const auto& prompt : prompts) {
    auto it = text_cache_.find(prompt);
    if (it == text_cache_.end()) {
      torch::NoGradGuard no_grad;
      it = text_cache_.emplace(prompt, StableDiffusionPipeline(model_).encode_prompts({prompt})[0]).first;
    }
    rows.push_back(it->second);
  }
  return torch::stack(rows);  // [B, L, E]
}

void DreamBoothTrainer::encode_pixels(const std::vector<torch::Tensor>& images, torch::Tensor& mean,
                                      torch::Tensor& std) {
  torch::NoGradGuard no_grad;
  torch::Tensor pixels = torch::stack(images).to(model_.device, model_.vae_dtype);  // [B, 3, R, R]
  if (model_.device.is_cuda()) pixels = pixels.contiguous(torch::MemoryFormat::ChannelsLast);
  LatentDistribution dist = model_.vae->encode(pixels);
  mean = dist.mean.to(torch::kFloat32);
  std = dist.std.to(torch::kFloat32);
}

void DreamBoothTrainer::cache_latents() {
  // Every example once, before the first step, in fixed chunks in dataset order: the same numbers whichever
  // step a run starts or resumes at (a batch's composition changes with the step, a chunk's does not).
  constexpr size_t kChunk = 32;
  for (bool is_class : {false, true}) {
    if (is_class && !config_.with_prior_preservation) break;
    const auto& examples = is_class ? class_ : instance_;
    auto& cache = is_class ? class_latents_ : instance_latents_;
    cache.clear();
    for (size_t begin = 0; begin < examples.size(); begin += kChunk) {
      const size_t end = std::min(examples.size(), begin + kChunk);
      std::vector<torch::Tensor> images;
      for (size_t k = begin; k < end; ++k) images.push_back(examples[k].pixels);
      torch::Tensor mean, std;
      encode_pixels(images, mean, std);
      for (size_t k = begin; k < end; ++k) {
        const auto i = static_cast<int64_t>(k - begin);
        cache.push_back({mean[i].clone(), std[i].clone()});
      }
    }
  }
  latents_cached_ = true;
}

std::vector<int64_t> DreamBoothTrainer::latent_shape() const {
  const auto& vae = model_.vae->config();
  const int64_t f = vae.latent_scale_factor();  // the encoder halves odd sizes rounding down: floor(size / f)
  return {vae.latent_channels, instance_.front().pixels.size(1) / f, instance_.front().pixels.size(2) / f};
}

struct DreamBoothTrainer::MicroBatchGraph {
  explicit MicroBatchGraph(const torch::Device& device) : stream(device) {}
  SideStream stream;       // the whole step runs on it (capture cannot use the default stream)
  int64_t eager_runs = 0;  // warm-up: cuDNN and cuBLAS choose and create their state eagerly first
  bool capture_failed = false;
  std::vector<int64_t> key;
  DreamBoothUNetInputs inputs;  // static: each replay reads them
  DreamBoothLoss loss;          // static: each replay writes them
  CapturedWork work;
};

bool DreamBoothTrainer::micro_batch_graphs() const {
  // Excluded: fp16 (a step whose gradient overflowed is skipped, decided on the host between backward and the
  // update), the text encoder's training (tokenisation on the host), gradient checkpointing (its recomputation
  // is not validated under capture) and data parallelism (collectives between the passes).
  return CapturedWork::available() && model_.device.is_cuda() && dtype_ != torch::kFloat16 &&
         !config_.train_text_encoder && !config_.gradient_checkpointing && !parallel_.distributed();
}

DreamBoothLoss DreamBoothTrainer::eager_micro_batch(const DreamBoothUNetInputs& inputs, double gradient_factor) {
  if (lora_ && !config_.train_text_encoder) lora_->refresh();  // else done before the text encoder ran
  DreamBoothLoss loss =
      dreambooth_loss(*model_.unet, inputs, {config_.prior_loss_weight, config_.gradient_checkpointing});
  (loss.total * gradient_factor).backward();
  optimizer_->accumulate();
  return loss;
}

DreamBoothLoss DreamBoothTrainer::micro_batch(const DreamBoothUNetInputs& inputs, double gradient_factor) {
  if (!graph_) return eager_micro_batch(inputs, gradient_factor);
  MicroBatchGraph& g = *graph_;
  if (g.capture_failed) return eager_micro_batch(inputs, gradient_factor);
  std::vector<int64_t> key{inputs.num_instance, static_cast<int64_t>(inputs.context.scalar_type())};
  for (const torch::Tensor* t : {&inputs.noisy, &inputs.timesteps, &inputs.context, &inputs.target}) {
    key.push_back(t->dim());
    for (int64_t s : t->sizes()) key.push_back(s);
  }
  key.push_back(static_cast<int64_t>(std::llround(gradient_factor * 1e12)));  // baked into the graph
  if (!g.work.captured()) {
    if (g.eager_runs < 2) {
      ++g.eager_runs;
      return eager_micro_batch(inputs, gradient_factor);
    }
    g.key = key;
    g.inputs = inputs;
    g.inputs.noisy = inputs.noisy.clone();  // keeps the layout
    g.inputs.timesteps = inputs.timesteps.clone();
    g.inputs.context = inputs.context.clone();
    g.inputs.target = inputs.target.clone();
    try {
      g.work.capture(model_.device, [&] { g.loss = eager_micro_batch(g.inputs, gradient_factor); });
    } catch (const std::exception& e) {
      // Nothing recorded has run: this micro-batch and the rest run eagerly (same results, slower).
      std::fprintf(stderr,
                   "warning: the training step could not be captured as a CUDA graph (%s); going on "
                   "without (FAIRDIFF_CUDA_GRAPHS=0 skips the attempt)\n",
                   e.what());
      g.capture_failed = true;
      return eager_micro_batch(inputs, gradient_factor);
    }
  } else {
    if (key != g.key) return eager_micro_batch(inputs, gradient_factor);
    g.inputs.noisy.copy_(inputs.noisy);
    g.inputs.timesteps.copy_(inputs.timesteps);
    g.inputs.context.copy_(inputs.context);
    g.inputs.target.copy_(inputs.target);
  }
  g.work.replay();
  ++replayed_;
  return g.loss;
}

int64_t DreamBoothTrainer::replayed_micro_batches() const {
  return replayed_;
}

const LossRecord& DreamBoothTrainer::train_step() {
  if (!graph_ && micro_batch_graphs()) graph_ = std::make_unique<MicroBatchGraph>(model_.device);
  std::optional<SideStream::Use> on_side_stream;
  if (graph_) on_side_stream.emplace(graph_->stream);
  const int64_t accumulation = config_.gradient_accumulation_steps;
  const double loss_scale = state_.loss_scale;
  LossRecord record;
  record.step = state_.step + 1;
  record.lr = learning_rate_at(config_.lr, state_.step);
  optimizer_->zero_grad();
  torch::Tensor losses = torch::zeros({3}, torch::kFloat64);  // total, instance, prior: this rank's share
  for (int64_t a = 0; a < accumulation; ++a) {
    const int64_t micro = state_.step * accumulation + a;
    const std::vector<int64_t> indices = batch_indices(micro);  // the global batch
    if (config_.cache_latents && !latents_cached_) cache_latents();
    // Every random draw is the global batch's, so that each row gets the same numbers whatever the world size;
    // this rank keeps rows [begin, end) of the instance rows and the same rows of the class rows.
    const auto global_rows = static_cast<int64_t>(indices.size());
    const auto [begin, end] = parallel_.rows(global_rows);
    const bool prior = config_.with_prior_preservation;
    std::vector<bool> dropped(indices.size(), false);
    if (config_.caption_dropout > 0) {
      // Its own stream, so runs without dropout draw exactly what they did before the option existed.
      auto dropout = at::make_generator<at::CPUGeneratorImpl>(
          derive_seed(config_.seed, kStreamCaption, static_cast<uint64_t>(micro)));
      torch::Tensor u = torch::rand({global_rows}, dropout);
      for (int64_t i = 0; i < global_rows; ++i)
        dropped[static_cast<size_t>(i)] = u[i].item<double>() < config_.caption_dropout;
    }
    auto generator =
        at::make_generator<at::CPUGeneratorImpl>(derive_seed(config_.seed, kStreamBatch, static_cast<uint64_t>(micro)));
    const int64_t all_rows = prior ? 2 * global_rows : global_rows;
    std::vector<int64_t> shape = latent_shape();
    shape.insert(shape.begin(), all_rows);
    torch::Tensor sample_noise_all = torch::randn(shape, generator, torch::kFloat32);
    torch::Tensor noise_all = torch::randn(shape, generator, torch::kFloat32);
    torch::Tensor timesteps_all = torch::randint(0, model_.scheduler_config.num_train_timesteps, {all_rows}, generator,
                                                 torch::TensorOptions().dtype(torch::kInt64));
    if (begin == end) continue;  // a short last batch leaves this rank no rows: it adds a zero gradient

    std::vector<torch::Tensor> means, stds, images;
    std::vector<std::string> prompts;
    std::vector<int64_t> rows;  // this rank's rows of the draws above
    for (bool is_class : {false, true}) {
      if (is_class && !prior) break;
      const auto& examples = is_class ? class_ : instance_;
      const auto& cache = is_class ? class_latents_ : instance_latents_;
      for (int64_t i = begin; i < end; ++i) {
        const auto k = static_cast<size_t>(indices[static_cast<size_t>(i)] % static_cast<int64_t>(examples.size()));
        if (config_.cache_latents) {
          means.push_back(cache[k].first);
          stds.push_back(cache[k].second);
        } else {
          images.push_back(examples[k].pixels);
        }
        prompts.push_back(!is_class && dropped[static_cast<size_t>(i)] ? std::string() : examples[k].prompt);
        rows.push_back(is_class ? global_rows + i : i);
      }
    }
    torch::Tensor mean, std;  // [B, Cl, h, w]
    if (config_.cache_latents) {
      mean = torch::stack(means);
      std = torch::stack(stds);
    } else {
      encode_pixels(images, mean, std);  // the batch (instance rows, then class rows) in one call
    }
    torch::Tensor pick = torch::tensor(rows, torch::kInt64);
    torch::Tensor sample_noise = sample_noise_all.index_select(0, pick).to(model_.device);
    DreamBoothBatch batch;
    batch.latents = (mean + std * sample_noise) * model_.vae->config().scaling_factor;  // the VAE posterior's sample
    batch.noise = noise_all.index_select(0, pick).to(model_.device);
    batch.timesteps = timesteps_all.index_select(0, pick).to(model_.device);
    batch.num_instance = end - begin;
    if (lora_ && config_.train_text_encoder) lora_->refresh();  // the text encoder's adapters
    batch.context = text_states(prompts);
    const DreamBoothUNetInputs inputs = dreambooth_unet_inputs(*noise_scheduler_, batch, model_.device.is_cuda());
    // This rank's rows' share of the global batch's mean: the ranks' gradients then sum to the batch's.
    const double share = static_cast<double>(end - begin) / static_cast<double>(global_rows);
    const DreamBoothLoss loss = micro_batch(inputs, loss_scale * share / static_cast<double>(accumulation));
    const double weight = share / static_cast<double>(accumulation);
    losses[0] += loss.total.item<double>() * weight;
    losses[1] += loss.instance.item<double>() * weight;
    if (loss.prior.defined()) losses[2] += loss.prior.item<double>() * weight;
  }
  if (parallel_.distributed()) {
    torch::Tensor grad = optimizer_->flat_grad();
    parallel_.all_reduce_sum(grad);
    parallel_.all_reduce_sum(losses);
  }
  record.loss = losses[0].item<double>();
  record.loss_instance = losses[1].item<double>();
  record.loss_prior = losses[2].item<double>();
  torch::Tensor norm = optimizer_->grad_norm(1.0 / loss_scale);
  record.grad_norm = norm.item<double>();
  if (dtype_ == torch::kFloat16) {
    // Dynamic loss scaling (as torch.cuda.amp.GradScaler): skip a step whose gradient overflowed and halve the
    // scale; double it after 2000 clean steps.
    if (!std::isfinite(record.grad_norm)) {
      state_.loss_scale *= 0.5;
      state_.loss_scale_growth = 0;
      ++state_.step;
      state_.curve.push_back(record);
      return state_.curve.back();
    }
    if (++state_.loss_scale_growth == 2000) {
      state_.loss_scale *= 2.0;
      state_.loss_scale_growth = 0;
    }
  } else if (!std::isfinite(record.loss) || !std::isfinite(record.grad_norm)) {
    throw Error(ExitCode::failure, "the loss or gradient became " + std::to_string(record.loss) + " at step " +
                                       std::to_string(record.step) +
                                       "; lower --learning-rate or use --mixed-precision no");
  }
  optimizer_->step(record.lr, clip_coefficient(norm, config_.max_grad_norm) / loss_scale);
  ++state_.step;
  state_.curve.push_back(record);
  return state_.curve.back();
}

std::map<std::string, TensorMap> DreamBoothTrainer::trained_weights() const {
  const TensorMap master = optimizer_->master_weights();
  std::map<std::string, TensorMap> out;
  if (lora_) {
    out["lora"] = lora_->export_weights(master);
    return out;
  }
  out["unet"] = strip_prefix(master, "unet.");
  if (config_.train_text_encoder) out["text_encoder"] = strip_prefix(master, "text_encoder.");
  return out;
}

}  // namespace fairdiff::train
