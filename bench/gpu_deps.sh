# Sourced by bench/run_gpu.sh and bench/side_by_side.sh on the GPU host (no package registry there): unpacks the
# Debian .deb files carried in .deps/debs into .deps/root once, puts their libraries on LD_LIBRARY_PATH, and sets
# ROOT and TORCH_PREFIX (the host PyTorch's LibTorch) for cmake. Run from the repository root.
ROOT="$PWD/.deps/root"
if [ ! -d "$ROOT/usr/include/unicode" ]; then
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$ROOT"; done
fi
export LD_LIBRARY_PATH="$ROOT/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
TORCH_PREFIX="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
