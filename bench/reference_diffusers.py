"""The reference side of bench/side_by_side.sh: diffusers (from its public source, carried as files; a benchmark
tool, never part of the product) on the host's PyTorch, timed on the same model folder and workloads as
`fairdiff bench generate` / `fairdiff bench finetune`.

Generation: StableDiffusionPipeline, fp16, 512x512, guidance 7.5 with negative prompt "", images decoded to
numpy (fairdiff's bench also decodes and copies to the host); one warm-up call, then timed calls.
DreamBooth: the UNet step of diffusers' train_dreambooth.py under accelerate's bf16 mixed precision (fp32 master
weights, autocast bf16 forward, torch.optim.AdamW), batch instance + class = 2 at 64x64 latents, the latents and
text states given (as fairdiff's cached-latents row).

Profile (--what profile): the reference's kernel time by kind (the same name rules as fairdiff's
`--profile-kernels`) for one guided UNet step at batch 32 in fp16 and one DreamBooth step.

Usage: python3 bench/reference_diffusers.py --model DIR --out JSON [--what generate|finetune|all|profile]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

GENERATE_ROWS = [
    # name, scheduler, steps, batch, timed iterations
    ("pndm50_b1", "pndm", 50, 1, 5),
    ("pndm50_b32", "pndm", 50, 32, 2),
    ("dpm25_b32", "dpmpp2m", 25, 32, 2),
]


def time_generation(model, rows):
    from diffusers import DPMSolverMultistepScheduler, PNDMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        model, torch_dtype=torch.float16, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    base_config = pipe.scheduler.config
    out = {}
    for name, scheduler, steps, batch, iterations in rows:
        if scheduler == "pndm":
            pipe.scheduler = PNDMScheduler.from_config(base_config)
        else:
            pipe.scheduler = DPMSolverMultistepScheduler.from_config(
                base_config, algorithm_type="dpmsolver++", solver_order=2
            )
        prompts = ["A photo of a CEO of an important company"] * batch

        def call():
            generators = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
            return pipe(
                prompts,
                negative_prompt=[""] * batch,
                num_inference_steps=steps,
                guidance_scale=7.5,
                generator=generators,
                output_type="np",
            )

        call()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            call()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        out[name] = {"images_per_s": batch * iterations / seconds, "seconds_per_image": seconds / (batch * iterations)}
        print(f"reference {name}: {out[name]['images_per_s']:.3f} images/s", flush=True)
    del pipe
    torch.cuda.empty_cache()
    return out


def time_dreambooth(model, warmup=5, iterations=30, profile=False):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32).to("cuda")
    unet.train()
    noise_scheduler = DDPMScheduler.from_pretrained(model, subfolder="scheduler")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=5e-6, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    generator = torch.Generator("cuda").manual_seed(0)
    latents = torch.randn(2, unet.config.in_channels, 64, 64, device="cuda", generator=generator)
    states = torch.randn(2, 77, unet.config.cross_attention_dim, device="cuda", generator=generator)

    def step():
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (2,), device="cuda")
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pred = unet(noisy, timesteps, states).sample
        # Prior preservation with weight 1: the instance and class halves' MSE summed.
        instance, prior = pred.float().chunk(2), noise.chunk(2)
        loss = F.mse_loss(instance[0], prior[0]) + F.mse_loss(instance[1], prior[1])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if profile:
        return profile_kernels("DreamBooth step", step)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "steps_per_s": iterations / seconds,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    print(f"reference dreambooth: {result['steps_per_s']:.2f} steps/s, {result['peak_allocated_gib']:.2f} GiB", flush=True)
    return result


def kernel_category(name):
    has = lambda *parts: any(p in name for p in parts)
    if has("flash", "fmha", "attention", "sdpa"):
        return "attention (SDPA)"
    if has("nchwToNhwc", "nhwcToNchw", "transpose", "Transpose"):
        return "layout conversions"
    if has("conv", "Conv", "fprop", "dgrad", "wgrad", "cudnn"):
        return "convolutions (cuDNN)"
    if has("gemm", "Gemm", "nvjet", "cutlass", "xmma", "Kernel2", "splitK"):
        return "matrix multiplies (cuBLAS)"
    if has("copy", "Copy", "cat", "Cat"):
        return "copies"
    if has("norm", "Norm", "welford", "Welford"):
        return "normalisations (LibTorch)"
    if has("reduce", "Reduce"):
        return "reductions"
    if has("elementwise", "vectorized"):
        return "element-wise (LibTorch)"
    return "other"


def profile_kernels(label, work):
    from torch.profiler import ProfilerActivity, profile

    work()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        work()
        torch.cuda.synchronize()
    kinds, total = {}, 0.0
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        us = event.device_time
        kinds[kernel_category(event.name)] = kinds.get(kernel_category(event.name), 0.0) + us
        total += us
    print(f"reference {label}: total kernel time {total / 1000:.1f} ms\nby kind:")
    for kind, us in sorted(kinds.items(), key=lambda item: -item[1]):
        print(f"{100 * us / total:6.1f}% {us / 1000:9.2f} ms  {kind}")
    return {"total_ms": total / 1000, "by_kind_ms": {k: v / 1000 for k, v in kinds.items()}}


def profile_reference(model):
    from diffusers import UNet2DConditionModel

    out = {}
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float16).to("cuda")
    sample = torch.randn(64, unet.config.in_channels, 64, 64, device="cuda", dtype=torch.float16)
    states = torch.randn(64, 77, unet.config.cross_attention_dim, device="cuda", dtype=torch.float16)
    t = torch.tensor([500.0], device="cuda")
    with torch.no_grad():
        out["unet_b32_guided"] = profile_kernels("guided UNet step, batch 32", lambda: unet(sample, t, states))
    del unet
    torch.cuda.empty_cache()
    out["dreambooth_step"] = time_dreambooth(model, profile=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--what", default="all", choices=["generate", "finetune", "all", "profile"])
    args = parser.parse_args()
    import diffusers

    torch.backends.cuda.matmul.allow_tf32 = False
    result = {"diffusers": diffusers.__version__, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    if args.what in ("generate", "all"):
        result["generate"] = time_generation(args.model, GENERATE_ROWS)
    if args.what in ("finetune", "all"):
        result["dreambooth"] = time_dreambooth(args.model)
    if args.what == "profile":
        result["profile"] = profile_reference(args.model)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
