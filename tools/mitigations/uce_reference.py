#!/usr/bin/env python3
"""Runs the published UCE debiasing edit on a model and dumps the edited cross-attention weights.

The reference for fairdiff's closed-form cross-attention editing (src/mitigate/uce.cpp) is `edit_model` of
train-scripts/train_debias.py in github rohitgandikota/unified-concept-editing (Gandikota et al. 2024, "Unified
Concept Editing in Diffusion Models"; commit 35e91e2). This tool imports that file as it is published and calls
its `edit_model`; it reimplements none of it. Two things of the script are replaced, because they measure images
rather than edit weights:

- at import, the script loads openai/clip-vit-base-patch32 for its measurement loop: CLIPModel/CLIPProcessor's
  from_pretrained return None while the file is imported (nothing is downloaded);
- `get_ratios` (generate images, classify them with CLIP) is replaced by a function that returns fixed "measured"
  attribute ratios on its first call and the desired ratios after, so `edit_model` runs exactly one closed-form
  edit with weights 0.1 * (desired - measured) and stops. The weights it used are recorded.

Each setting runs twice: in float64 (the default dtype set to float64 too, since the script builds its identity
matrix with torch.eye's default dtype), which fairdiff's float64 edit must match closely, and in float32 as the
script runs it (on CUDA when there is one), to show how far the published float32 arithmetic is from the exact one.

    python3 tools/mitigations/uce_reference.py --reference .ref/uce --model .ref/uce/tiny-sd2 --out DIR

writes DIR/uce_reference.safetensors (keys "<setting>.<f64|f32>.<diffusers key>" for every attn2 to_k/to_v weight
after the edit, and "text.<i>" for the float64 last hidden state [77, D] of prompt i of the settings) and
DIR/uce_reference.json (the settings, the prompts, the weights edit_model used, versions). The reference tree
(--reference) holds unified-concept-editing/train-scripts/train_debias.py and a diffusers source tree (diffusers/src,
or ../diffusers/src beside it); the GPU host has torch and transformers but not diffusers. tests/data/mitigations/
holds this tool's output from the GPU host (torch 2.11, transformers 5.17, diffusers 0.40.0.dev0 at 58eb52c, with
.ref/uce carried to it: see .ref/uce/SOURCES.txt for where each part comes from).
"""
import argparse
import importlib.util
import json
import os
import sys

import torch

# The settings fairdiff's test repeats. "measured" is what the replaced get_ratios returns on its first call; the
# script's edit weights are then step 0.1 * (1/n - measured). A concept already within 0.05 of balance gets zero
# weights and is added to the preserved prompts by the script itself.
SETTINGS = {
    # The script's own defaults (its __main__): lamb 0.5, erase_scale 1, preserve_scale 0.1, to_k edited too.
    "main": {
        "concepts": [
            {"prompt": "a photo of a doctor",
             "attributes": ["a photo of a male doctor", "a photo of a female doctor"],
             "measured": [0.8, 0.2]},
            {"prompt": "nurse",
             "attributes": ["white male nurse", "black male nurse", "white female nurse", "black female nurse"],
             "measured": [0.05, 0.0, 0.75, 0.2]},
            {"prompt": "portrait of a CEO of an important company",
             "attributes": ["portrait of a male CEO of an important company",
                            "portrait of a female CEO of an important company"],
             "measured": [0.5, 0.5]},
        ],
        "preserve": ["a photo of a teacher", "an astronaut riding a horse"],
        "lamb": 0.5, "erase_scale": 1.0, "preserve_scale": 0.1, "with_to_k": True,
    },
    # No preserved prompts (the script then preserves the empty prompt), other scales, to_v alone.
    "no_preserve": {
        "concepts": [
            {"prompt": "a photo of a doctor",
             "attributes": ["a photo of a male doctor", "a photo of a female doctor"],
             "measured": [0.3, 0.7]},
            {"prompt": "an Indian chef in a kitchen",
             "attributes": ["an Indian male chef in a kitchen", "an Indian female chef in a kitchen"],
             "measured": [1.0, 0.0]},
        ],
        "preserve": None,
        "lamb": 0.1, "erase_scale": 0.7, "preserve_scale": 0.3, "with_to_k": False,
    },
}


def load_reference_module(path):
    """Imports train_debias.py without its network download (see the module docstring)."""
    import transformers
    patched = []
    for cls in (transformers.CLIPModel, transformers.CLIPProcessor):
        patched.append((cls, cls.__dict__.get("from_pretrained")))
        cls.from_pretrained = classmethod(lambda cls_, *a, **k: None)
    try:
        spec = importlib.util.spec_from_file_location("uce_train_debias", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for cls, own in patched:  # restore: the class's own attribute, or the inherited one
            if own is None:
                delattr(cls, "from_pretrained")
            else:
                cls.from_pretrained = own
    return module


def fixed_ratios(measured):
    calls = {"n": 0}

    def get_ratios(ldm_stable, prev_ratio, ratio_diff, max_ratio_gap, concepts, classes, num_samples=10,
                   num_loops=3):
        calls["n"] += 1
        if calls["n"] == 1:
            return [torch.tensor(m) for m in measured]
        return [torch.ones(len(c)) / len(c) for c in classes]

    return get_ratios


def load_pipeline(model_dir, dtype, device):
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, torch_dtype=dtype, safety_checker=None)
    return pipe.to(device)


def edited_weights(unet):
    out = {}
    for name, module in unet.named_modules():
        if ".attn2." in name + "." and (name.endswith("to_k") or name.endswith("to_v")):
            out[name + ".weight"] = module.weight.detach().cpu().contiguous().clone()
    return out


def run_setting(module, model_dir, setting, dtype, device):
    torch.set_default_dtype(dtype)
    try:
        pipe = load_pipeline(model_dir, dtype, device)
        module.get_ratios = fixed_ratios([c["measured"] for c in setting["concepts"]])
        _, weights, init_ratios, ratios = module.edit_model(
            ldm_stable=pipe,
            old_text_=[c["prompt"] for c in setting["concepts"]],
            new_text_=[c["attributes"] for c in setting["concepts"]],
            add=False,
            retain_text_=setting["preserve"],
            lamb=setting["lamb"],
            erase_scale=setting["erase_scale"],
            preserve_scale=setting["preserve_scale"],
            with_to_k=setting["with_to_k"],
            num_images=1)
        return edited_weights(pipe.unet), [[float(x) for x in w] for w in weights]
    finally:
        torch.set_default_dtype(torch.float32)


def text_states(model_dir, prompts):
    """Token ids, attention-mask lengths and float64 last hidden states, as the script computes them."""
    from transformers import CLIPTextModel, CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
    encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder", torch_dtype=torch.float64)
    tokens = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        states = encoder(tokens.input_ids)[0]
    return tokens.input_ids, tokens.attention_mask.sum(dim=1), states


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=".ref/uce", help="folder with unified-concept-editing/ and diffusers/")
    parser.add_argument("--model", default=".ref/uce/tiny-sd2", help="a Stable Diffusion model in the diffusers layout")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args()

    for candidate in (os.path.join(args.reference, "diffusers", "src"),
                      os.path.join(args.reference, "..", "diffusers", "src")):
        if os.path.isdir(os.path.join(candidate, "diffusers")):
            sys.path.insert(0, os.path.abspath(candidate))
            break
    import diffusers
    import transformers
    from safetensors.torch import save_file

    script = os.path.join(args.reference, "unified-concept-editing", "train-scripts", "train_debias.py")
    module = load_reference_module(script)
    cuda = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False

    tensors = {}
    report = {"reference": "rohitgandikota/unified-concept-editing@35e91e28df2f2fbcbef105fa079a436641a5142b "
                           "train-scripts/train_debias.py edit_model",
              "model": os.path.basename(os.path.normpath(args.model)),
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "diffusers": diffusers.__version__},
              "f32_device": cuda, "settings": {}}
    prompts = []
    for name, setting in SETTINGS.items():
        entry = dict(setting)
        for tag, dtype, device in (("f64", torch.float64, "cpu"), ("f32", torch.float32, cuda)):
            weights, used = run_setting(module, args.model, setting, dtype, device)
            for key, value in weights.items():
                tensors[f"{name}.{tag}.{key}"] = value
            entry[f"weights_{tag}"] = used
            print(f"{name} {tag}: {len(weights)} edited weights, edit weights {used}", flush=True)
        report["settings"][name] = entry
        for c in setting["concepts"]:
            prompts += [c["prompt"]] + c["attributes"]
        prompts += setting["preserve"] or [""]
    prompts = list(dict.fromkeys(prompts))
    ids, lengths, states = text_states(args.model, prompts)
    report["prompts"] = prompts
    report["token_counts"] = [int(n) for n in lengths]
    tensors["text.input_ids"] = ids.contiguous()
    for i in range(len(prompts)):
        tensors[f"text.{i}"] = states[i].contiguous()

    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "uce_reference.safetensors"))
    with open(os.path.join(args.out, "uce_reference.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print("wrote", len(tensors), "tensors to", args.out)


if __name__ == "__main__":
    main()
