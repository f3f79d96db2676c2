// fairdiff bench generate: throughput of the txt2img pipeline (images/s, s/image, achieved TFLOP/s).
#include <ATen/Context.h>
#include <torch/cuda.h>

#include <chrono>
#include <cstdio>

#include "cli/args.h"
#include "cli/bench_fused_ops.h"
#include "cli/bench_profile.h"
#include "cli/subcommand.h"
#include "core/device.h"
#include "core/error.h"
#include "core/json.h"
#include "diffusion/flops.h"
#include "diffusion/stable_diffusion.h"

namespace fairdiff::cli {
namespace {

void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
}

int run_bench_generate(const std::vector<std::string>& argv) {
  Args args(
      "bench generate", "Measure generation throughput on random prompts' worth of work.",
      {{"model", "DIR", "model directory (e.g. from fairdiff model init --arch sd21-base)"},
       {"batch-size", "B", "images per batch (default 1)"},
       {"steps", "N", "denoising steps (default 50)"},
       {"scheduler", "NAME", "pndm | ddim | euler | dpmpp2m (default pndm)"},
       {"guidance", "G", "guidance scale (default 7.5)"},
       {"width", "W", "image width (default: native)"},
       {"height", "H", "image height (default: native)"},
       {"device", "cpu|cuda", "device (default cuda if available, else cpu)"},
       {"dtype", "fp32|fp16|bf16", "compute dtype (default fp16 on CUDA, fp32 on CPU)"},
       {"iterations", "K", "timed batches (default 3)"},
       {"warmup", "K", "untimed batches first (default 1)"},
       {"memory-format", "FORMAT", "channels_last | contiguous (default contiguous)"},
       {"vae-dtype", "DTYPE", "auto | fp32 | fp16 | bf16 (default auto: fp32 under fp16 when the VAE asks to upcast)"},
       {"profile", "", "print the kernels taking the most time in one guided UNet step"},
       {"json", "FILE", "also write the figures as JSON"}},
      argv);
  if (args.help_requested()) {
    std::printf("%s", args.usage().c_str());
    return 0;
  }
  std::string model_dir = args.require("model");
  const int64_t batch = args.get_int("batch-size", 1, 1, 1024);
  const int64_t steps = args.get_int("steps", 50, 1, 1000);
  const std::string scheduler = args.get_choice("scheduler", "pndm", scheduler_names());
  const double guidance = args.get_double("guidance", 7.5, 0.0, 100.0);
  const int64_t iterations = args.get_int("iterations", 3, 1, 1000);
  const int64_t warmup = args.get_int("warmup", 1, 0, 100);
  torch::Device device = parse_device(args.get("device", torch::cuda::is_available() ? "cuda" : "cpu"));
  torch::Dtype dtype = parse_dtype(args.get("dtype", device.is_cuda() ? "fp16" : "fp32"));
  require_dtype_supported(device, dtype);
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);

  PipelineLoadOptions load_options;
  load_options.channels_last =
      args.get_choice("memory-format", "contiguous", {"channels_last", "contiguous"}) == "channels_last";
  const std::string vae_dtype = args.get_choice("vae-dtype", "auto", {"auto", "fp32", "fp16", "bf16"});
  if (vae_dtype != "auto") load_options.vae_dtype = parse_dtype(vae_dtype);
  StableDiffusionModel model = load_stable_diffusion(model_dir, device, dtype, load_options);
  StableDiffusionPipeline pipe(model);
  GenerationRequest request;
  request.steps = steps;
  request.scheduler = scheduler;
  request.guidance_scale = guidance;
  request.width = args.get_int("width", 0, 0, 4096);
  request.height = args.get_int("height", 0, 0, 4096);
  request.negative_prompt = "";
  for (int64_t i = 0; i < batch; ++i) {
    request.prompts.push_back("A photo of a CEO of an important company");
    request.seeds.push_back(static_cast<uint64_t>(i));
  }
  const int64_t width = request.width ? request.width : model.native_size();
  const int64_t height = request.height ? request.height : model.native_size();
  const int64_t f = model.vae->config().latent_scale_factor();

  for (int64_t i = 0; i < warmup; ++i) pipe.generate(request);
  synchronize(device);
  if (args.flag("profile")) {
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
  if (auto path = args.get("json")) write_json_file(*path, result);
  return 0;
}

int run_bench(const std::vector<std::string>& argv) {
  if (!argv.empty() && argv[0] == "generate")
    return run_bench_generate(std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "fused-ops")
    return run_bench_fused_ops(std::vector<std::string>(argv.begin() + 1, argv.end()));
  if (!argv.empty() && (argv[0] == "--help" || argv[0] == "-h")) {
    std::printf(
        "usage: fairdiff bench generate [options]   (fairdiff bench generate --help)\n"
        "       fairdiff bench fused-ops [options]  (fused CUDA kernels against LibTorch)\n");
    return 0;
  }
  throw UsageError("bench: expected 'generate' or 'fused-ops' (fairdiff bench generate --help)");
}

}  // namespace

FAIRDIFF_SUBCOMMAND("bench", "bench generate: images/s, s/image and achieved TFLOP/s", run_bench);

}  // namespace fairdiff::cli
