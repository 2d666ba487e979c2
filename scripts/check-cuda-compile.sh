#!/usr/bin/env bash
# Compiles imagine's GPU-only code (IMAGINE_WITH_CUDA) without a GPU and without a CUDA
# LibTorch: the sources that change under IMAGINE_WITH_CUDA are checked for syntax and
# types against this LibTorch's CUDA headers (Debian's libtorch-dev ships ATen/cuda and
# c10/cuda) and the CUDA toolkit's headers. Nothing is linked or run. `make test` runs it
# (CTest: CudaCodeCompiles), skipped where the headers are missing.
#   scripts/check-cuda-compile.sh [CUDA_INCLUDE_DIR]   (default /usr/local/cuda/include)
set -euo pipefail
cd "$(dirname "$0")/.."
cuda_inc=${1:-/usr/local/cuda/include}
# Exit 77 (CTest's "skipped") where there is nothing to compile against.
if [[ ! -f "$cuda_inc/cuda_runtime_api.h" ]]; then
  echo "skipped: no CUDA toolkit headers in $cuda_inc" >&2
  echo "hint: install the CUDA toolkit, or pass its include folder" >&2
  exit 77
fi
if [[ ! -f /usr/include/ATen/cuda/CUDAGraph.h ]]; then
  echo "skipped: this LibTorch has no CUDA headers (/usr/include/ATen/cuda)" >&2
  exit 77
fi
# Debian's headers lack the one that c10_cuda's CMake build generates; it only says the
# library is shared.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
mkdir -p "$shim/c10/cuda/impl"
echo '#define C10_CUDA_BUILD_SHARED_LIBS' >"$shim/c10/cuda/impl/cuda_cmake_macros.h"
files=(src/train/cuda_graph.cpp src/train/trainer.cpp src/train/optim.cpp src/core/runtime.cpp)
# c10d's NCCL process group (--dist-backend nccl) where the toolkit has NCCL's header.
defs=(-DIMAGINE_WITH_CUDA=1)
if [[ -f "$cuda_inc/nccl.h" ]]; then
  defs+=(-DUSE_C10D_NCCL=1)
  files+=(src/train/distributed.cpp)
fi
for f in "${files[@]}"; do
  echo "checking $f (${defs[*]})"
  g++ -std=c++17 -fsyntax-only -Wall -Wextra -Wno-unused-parameter "${defs[@]}" \
    -D_GLIBCXX_USE_CXX11_ABI=1 -Isrc -Iinclude -I/usr/include/torch/csrc/api/include \
    -isystem "$shim" -isystem "$cuda_inc" "$f"
done
echo "ok: ${#files[@]} files compile with ${defs[*]} against LibTorch $(grep -o "TORCH_VERSION_M[AI][JN]OR [0-9]*" /usr/include/torch/csrc/api/include/torch/version.h | grep -o "[0-9]*$" | paste -sd.) CUDA headers"
