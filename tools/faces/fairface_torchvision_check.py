#!/usr/bin/env python3
"""Checks fairdiff's FairFace ResNet-34 (src/faces/fairface_resnet34.cpp) against torchvision's resnet34.

Run on a host with PyTorch and torchvision (the GPU host):

    python3 tools/faces/fairface_torchvision_check.py --build-dir build [--out /tmp/fairface_check]

It builds torchvision.models.resnet34(num_classes=18) with random weights (fixed seed, batch-norm statistics
randomised too so they matter), saves the state dict with torch.save (zip format) and as safetensors when the
safetensors package is present, a random input batch and torchvision's logits (eval mode, float32, CPU and
CUDA when available), then runs the C++ test FairFaceResNet34.MatchesTorchvisionReference of the build's
test_faces with FAIRDIFF_FAIRFACE_REFERENCE pointing at those files. The C++ side must agree within 1e-4.
"""
import argparse
import os
import subprocess
import sys

import torch
import torchvision


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", default="build", help="fairdiff build folder holding tests/test_faces")
    parser.add_argument("--out", default="/tmp/fairface_torchvision_check", help="where to write the reference")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.manual_seed(1234)
    model = torchvision.models.resnet34(num_classes=18)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    model.eval()
    state = model.state_dict()
    # A plain dict, as docs/classifiers.md tells users to re-save FairFace's file: LibTorch's unpickler cannot
    # read collections.OrderedDict (it turns it into None). ordered.pt checks that this gets a clear error.
    torch.save(dict(state), os.path.join(args.out, "weights.pt"))
    torch.save(state, os.path.join(args.out, "ordered.pt"))
    try:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(args.out, "weights.safetensors"))
    except ImportError:
        print("safetensors not installed: checking the .pt file only")

    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x)
    reference = {"input": x, "logits": expected}
    if torch.cuda.is_available():
        # The CUDA comparison is CUDA against CUDA: cuDNN's float32 convolutions differ from the CPU's by
        # ~1e-4 on these logits (printed below), and TF32 (PyTorch's default for convolutions) by ~0.1.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        with torch.no_grad():
            cuda_logits = model.cuda()(x.cuda()).cpu()
        print(f"torchvision CPU vs CUDA max|diff| {float((cuda_logits - expected).abs().max()):.3g} "
              f"(max|logit| {float(expected.abs().max()):.3g})")
        reference["logits_cuda"] = cuda_logits
    # Tensors go in a dict saved with torch.save: LibTorch's torch::pickle_load reads that zip format.
    torch.save(reference, os.path.join(args.out, "reference.pt"))

    test_binary = os.path.join(args.build_dir, "tests", "test_faces")
    if not os.path.exists(test_binary):
        sys.exit(f"{test_binary} not found: build it first (cmake --build {args.build_dir} --target test_faces)")
    env = dict(os.environ, FAIRDIFF_FAIRFACE_REFERENCE=args.out)
    result = subprocess.run([test_binary, "--gtest_filter=FairFaceResNet34.MatchesTorchvisionReference"], env=env)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
