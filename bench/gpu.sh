#!/usr/bin/env bash
# The CUDA path in one go, on a machine with an NVIDIA GPU and PyTorch 2.x (CUDA) for Python:
#   1. configures and builds imagine against PyTorch's own LibTorch (its CMake package),
#   2. runs the tests: the GPU ones (CudaTrainTest.*, CudaOptim.*) and the training suite,
#      or everything with GPU_TESTS=all,
#   3. times the `shakespeare` preset's training step side by side in one run: imagine eager
#      bf16, imagine --cuda-graph, PyTorch Python eager bf16 (SDPA + fused AdamW, the same
#      model, data and recipe: bench/python/gpt_reference.py) and the same under torch.compile,
#   4. trains the preset to the end with --cuda-graph (its quality: best validation loss).
#
#   bench/gpu.sh [quick]        (quick: fewer steps, no full training run)
#
# Environment: PYTHON (default python3, must import torch with CUDA), BENCH_DATA (the text;
# default tinyshakespeare), BUILD_DIR (default build-gpu), STEPS (timed steps, default 300),
# QUALITY_LIMIT (the full run's --time-limit, default 10m). A dry run of the script's own
# plumbing on a CPU machine: DEVICE=cpu SKIP_BUILD=1 BUILD_DIR=build bench/gpu.sh quick
# (Debian's LibTorch: no graph, no SDPA, no torch.compile; those rows say so).
# Writes bench/results/gpu-DATE.md and prints it. Nothing here runs in `make test`.
set -euo pipefail

MODE=${1:-full}
case "$MODE" in full | quick) ;; *) echo "usage: $0 [quick]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PY=${PYTHON:-python3}
BUILD=${BUILD_DIR:-build-gpu}
TEXT=${BENCH_DATA:-}
for c in "$TEXT" "$REPO/../shared/data/tinyshakespeare/input.txt" "$REPO/shared/data/tinyshakespeare/input.txt"; do
  if [ -n "$c" ] && [ -f "$c" ]; then TEXT=$c; break; fi
done
[ -f "$TEXT" ] || { echo "error: no tinyshakespeare input.txt found" >&2; echo "hint: set BENCH_DATA=FILE" >&2; exit 1; }
if [ "$MODE" = quick ]; then STEPS=${STEPS:-60}; else STEPS=${STEPS:-300}; fi
LIMIT=${QUALITY_LIMIT:-10m}

DEVICE=${DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then
  PY=${PYTHON:-/usr/bin/python3}
elif ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "error: $PY has no torch with a usable CUDA device" >&2
  echo "hint: run this on a GPU machine with PyTorch 2.x installed, or set PYTHON" >&2
  exit 1
fi
PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1 || echo "?")

# ---- 1. build ----
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== building against PyTorch $TORCH_VERSION's LibTorch ($PREFIX)" >&2
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" >&2
  cmake --build "$BUILD" -j "$(nproc)" >&2
fi
BIN=$REPO/$BUILD/imagine

# ---- 2. tests ----
echo "== tests" >&2
TEST_LOG=$(mktemp)
if [ "${GPU_TESTS:-gpu}" = all ]; then
  (cd "$BUILD" && ctest -j "$(nproc)" --timeout 900 --output-on-failure) | tee "$TEST_LOG" >&2 || true
else
  (cd "$BUILD" && ctest -j 4 --timeout 900 --output-on-failure -R 'Cuda|AdamW|ClipGradNorm|TorchRng|TrainRunTest|Precision') |
    tee "$TEST_LOG" >&2 || true
fi
TESTS=$(grep -E 'tests passed|tests failed' "$TEST_LOG" | tail -1)
SKIPPED=$(grep -c 'Skipped' "$TEST_LOG" || true)

# ---- 3. step time, side by side ----
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH" "$TEST_LOG"' EXIT
ARCH=(--n-layer 6 --n-head 6 --n-embd 384 --block-size 256 --batch-size 64 --dropout 0.2 --lr 1e-3
      --min-lr 1e-4 --beta2 0.99 --warmup-steps 100)
ours() {  # label, extra flags -> "tok/s"
  local out=$SCRATCH/$1; shift
  "$BIN" train text --data "$TEXT" --out "$out" --preset shakespeare --device "$DEVICE" --precision bf16 \
    --steps "$STEPS" --decay-steps 5000 --eval-every 0 --eval-iters 1 --log-every "$STEPS" --no-samples --quiet "$@" |
    head -1 >&2
  grep -o '"tok_per_s":[0-9.]*' "$out/metrics.jsonl" | tail -1 | cut -d: -f2
}
theirs() {  # extra flags -> "tok/s"
  "$PY" bench/python/gpt_reference.py --data "$TEXT" --device "$DEVICE" --precision bf16 "${PY_FAST[@]}" \
    "${ARCH[@]}" --steps "$STEPS" --decay-steps 5000 --eval-every 0 --eval-iters 1 --log-every "$STEPS" "$@" |
    tail -1 | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["tokens_per_s"])'
}
echo "== step time: $STEPS steps each" >&2
PY_FAST=(--attention sdpa --fused-adamw)
[ "$DEVICE" = cpu ] && PY_FAST=()
R_EAGER=$(ours eager)
R_GRAPH=$(ours graph --cuda-graph || echo 0)
P_EAGER=$(theirs)
P_COMPILE=$(theirs --compile || echo 0)
num() { awk -v r="$1" 'BEGIN { if (r > 0) printf "%.0f", r; else print "failed / n.a." }'; }
ms() { awk -v r="$1" 'BEGIN { if (r > 0) printf "%.2f", 64 * 256 * 1000 / r; else print "—" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f×", a / b; else print "—" }'; }

# ---- 3b. image families: epoch time, side by side ----
IMG=${BENCH_IMAGE_DATA:-/usr/share/datasets/fashion-mnist}
IMG_IDX=$IMG/train-images-idx3-ubyte.gz
IMG_ROWS=""
if [ -f "$IMG_IDX" ]; then
  for model in vae gan; do
    case $model in vae) ref=vae_reference.py ;; gan) ref=dcgan_reference.py ;; esac
    out=$SCRATCH/img-$model
    r_i=$("$BIN" train image --model "$model" --data "$IMG" --out "$out" --device "$DEVICE" --precision bf16 \
      --steps "$STEPS" --batch-size 64 --eval-every 0 --eval-samples 128 --quiet |
      sed -nE 's/^trained [0-9]+ steps in [^ ]+ \(([0-9.]+) images\/s\).*/\1/p' | tail -1)
    r_p=$("$PY" "bench/python/$ref" --data "$IMG_IDX" --device "$DEVICE" --precision bf16 --steps "$STEPS" \
      --warmup-steps $((STEPS / 10)) --batch-size 64 | tail -1 | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["images_per_s_all"])')
    IMG_ROWS+=$(awk -v m="$model" -v a="${r_i:-0}" -v b="${r_p:-0}" 'BEGIN {
      printf "| %s | %.0f | %.1f s | %.0f | %.1f s | %.2f× |", m, a, (a > 0 ? 60000 / a : 0), b, (b > 0 ? 60000 / b : 0), (b > 0 ? a / b : 0) }')$'\n'
  done
fi

# ---- 4. quality ----
QUALITY="(quick mode: not run)"
if [ "$MODE" = full ]; then
  echo "== the shakespeare preset to the end, --cuda-graph, --time-limit $LIMIT" >&2
  "$BIN" train text --data "$TEXT" --out "$SCRATCH/full" --preset shakespeare --device "$DEVICE" --precision bf16 \
    --cuda-graph --time-limit "$LIMIT" --no-samples --quiet | head -1 >&2
  QUALITY=$("$PY" - "$SCRATCH/full/config.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["training"]
print(f"best validation loss {t['best_val_loss']:.4f} at step {t['best_step']} of {t['step']} "
      "(nanoGPT's published shakespeare-char run: 1.4697)")
EOF
)
fi

DATE=$(date +%Y-%m-%d)
RESULT=$REPO/bench/results/gpu-$DATE.md
{
  echo "# The CUDA path: shakespeare preset ($DATE)"
  echo
  echo "- GPU: $GPU; host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
  echo "- imagine $(git rev-parse --short HEAD 2>/dev/null || echo '?') built against PyTorch $TORCH_VERSION's LibTorch; Python reference on the same torch"
  echo "- Tests: ${TESTS:-?} ($SKIPPED skipped)"
  echo "- Model: 6 layers, 6 heads, 384 wide, context 256, batch 64, dropout 0.2, bf16 autocast; $STEPS steps each, tokens/s over the step times (evaluation excluded)"
  echo
  echo "| implementation | tokens/s | ms/step | imagine --cuda-graph vs this |"
  echo "|---|---|---|---|"
  echo "| imagine eager (fused AdamW, SDPA) | $(num "$R_EAGER") | $(ms "$R_EAGER") | $(ratio "$R_GRAPH" "$R_EAGER") |"
  echo "| imagine --cuda-graph | $(num "$R_GRAPH") | $(ms "$R_GRAPH") | 1.00× |"
  echo "| PyTorch Python eager (SDPA, fused AdamW) | $(num "$P_EAGER") | $(ms "$P_EAGER") | $(ratio "$R_GRAPH" "$P_EAGER") |"
  echo "| PyTorch Python torch.compile | $(num "$P_COMPILE") | $(ms "$P_COMPILE") | $(ratio "$R_GRAPH" "$P_COMPILE") |"
  echo
  if [ -n "$IMG_ROWS" ]; then
    echo "Image families, fashion-mnist 28x28, batch 64, bf16, $STEPS steps (epoch = 60,000 images):"
    echo
    echo "| model | imagine images/s | imagine epoch | PyTorch eager images/s | PyTorch epoch | imagine / PyTorch |"
    echo "|---|---|---|---|---|---|"
    printf '%s' "$IMG_ROWS"
    echo
  fi
  echo "Quality: $QUALITY"
} | tee "$RESULT"
