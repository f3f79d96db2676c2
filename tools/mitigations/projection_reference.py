#!/usr/bin/env python3
"""Reference outputs for fairdiff's text-embedding projection (mitigate/embedding_projection.h).

The calibration of Chuang et al. 2023 as its authors apply it to Stable Diffusion (github chingyaoc/debias_vl,
generative/main.py, commit adccbe6): their `get_M` (imported from their main.py, not restated here) over the
unit-length end-of-text states of positive pairs "A photo of a male {cls}." / "A photo of a female {cls}.", then
P = inv(lam * M + I) and the prompt states multiplied by P.T, as their __main__ does. Run on the built-in model's text encoder in
fp32 on the CPU; writes P (float64), the prompt's states and the projected states to
tests/data/mitigations/projection_reference.safetensors, and the prompts and pairs to projection_reference.json.

Usage (needs torch, transformers, safetensors, numpy, scikit-learn; diffusers, which their main.py imports, from
--diffusers-src):
  python3 tools/mitigations/projection_reference.py --debias-vl DEBIAS_VL --diffusers-src DIFFUSERS/src \
      --model models/builtin --out tests/data/mitigations
"""
import argparse
import json
import os
import sys

CLASSES = ["doctor", "nurse", "chief executive officer"]
PROMPT = "A photo of a doctor."
LAMBDA = 500.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--debias-vl", required=True, help="a checkout of chingyaoc/debias_vl")
    parser.add_argument("--diffusers-src", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, args.diffusers_src)
    sys.path.insert(0, os.path.join(args.debias_vl, "generative"))
    import numpy as np
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTokenizer

    # Their main.py imports scikit-learn's TruncatedSVD and tqdm at module level for its image loop; get_M uses
    # neither. On a host without them, empty stand-ins let the module import (get_M is still their code).
    import importlib.util
    import types
    if importlib.util.find_spec("sklearn") is None:
        sklearn = types.ModuleType("sklearn")
        sklearn.decomposition = types.ModuleType("sklearn.decomposition")
        sklearn.decomposition.TruncatedSVD = None
        sys.modules.update({"sklearn": sklearn, "sklearn.decomposition": sklearn.decomposition})
    if importlib.util.find_spec("tqdm") is None:
        tqdm = types.ModuleType("tqdm")
        tqdm.auto = types.ModuleType("tqdm.auto")
        tqdm.auto.tqdm = lambda x, **_: x
        sys.modules.update({"tqdm": tqdm, "tqdm.auto": tqdm.auto})
    import main as debias_vl  # their generative/main.py: get_A, get_M

    tokenizer = CLIPTokenizer.from_pretrained(args.model, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder").float().eval()

    # As their __main__: the positive pairs, the end-of-text states (argmax of the ids), normalised.
    candidate_prompt, S, counter = [], [], 0
    for cls in CLASSES:
        candidate_prompt += ["A photo of a male {}.".format(cls), "A photo of a female {}.".format(cls)]
        S += [[counter, counter + 1]]
        counter += 2
    candidate_input = tokenizer(candidate_prompt, padding="max_length", max_length=tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
    with torch.no_grad():
        candidate_embeddings = text_encoder(candidate_input.input_ids)[0]
    candidate_embeddings = candidate_embeddings[torch.arange(candidate_embeddings.shape[0]),
                                                candidate_input["input_ids"].argmax(-1)]
    candidate_embeddings = F.normalize(candidate_embeddings, dim=-1).cpu().numpy()
    M = debias_vl.get_M(candidate_embeddings, S)
    G = LAMBDA * M + np.eye(M.shape[0])
    P = torch.tensor(np.linalg.inv(G))

    text_input = tokenizer([PROMPT], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                           return_tensors="pt")
    with torch.no_grad():
        text_embeddings = text_encoder(text_input.input_ids)[0]
    projected = torch.matmul(text_embeddings, P.T.float())

    os.makedirs(args.out, exist_ok=True)
    save_file({"P": P.contiguous(), "states": text_embeddings.contiguous(), "projected": projected.contiguous()},
              os.path.join(args.out, "projection_reference.safetensors"))
    with open(os.path.join(args.out, "projection_reference.json"), "w") as f:
        json.dump({"prompts": candidate_prompt, "pairs": S, "lambda": LAMBDA, "prompt": PROMPT,
                   "source": "github.com/chingyaoc/debias_vl generative/main.py get_M (commit adccbe6)",
                   "torch": torch.__version__}, f, indent=1)
    print("P", tuple(P.shape), "max |P - I|", float((P - torch.eye(P.shape[0], dtype=P.dtype)).abs().max()),
          "max |projected - states|", float((projected - text_embeddings).abs().max()))


if __name__ == "__main__":
    main()
