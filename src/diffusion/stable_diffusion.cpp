#include "diffusion/stable_diffusion.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/state_dict.h"
#include "core/strings.h"

namespace fairdiff {

void validate_model_directory(const std::filesystem::path& dir, const SingleFileOptions& single_file) {
  if (is_single_file_checkpoint(dir)) {
    inspect_single_file(dir, single_file);
    return;
  }
  require_directory(dir, "model directory");
  const auto index_path = dir / "model_index.json";
  if (!std::filesystem::exists(index_path)) {
    throw InputError("model directory " + dir.string() +
                     " has no model_index.json (expected a Stable Diffusion model in the diffusers layout)");
  }
  Json index = read_json_file(index_path);
  const std::vector<std::pair<std::string, std::string>> components = {{"tokenizer", "vocab.json"},
                                                                       {"text_encoder", "config.json"},
                                                                       {"unet", "config.json"},
                                                                       {"vae", "config.json"},
                                                                       {"scheduler", "scheduler_config.json"}};
  for (const auto& [component, file] : components) {
    if (!index.contains(component) || index[component].is_null() ||
        (index[component].is_array() && !index[component].empty() && index[component][0].is_null())) {
      throw InputError(index_path.string() + " does not list the '" + component + "' component");
    }
    if (!std::filesystem::is_directory(dir / component)) {
      throw InputError("model directory " + dir.string() + " is missing the component folder '" + component + "/'");
    }
    if (!std::filesystem::exists(dir / component / file)) {
      throw InputError("model component " + (dir / component).string() + " is missing " + file);
    }
  }
}

ModelArchitecture read_model_architecture(const std::filesystem::path& model, const SingleFileOptions& single_file) {
  if (is_single_file_checkpoint(model)) return inspect_single_file(model, single_file).arch;
  validate_model_directory(model);
  ModelArchitecture arch;
  arch.name = model.filename().string();
  auto config = [&](const char* component, const char* name) {
    const auto path = model / component / name;
    return std::make_pair(read_json_file(path), path.string());
  };
  const auto [unet, unet_where] = config("unet", "config.json");
  const auto [vae, vae_where] = config("vae", "config.json");
  const auto [text, text_where] = config("text_encoder", "config.json");
  arch.unet = UNet2DConditionConfig::from_json(unet, unet_where);
  arch.vae = AutoencoderKLConfig::from_json(vae, vae_where);
  arch.text_encoder = ClipTextConfig::from_json(text, text_where);
  arch.scheduler = load_scheduler_config((model / "scheduler" / "scheduler_config.json").string());
  const auto tokenizer = model / "tokenizer" / "tokenizer_config.json";
  if (std::filesystem::exists(tokenizer)) {
    const Json config = read_json_file(tokenizer);
    if (config.contains("pad_token") && config["pad_token"].is_string()) arch.pad_token = config["pad_token"];
  }
  return arch;
}

StableDiffusionModel load_stable_diffusion(const std::filesystem::path& dir, torch::Device device, torch::Dtype dtype,
                                           const PipelineLoadOptions& options) {
  validate_model_directory(dir, options.single_file);
  StableDiffusionModel model;
  model.dir = dir;
  model.device = device;
  model.dtype = dtype;
  if (is_single_file_checkpoint(dir)) {
    SingleFileComponents components = load_single_file(dir, options.single_file, dtype);
    model.tokenizer = std::move(components.tokenizer);
    model.scheduler_config = components.model.arch.scheduler;
    model.text_encoder = components.text_encoder;
    model.unet = components.unet;
    model.vae = components.vae;
  } else {
    model.tokenizer = ClipTokenizer::from_directory(dir / "tokenizer");
    model.scheduler_config = load_scheduler_config((dir / "scheduler" / "scheduler_config.json").string());
    model.text_encoder = load_clip_text_model(dir / "text_encoder", dtype);
    model.unet = load_unet(dir / "unet", dtype);
    model.vae = load_vae(dir / "vae", torch::kFloat32);
  }
  model.vae_dtype = options.vae_dtype                                                ? *options.vae_dtype
                    : (dtype == torch::kFloat16 && model.vae->config().force_upcast) ? torch::kFloat32
                                                                                     : dtype;
  model.vae->to(model.vae_dtype);
  model.text_encoder->to(device);
  model.unet->to(device);
  model.vae->to(device);
  model.channels_last = device.is_cuda() && options.channels_last;
  if (model.channels_last) {
    // Channels-last convolutions are the fast layout for cuDNN's fp16/bf16 kernels.
    to_channels_last(*model.unet);
    to_channels_last(*model.vae);
  }
  if (model.text_encoder->config().hidden_size != model.unet->config().cross_attention_dim) {
    throw InputError(
        dir.string() + ": text_encoder hidden_size " + std::to_string(model.text_encoder->config().hidden_size) +
        " does not match the unet's cross_attention_dim " + std::to_string(model.unet->config().cross_attention_dim));
  }
  return model;
}

void validate_request(const GenerationRequest& r, const StableDiffusionModel& model) {
  const int64_t f = model.vae->config().latent_scale_factor();
  if (r.prompts.empty()) throw UsageError("no prompts to generate");
  if (r.seeds.size() != r.prompts.size()) throw std::invalid_argument("one seed per prompt is required");
  if (r.steps < 1 || r.steps > model.scheduler_config.num_train_timesteps) {
    throw FieldError("steps", std::to_string(r.steps) + ": expected 1.." +
                                  std::to_string(model.scheduler_config.num_train_timesteps) +
                                  " (the scheduler's num_train_timesteps)");
  }
  for (const auto& [field, side] : {std::pair<const char*, int64_t>{"width", r.width}, {"height", r.height}}) {
    if (side != 0 && (side < f || side % f != 0)) {
      throw FieldError(field, std::to_string(side) + ": expected a positive multiple of " + std::to_string(f) +
                                  " (the VAE's latent scale factor)");
    }
  }
}

bool channels_last_pays(const torch::Device& device, int64_t images_per_batch) {
  return device.is_cuda() && images_per_batch >= 1;
}

StableDiffusionPipeline::StableDiffusionPipeline(StableDiffusionModel& model)
    : model_(model), graphs_(std::make_shared<UNetGraphs>()) {}

torch::Tensor StableDiffusionPipeline::encode_prompts(const std::vector<std::string>& prompts) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  for (const auto& p : prompts) {
    auto one = model_.tokenizer.encode(p);
    ids.insert(ids.end(), one.begin(), one.end());
  }
  const int64_t b = static_cast<int64_t>(prompts.size());
  torch::Tensor input_ids =
      torch::tensor(ids, torch::kInt64).view({b, model_.tokenizer.max_length()}).to(model_.device);
  if (model_.device.is_cpu() && b > 1) {
    // One prompt at a time on the CPU: the text encoder's matrix products round differently in a batch (2.4e-7
    // measured on tiny-sd2), and an image must not depend on its batch. It runs once per batch: the cost is small.
    std::vector<torch::Tensor> states;
    for (int64_t i = 0; i < b; ++i) states.push_back(model_.text_encoder->forward(input_ids.slice(0, i, i + 1)));
    return torch::cat(states, 0);
  }
  return model_.text_encoder->forward(input_ids);  // [B, L, D]
}

torch::Tensor StableDiffusionPipeline::initial_noise(const std::vector<uint64_t>& seeds, int64_t height,
                                                     int64_t width) const {
  const int64_t f = model_.vae->config().latent_scale_factor();
  const int64_t channels = model_.unet->config().in_channels;
  std::vector<torch::Tensor> noise;
  for (uint64_t seed : seeds) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    noise.push_back(torch::randn({1, channels, height / f, width / f}, generator, torch::kFloat32));
  }
  return torch::cat(noise, 0);
}

namespace {

// The UNet over a batch laid out as `copies` blocks of B rows ([uncond B, cond B, ...]). On the CPU each image's rows
// go through alone: BLAS picks kernels by matrix size (OpenBLAS's small-matrix kernels on AVX-512 CPUs), so a
// batch's products round differently from one image's (measured on an AMD EPYC: 2e-6 in the decoded image), and
// an image must not depend on its batch (a resumed run remakes images alone). On the CPU batching buys little.
// On CUDA the whole batch goes through at once, replayed from a CUDA graph where they are enabled.
torch::Tensor unet_per_image(UNet2DConditionModel& unet, UNetGraphs& graphs, const torch::Tensor& input,
                             const torch::Tensor& t, const torch::Tensor& context, int64_t images, bool cpu) {
  if (!cpu) return graphs.forward(unet, input, t, context);
  if (images == 1) return unet->forward(input, t, context);
  const int64_t copies = input.size(0) / images;
  std::vector<torch::Tensor> outputs;
  for (int64_t b = 0; b < images; ++b) {
    const torch::Tensor rows = torch::arange(copies, torch::kInt64) * images + b;
    outputs.push_back(unet->forward(input.index_select(0, rows), t, context.index_select(0, rows)));
  }
  // [B, copies, ...] -> [copies, B, ...] -> [copies B, ...]
  torch::Tensor stacked = torch::stack(outputs, 0).transpose(0, 1);
  std::vector<int64_t> shape = {copies * images};
  for (int64_t d = 2; d < stacked.dim(); ++d) shape.push_back(stacked.size(d));
  return stacked.reshape(shape);
}

}  // namespace

torch::Tensor StableDiffusionPipeline::denoise(const torch::Tensor& text_states, const torch::Tensor& noise,
                                               const GenerationRequest& request, const StepCallback& on_step) {
  torch::NoGradGuard no_grad;
  auto scheduler = make_scheduler(request.scheduler, model_.scheduler_config);
  scheduler->set_timesteps(request.steps);
  const bool guided = request.guidance_scale > 1.0;
  torch::Tensor context = text_states;  // [2B, L, D] as [uncond..., cond...] when guided
  torch::Tensor latents = (noise * scheduler->init_noise_sigma()).to(model_.device);
  const auto memory_format = model_.channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  // Semantic guidance: context is [(2 + K) B, L, D] as [uncond..., cond..., concept_1..., ..., concept_K...].
  std::optional<SemanticGuider> semantic;
  if (request.semantic_guidance && request.semantic_guidance->num_edits() > 0) {
    const SemanticGuidance& sega = *request.semantic_guidance;
    sega.validate(static_cast<size_t>(noise.size(0)), request.steps, request.guidance_scale);
    if (text_states.size(0) != (2 + sega.num_edits()) * noise.size(0)) {
      throw std::invalid_argument("semantic guidance: expected text states for (2 + " +
                                  std::to_string(sega.num_edits()) + ") x " + std::to_string(noise.size(0)) +
                                  " rows, got " + std::to_string(text_states.size(0)));
    }
    semantic.emplace(sega);
  }
  const size_t copies = semantic ? static_cast<size_t>(2 + request.semantic_guidance->num_edits()) : 2;
  const auto& timesteps = scheduler->timesteps();
  for (size_t i = 0; i < timesteps.size(); ++i) {
    torch::Tensor model_input = semantic ? torch::cat(std::vector<torch::Tensor>(copies, latents), 0)
                                : guided ? torch::cat({latents, latents}, 0)
                                         : latents;
    model_input = scheduler->scale_model_input(model_input, i).to(model_.dtype).contiguous(memory_format);
    torch::Tensor t =
        torch::full({1}, timesteps[i], torch::TensorOptions().dtype(torch::kFloat32).device(model_.device));
    torch::Tensor noise_pred =
        unet_per_image(model_.unet, *graphs_, model_input, t, context, noise.size(0), model_.device.is_cpu())
            .to(torch::kFloat32);
    if (semantic) {
      noise_pred = semantic->guide(static_cast<int64_t>(i), noise_pred, request.guidance_scale);
    } else if (guided) {
      auto parts = noise_pred.chunk(2, 0);
      noise_pred = parts[0] + request.guidance_scale * (parts[1] - parts[0]);
    }
    latents = scheduler->step(noise_pred, i, latents);
    if (on_step) on_step(i, latents);
  }
  return latents;
}

torch::Tensor StableDiffusionPipeline::decode(const torch::Tensor& latents) {
  torch::NoGradGuard no_grad;
  torch::Tensor z = (latents / model_.vae->config().scaling_factor).to(model_.vae_dtype);
  if (model_.channels_last) z = z.contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor image;
  if (model_.device.is_cpu()) {
    // One image at a time: the VAE's mid-block attention and up-sampling also round differently in a batch on
    // the CPU (3.5e-6 measured), and decoding costs the same per image either way.
    std::vector<torch::Tensor> images;
    for (int64_t i = 0; i < z.size(0); ++i) images.push_back(model_.vae->decode(z.slice(0, i, i + 1)));
    image = torch::cat(images, 0).to(torch::kFloat32);
  } else {
    image = model_.vae->decode(z).to(torch::kFloat32);
  }
  image = (image / 2 + 0.5).clamp(0, 1);
  return image.permute({0, 2, 3, 1}).contiguous().to(torch::kCPU);  // [B, 3, H, W] -> [B, H, W, 3]
}

namespace {

// On the CPU an image must not depend on the batch it was made in (a resumed run, or another --batch-size, remakes
// images alone or in other company). oneDNN's convolutions pick batch-dependent kernels whose sums round
// differently (measured on tiny-sd2: one UNet call differs by up to 2e-6 between a sample alone and in a batch of
// 8, enough to flip pixels by 1/255 after 50 steps), so generation turns them off for its duration; LibTorch's own
// convolutions are batch-invariant and, measured on tiny-sd2 and the built-in model, no slower on 2 cores.
class BatchInvariantCpuKernels {
 public:
  explicit BatchInvariantCpuKernels(bool cpu) : restore_(cpu && at::globalContext().userEnabledMkldnn()) {
    if (restore_) at::globalContext().setUserEnabledMkldnn(false);
  }
  ~BatchInvariantCpuKernels() {
    if (restore_) at::globalContext().setUserEnabledMkldnn(true);
  }
  BatchInvariantCpuKernels(const BatchInvariantCpuKernels&) = delete;
  BatchInvariantCpuKernels& operator=(const BatchInvariantCpuKernels&) = delete;

 private:
  bool restore_;
};

}  // namespace

torch::Tensor StableDiffusionPipeline::generate(const GenerationRequest& request, const StepCallback& on_step) {
  validate_request(request, model_);
  const SemanticGuidance* semantic = request.semantic_guidance && request.semantic_guidance->num_edits() > 0
                                         ? request.semantic_guidance.get()
                                         : nullptr;
  if (semantic) semantic->validate(request.prompts.size(), request.steps, request.guidance_scale);
  const BatchInvariantCpuKernels invariant(model_.device.is_cpu());
  const int64_t width = request.width ? request.width : model_.native_size();
  const int64_t height = request.height ? request.height : model_.native_size();
  torch::Tensor cond = encode_prompts(request.prompts);
  if (request.transform_text_states) cond = request.transform_text_states(cond).to(cond.scalar_type());
  torch::Tensor text_states = cond;
  if (request.guidance_scale > 1.0) {
    torch::Tensor uncond = encode_prompts({request.negative_prompt});
    text_states = torch::cat({uncond.expand({cond.size(0), -1, -1}), cond}, 0);  // [2B, L, D]
  }
  if (semantic) {
    // The concepts' states [K B, L, D], concept-major; each distinct concept text is encoded once.
    std::vector<std::string> texts;
    std::vector<int64_t> rows;
    for (int64_t c = 0; c < semantic->num_edits(); ++c) {
      for (const auto& image : semantic->edits) {
        const std::string& text = image[static_cast<size_t>(c)].prompt;
        auto at = std::find(texts.begin(), texts.end(), text);
        rows.push_back(at - texts.begin());
        if (at == texts.end()) texts.push_back(text);
      }
    }
    torch::Tensor concepts = encode_prompts(texts).index_select(0, torch::tensor(rows).to(model_.device));
    text_states = torch::cat({text_states, concepts}, 0);  // [(2 + K) B, L, D]
  }
  torch::Tensor noise = initial_noise(request.seeds, height, width);
  torch::Tensor latents = denoise(text_states, noise, request, on_step);
  return decode(latents);
}

}  // namespace fairdiff
