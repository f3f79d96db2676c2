"""The ratio table of bench/side_by_side.sh from its JSON files: fairdiff (CUDA graphs on / off) against the
reference, per workload. Usage: python3 bench/side_by_side_table.py OUT_DIR"""
import json
import os
import sys


def load(path):
    return json.load(open(path)) if os.path.exists(path) else None


def main():
    out = sys.argv[1]
    lines = ["| workload | fairdiff | graphs off | reference | ratio | ratio, graphs off |", "|---|---|---|---|---|---|"]
    ref = load(os.path.join(out, "ref_generate.json"))
    rows = [("pndm50_b1", "PNDM 50 steps, batch 1"), ("pndm50_b32", "PNDM 50 steps, batch 32"),
            ("dpm25_b32", "DPM-Solver++ 25 steps, batch 32")]
    for key, title in rows:
        on, off = load(os.path.join(out, f"fd_{key}_g1.json")), load(os.path.join(out, f"fd_{key}_g0.json"))
        r = ref["generate"].get(key) if ref else None
        if not on:
            continue
        cells = [title, f"{on['images_per_s']:.2f} images/s ({on['seconds_per_image']:.3f} s)",
                 f"{off['images_per_s']:.2f}" if off else "-", f"{r['images_per_s']:.2f}" if r else "-",
                 f"{on['images_per_s'] / r['images_per_s']:.2f}x" if r else "-",
                 f"{off['images_per_s'] / r['images_per_s']:.2f}x" if r and off else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    rf = load(os.path.join(out, "ref_finetune.json"))
    r = rf["dreambooth"] if rf else None
    off = load(os.path.join(out, "fd_dreambooth_no_graphs.json"))
    # The reference's row is a full-UNet step: LoRA gets no ratio against it.
    training_rows = [("fd_dreambooth.json", "DreamBooth, full UNet, bf16, batch 1+1, cached latents", off, True),
                     ("fd_dreambooth_no_graphs_no_fused_adamw.json", "same, graphs off and LibTorch's AdamW", None,
                      True),
                     ("fd_dreambooth_vae.json", "same, VAE encode every step", None, True),
                     ("fd_lora.json", "LoRA rank 4, cached latents", None, False)]
    for name, title, graphs_off, comparable in training_rows:
        fd = load(os.path.join(out, name))
        if not fd:
            continue
        memory = fd.get("peak_allocated_gib", fd.get("peak_memory_gib"))
        ratio = (lambda x: f"{x['steps_per_second'] / r['steps_per_s']:.2f}x") if r and comparable else (lambda x: "-")
        cells = [title, f"{fd['steps_per_second']:.2f} steps/s" + (f", {memory:.2f} GiB" if memory else ""),
                 f"{graphs_off['steps_per_second']:.2f}" if graphs_off else "-",
                 f"{r['steps_per_s']:.2f} steps/s, {r['peak_allocated_gib']:.2f} GiB" if r else "-",
                 ratio(fd), ratio(graphs_off) if graphs_off else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    if ref:
        lines.append("")
        lines.append(f"reference: diffusers {ref['diffusers']} on torch {ref['torch']}, {ref['gpu']}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
