#!/usr/bin/env python3
"""Reference outputs for fairdiff's semantic guidance (SEGA, diffusion/semantic_guidance.h).

Runs diffusers' SemanticStableDiffusionPipeline (the implementation of Brack et al. 2023 that Fair Diffusion,
Friedrich et al. 2023, builds on) from a diffusers source tree on the tiny fixture model, in fp32 on the CPU, and
writes every image's initial noise, latents after each scheduler step, final latents and decoded image to
tests/data/mitigations/sega_reference.safetensors, with the settings in sega_reference.json.

Each image is its own pipeline call (batch 1): the reference shares one list of edit concepts across a batch,
whereas fairdiff gives every image its own edits, so the C++ test runs the images of a case as one batch and
compares each with its own call here.

The initial noise follows fairdiff's convention (StableDiffusionPipeline::initial_noise): one CPU generator per
image, torch.randn((1, C, h, w)), passed explicitly as `latents=`.

Usage (needs torch, transformers, safetensors; diffusers itself is imported from --diffusers-src):
  python3 tools/mitigations/sega_reference.py --diffusers-src DIFFUSERS/src --model ../shared/fixtures/tiny-sd2 \
      --out tests/data/mitigations
"""
import argparse
import json
import os
import sys

# Two cases. "pndm_pair": two images batched together in fairdiff, each with two concepts (Fair Diffusion's gender
# edit on image 0; on image 1 different scales, thresholds, weights and warm-ups, so that steps 2-3 take the
# reference's partial warm-up branch). "ddim_three": three concepts with different warm-ups (steps 1-2: two of
# three are warmed up, their weights renormalised), a cooldown on one concept, momentum 0.5.
# A concept without a cooldown ("cooldown_steps": None) never cools down, as with fairdiff's std::nullopt.
#
# SEGA's mask is discontinuous: an element whose |e_c| lies within ~1e-6 of its neighbour at a quantile cut joins or
# leaves the mask with the UNet's last-bit differences (LibTorch versions, batch sizes), and a whole-pipeline
# comparison then fails at that element whatever the implementation. The images are 16 x 16 (64 elements per
# channel, so wider gaps between sorted values) and the seeds were chosen, among 11..199, as those whose runs keep
# the widest gap at every cut (1.6e-5 for pndm_pair, 5.1e-5 for ddim_three, measured with fairdiff). The UNet's
# outputs of every step are saved too, so that fairdiff's guidance can also be checked on the reference's own
# estimates, which needs no such choice.
CASES = [
    {
        "name": "pndm_pair",
        "scheduler": "pndm",
        "steps": 10,
        "guidance_scale": 7.5,
        "negative_prompt": "",
        "size": 16,
        "momentum_scale": 0.3,
        "momentum_beta": 0.6,
        "images": [
            {
                "prompt": "A photo of a CEO of an important company",
                "seed": 22,
                "edits": [
                    {"prompt": "male person", "reverse": True, "guidance_scale": 4.0, "warmup_steps": 2,
                     "cooldown_steps": None, "threshold": 0.9, "weight": 1.0},
                    {"prompt": "female person", "reverse": False, "guidance_scale": 4.0, "warmup_steps": 2,
                     "cooldown_steps": None, "threshold": 0.9, "weight": 1.0},
                ],
            },
            {
                "prompt": "a photo of a black female nurse",
                "seed": 23,
                "edits": [
                    {"prompt": "female person", "reverse": True, "guidance_scale": 3.0, "warmup_steps": 2,
                     "cooldown_steps": None, "threshold": 0.9, "weight": 1.0},
                    {"prompt": "male person", "reverse": False, "guidance_scale": 5.0, "warmup_steps": 4,
                     "cooldown_steps": None, "threshold": 0.8, "weight": 2.0},
                ],
            },
        ],
    },
    {
        "name": "ddim_three",
        "scheduler": "ddim",
        "steps": 8,
        "guidance_scale": 6.0,
        "negative_prompt": "",
        "size": 16,
        "momentum_scale": 0.5,
        "momentum_beta": 0.6,
        "images": [
            {
                "prompt": "A photo of an Indian   male Doctor!!",
                "seed": 171,
                "edits": [
                    {"prompt": "old person", "reverse": False, "guidance_scale": 5.0, "warmup_steps": 1,
                     "cooldown_steps": 6, "threshold": 0.85, "weight": 1.0},
                    {"prompt": "smiling", "reverse": True, "guidance_scale": 2.5, "warmup_steps": 1,
                     "cooldown_steps": None, "threshold": 0.95, "weight": 2.0},
                    {"prompt": "a red hat", "reverse": False, "guidance_scale": 4.0, "warmup_steps": 3,
                     "cooldown_steps": None, "threshold": 0.9, "weight": 1.5},
                ],
            },
        ],
    },
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--diffusers-src", required=True, help="folder holding the diffusers package (its src/)")
    parser.add_argument("--model", required=True, help="the tiny fixture model (diffusers layout)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--diffusers-commit", default="", help="the diffusers commit, recorded in the json")
    args = parser.parse_args()

    sys.path.insert(0, os.path.abspath(args.diffusers_src))
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTokenizer

    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, UNet2DConditionModel
    from diffusers.pipelines.deprecated.semantic_stable_diffusion.pipeline_semantic_stable_diffusion import (
        SemanticStableDiffusionPipeline,
    )

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device("cpu")
    model = args.model
    tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae", torch_dtype=torch.float32)
    pndm = PNDMScheduler.from_pretrained(model, subfolder="scheduler")
    schedulers = {"pndm": pndm, "ddim": DDIMScheduler.from_config(pndm.config)}
    for module in (text_encoder, unet, vae):
        module.to(device).eval()

    tensors = {}
    for case in CASES:
        name = case["name"]
        pipe = SemanticStableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=schedulers[case["scheduler"]],
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        channels = unet.config.in_channels
        side = case["size"] // pipe.vae_scale_factor
        for j, image in enumerate(case["images"]):
            edits = image["edits"]
            noise = torch.randn(
                (1, channels, side, side), generator=torch.Generator("cpu").manual_seed(image["seed"]),
                dtype=torch.float32)
            steps = []

            def on_step(step_index, timestep, latents):
                steps.append(latents.detach().clone())

            cooldowns = [e["cooldown_steps"] for e in edits]
            with torch.no_grad():
                out = pipe(
                    prompt=image["prompt"],
                    height=case["size"],
                    width=case["size"],
                    num_inference_steps=case["steps"],
                    guidance_scale=case["guidance_scale"],
                    negative_prompt=case["negative_prompt"] or None,
                    latents=noise.clone(),
                    output_type="latent",
                    callback=on_step,
                    callback_steps=1,
                    editing_prompt=[e["prompt"] for e in edits],
                    reverse_editing_direction=[e["reverse"] for e in edits],
                    edit_guidance_scale=[e["guidance_scale"] for e in edits],
                    edit_warmup_steps=[e["warmup_steps"] for e in edits],
                    # The reference takes a list of ints or None for all; "none" for one concept is a step past
                    # the last iteration (PNDM runs steps + 1 of them).
                    edit_cooldown_steps=None if all(c is None for c in cooldowns) else [
                        c if c is not None else case["steps"] + 1 for c in cooldowns],
                    edit_threshold=[e["threshold"] for e in edits],
                    edit_momentum_scale=case["momentum_scale"],
                    edit_mom_beta=case["momentum_beta"],
                    edit_weights=[e["weight"] for e in edits],
                )
                latents = out.images
                decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
                decoded = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)[0]  # [H, W, 3]
            key = f"{name}.image{j}"
            tensors[f"{key}.init_noise"] = noise[0].contiguous()
            tensors[f"{key}.step_latents"] = torch.cat(steps, 0).contiguous()  # [T, C, h, w]
            tensors[f"{key}.latents"] = latents[0].contiguous()
            tensors[f"{key}.image"] = decoded.contiguous()
            # Per step: the UNet's estimates the guidance was computed from, and the semantic guidance it added
            # (noise = uncond + guidance_scale (text - uncond) + sem_guidance).
            tensors[f"{key}.uncond_estimates"] = pipe.uncond_estimates[: len(steps), 0].contiguous()  # [T, C, h, w]
            tensors[f"{key}.text_estimates"] = pipe.text_estimates[: len(steps), 0].contiguous()
            tensors[f"{key}.edit_estimates"] = pipe.edit_estimates[: len(steps), :, 0].contiguous()  # [T, K, C, h, w]
            tensors[f"{key}.sem_guidance"] = pipe.sem_guidance[: len(steps), 0].contiguous()
            print(f"{key}: {len(steps)} steps, |latents| max {latents.abs().max().item():.4f}, "
                  f"|sem guidance| max {pipe.sem_guidance.abs().max().item():.4f}", flush=True)
        tensors[f"{name}.timesteps"] = pipe.scheduler.timesteps.to(torch.float64).contiguous()

    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "sega_reference.safetensors"))
    info = {
        "generator": "tools/mitigations/sega_reference.py",
        "reference": "diffusers SemanticStableDiffusionPipeline (pipelines/deprecated/semantic_stable_diffusion)",
        "diffusers_version": diffusers.__version__,
        "diffusers_commit": args.diffusers_commit,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "device": "cpu",
        "dtype": "float32",
        "model": "fixtures/tiny-sd2",
        "noise": "torch.randn((1, C, h, w), generator=torch.Generator('cpu').manual_seed(seed)) per image",
        "cases": CASES,
    }
    with open(os.path.join(args.out, "sega_reference.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
