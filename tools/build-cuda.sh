#!/usr/bin/env bash
# The CUDA build (CMake preset `cuda`) under build/cuda: every target against the torch wheel's
# CUDA LibTorch, NCCL process groups and this machine's CUDA 13 toolkit (/usr/local/cuda), then
# the checks that run without a GPU (tests/tools/cuda_build_test.sh). Run tools/setup.sh first.
#   tools/build-cuda.sh              optimised, as for a GPU machine
#   tools/build-cuda.sh --check      -O0, the binary alone (the tests' sources are those of the CPU
#                                    build): compile and link only, as CI does (faster to build)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] ||
  { echo "tools/build-cuda.sh: needs the CUDA 13 toolkit (nvcc) under /usr/local/cuda" >&2; exit 1; }

tools/install-wheels.sh requirements-cuda.txt
torch_root=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch

flags=() targets=()
if [ "${1:-}" = "--check" ]; then flags+=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O0); targets+=(--target longnet); fi
PATH=/usr/local/cuda/bin:$PATH cmake --preset cuda -DLONGNET_TORCH_ROOT="$torch_root" "${flags[@]}" >/dev/null
cmake --build build/cuda "${targets[@]}"
bash tests/tools/cuda_build_test.sh build/cuda/tools/longnet
