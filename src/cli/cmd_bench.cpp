// fairdiff bench: the benchmarks (FAIRDIFF_BENCH), and bench generate: throughput of the txt2img pipeline
// (images/s, s/image, achieved TFLOP/s).
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>

#include "cli/args.h"
#include "cli/bench_profile.h"
#include "cli/options.h"
#include "cli/subcommand.h"
#include "core/device.h"
#include "core/error.h"
#include "core/hub_cache.h"
#include "core/json.h"
#include "diffusion/cuda/fused_ops.h"
#include "diffusion/flops.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff::cli {
namespace {

void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

// bench generate's settings; the initialisers are the defaults --help prints.
struct BenchGenerateSettings {
  std::filesystem::path model_dir;
  int64_t batch_size = 1;
  int64_t steps = 50;
  std::string scheduler = "pndm";
  double guidance_scale = 7.5;
  int64_t width = 0;  // 0: the model's native size
  int64_t height = 0;
  std::string device;  // empty: cuda when available, else cpu
  std::string dtype;   // empty: fp16 on CUDA, fp32 on CPU
  int64_t iterations = 3;
  int64_t warmup = 1;
  std::string memory_format = "auto";
  std::string vae_dtype = "auto";
  bool profile_kernels = false;
  std::filesystem::path json;
};

int run_bench_generate(const std::vector<std::string>& argv) {
  BenchGenerateSettings b;
  OptionTable table;
  table
      .value("model", "PATH",
             "model directory (e.g. from fairdiff model init --arch sd21-base), single-file .safetensors, or Hub id "
             "ORG/NAME",
             b.model_dir)
      .value("batch-size", "B", "images per batch", b.batch_size, 1, 1024)
      .value("steps", "N", "denoising steps", b.steps, 1, 1000)
      .choice("scheduler", "noise scheduler", b.scheduler, scheduler_names())
      .value("guidance", "G", "classifier-free guidance scale (<= 1 disables guidance)", b.guidance_scale, 0.0, 100.0,
             "guidance_scale")
      .value("width", "W", "image width (default: the model's native size)", b.width, 0, 4096)
      .value("height", "H", "image height (default: the model's native size)", b.height, 0, 4096)
      .value("device", "cpu|cuda", "compute device (default cuda if available, else cpu)", b.device)
      .choice("dtype", "compute dtype (default fp16 on CUDA, fp32 on CPU)", b.dtype, {"fp32", "fp16", "bf16"})
      .value("iterations", "K", "timed batches", b.iterations, 1, 1000)
      .value("warmup", "K", "untimed batches first", b.warmup, 0, 100)
      .choice("memory-format", "layout of the UNet and VAE activations (auto: channels-last at batch 1 on CUDA)",
              b.memory_format, {"auto", "channels_last", "contiguous"})
      .choice("vae-dtype", "VAE dtype (auto: fp32 under fp16 when the VAE asks to upcast)", b.vae_dtype,
              {"auto", "fp32", "fp16", "bf16"})
      .flag("profile-kernels", "print the kernels taking the most time in one guided UNet step", b.profile_kernels)
      .value("json", "FILE", "also write the figures as JSON", b.json);
  Args args("bench generate", "Measure generation throughput on random prompts' worth of work.", table.specs(), argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  table.read(args);
  if (b.model_dir.empty()) throw UsageError("bench generate: --model is required");
  b.model_dir = resolve_model_path(b.model_dir.string());  // a Hub id: its snapshot in the Hugging Face cache
  const std::string model_dir = b.model_dir.string();
  const int64_t batch = b.batch_size;
  const int64_t steps = b.steps;
  const std::string scheduler = b.scheduler;
  const double guidance = b.guidance_scale;
  const int64_t iterations = b.iterations;
  const int64_t warmup = b.warmup;
  torch::Device device = parse_device(b.device.empty() ? (torch::cuda::is_available() ? "cuda" : "cpu") : b.device);
  torch::Dtype dtype = parse_dtype(b.dtype.empty() ? (device.is_cuda() ? "fp16" : "fp32") : b.dtype);
  require_dtype_supported(device, dtype);
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);

  PipelineLoadOptions load_options;
  load_options.channels_last =
      b.memory_format == "auto" ? channels_last_pays(device, b.batch_size) : b.memory_format == "channels_last";
  if (b.vae_dtype != "auto") load_options.vae_dtype = parse_dtype(b.vae_dtype);
  StableDiffusionModel model = load_stable_diffusion(model_dir, device, dtype, load_options);
  StableDiffusionPipeline pipe(model);
  GenerationRequest request;
  request.steps = steps;
  request.scheduler = scheduler;
  request.guidance_scale = guidance;
  request.width = b.width;
  request.height = b.height;
  request.negative_prompt = "";
  for (int64_t i = 0; i < batch; ++i) {
    request.prompts.push_back("A photo of a CEO of an important company");
    request.seeds.push_back(static_cast<uint64_t>(i));
  }
  const int64_t width = request.width ? request.width : model.native_size();
  const int64_t height = request.height ? request.height : model.native_size();
  const int64_t f = model.vae->config().latent_scale_factor();

  table.with_flag_names([&] { validate_request(request, model); });
  for (int64_t i = 0; i < warmup; ++i) pipe.generate(request);
  synchronize(device);
  if (b.profile_kernels) {
    torch::NoGradGuard no_grad;
    torch::Tensor context = pipe.encode_prompts(std::vector<std::string>(2 * batch, request.prompts[0]));
    torch::Tensor sample = torch::randn({2 * batch, model.unet->config().in_channels, height / f, width / f},
                                        torch::TensorOptions().device(device).dtype(dtype));
    if (model.channels_last) sample = sample.contiguous(torch::MemoryFormat::ChannelsLast);
    torch::Tensor t = torch::full({1}, 500.0, torch::TensorOptions().device(device));
    std::printf("%s", profile_top_kernels(
                          [&] {
                            model.unet->forward(sample, t, context);
                            synchronize(device);
                          },
                          device.is_cuda())
                          .c_str());
  }
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; ++i) pipe.generate(request);
  synchronize(device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double images = static_cast<double>(batch * iterations);
  const double unet_evals_per_step = guidance > 1.0 ? 2.0 : 1.0;
  const double flops_per_image = unet_evals_per_step * steps * unet_flops(model.unet->config(), height / f, width / f) +
                                 vae_decode_flops(model.vae->config(), height / f, width / f);
  Json result{{"model", model_dir},
              {"device", device.str()},
              {"dtype", dtype_flag_name(dtype)},
              {"vae_dtype", dtype_flag_name(model.vae_dtype)},
              {"memory_format", model.channels_last ? "channels_last" : "contiguous"},
              {"cuda_graphs", device.is_cuda() && cuda_graphs_enabled()},
              {"fused_ops", device.is_cuda() && fused_kernels_compiled() ? fused_ops_spec() : "none"},
              {"scheduler", scheduler},
              {"steps", steps},
              {"batch_size", batch},
              {"width", width},
              {"height", height},
              {"iterations", iterations},
              {"seconds", seconds},
              {"images_per_s", images / seconds},
              {"seconds_per_image", seconds / images},
              {"unet_tflop_per_guided_step_per_image",
               unet_evals_per_step * unet_flops(model.unet->config(), height / f, width / f) / 1e12},
              {"vae_decode_tflop_per_image", vae_decode_flops(model.vae->config(), height / f, width / f) / 1e12},
              {"achieved_tflop_per_s", flops_per_image * images / seconds / 1e12}};
  std::printf("%s\n", result.dump(2).c_str());
  if (!b.json.empty()) write_json_file(b.json, result);
  return 0;
}

std::string bench_usage() {
  std::string text = "usage: fairdiff bench <what> [options]   (fairdiff bench <what> --help)\n\n";
  for (const auto& bench : benches()) {
    char line[256];
    std::snprintf(line, sizeof(line), "  %-10s %s\n", bench.name.c_str(), bench.summary.c_str());
    text += line;
  }
  return text;
}

int run_bench(const std::vector<std::string>& argv) {
  if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
    std::printf("%s", bench_usage().c_str());
    return 0;
  }
  for (const auto& bench : benches()) {
    if (!argv.empty() && argv[0] == bench.name)
      return bench.run(std::vector<std::string>(argv.begin() + 1, argv.end()));
  }
  throw UsageError("bench: expected one of the benchmarks below" +
                   std::string(argv.empty() ? "" : ", not '" + argv[0] + "'") + "\n" + bench_usage());
}

}  // namespace

FAIRDIFF_BENCH("generate", "images/s, s/image and achieved TFLOP/s of generation", run_bench_generate);
FAIRDIFF_SUBCOMMAND("bench", "bench generate|finetune|analyze: throughput of generation, fine-tuning, face analysis",
                    run_bench);

}  // namespace fairdiff::cli
