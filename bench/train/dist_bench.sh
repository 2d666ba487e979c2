#!/usr/bin/env bash
# Data-parallel training on one machine: N ranks x 1 thread (`--nproc N`, c10d Gloo over
# loopback) against 1 rank x N threads, the same global batch and recipe, side by side in
# one run, for the small CPU presets of every family.
#
#   bench/train/dist_bench.sh IMAGINE_BIN [quick]
#
# Throughput is the trainer's own (summed step times, evaluation excluded), as printed in
# the summary line; the bytes all-reduced per step come from metrics.jsonl. Each
# configuration runs twice, alternating, and the better run counts (these VMs are noisy).
# Writes bench/results/dist-DATE[-quick].md and prints it.
set -euo pipefail

usage() { echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
BIN=$1
MODE=${2:-full}
case "$MODE" in full | quick) ;; *) usage ;; esac
[ -x "$BIN" ] || { echo "error: $BIN is not an executable (build it with 'make build')" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEXT=${BENCH_DATA:-$REPO/../shared/data/tinyshakespeare/input.txt}
[ -f "$TEXT" ] || { echo "error: $TEXT not found (set BENCH_DATA)" >&2; exit 1; }
N=${BENCH_NPROC:-$(nproc)}
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

if [ "$MODE" = quick ]; then TEXT_STEPS=10; MUSIC_STEPS=10; IMG_STEPS=6; REPS=1; else
  TEXT_STEPS=200; MUSIC_STEPS=120; IMG_STEPS=150; REPS=2; fi

# run NAME RANKS THREADS ARGS... -> prints "rate bytes_per_step"
run() {
  local name=$1 ranks=$2 threads=$3; shift 3
  local out=$SCRATCH/$name-$ranks-$RANDOM
  local summary
  if [ "$ranks" -gt 1 ]; then
    summary=$("$BIN" train "$@" --out "$out" --nproc "$ranks" --threads "$threads" --quiet | head -1)
  else
    summary=$("$BIN" train "$@" --out "$out" --threads "$threads" --quiet | head -1)
  fi
  local rate bytes
  rate=$(sed -E 's/.*\(([0-9]+) [a-z]+\/s\).*/\1/' <<<"$summary")
  bytes=$(grep -o '"allreduce_bytes_per_step":[0-9]*' "$out/metrics.jsonl" | tail -1 | cut -d: -f2 || true)
  echo "$rate ${bytes:-0}"
}

# compare LABEL UNIT ARGS...: best of REPS for each layout
compare() {
  local label=$1 unit=$2; shift 2
  local best1=0 bestn=0 bytes=0 r
  for _ in $(seq "$REPS"); do
    read -r r _ < <(run "$label" 1 "$N" "$@")
    [ "$r" -gt "$best1" ] && best1=$r
    read -r r bytes < <(run "$label" "$N" 1 "$@")
    [ "$r" -gt "$bestn" ] && bestn=$r
  done
  local ratio
  ratio=$(awk -v a="$bestn" -v b="$best1" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  local mb
  mb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')
  printf '| %s | %s %s/s | %s %s/s | **%s×** | %s MB |\n' "$label" "$best1" "$unit" "$bestn" "$unit" "$ratio" "$mb"
}

DATE=$(date +%Y-%m-%d)
SUFFIX=""; [ "$MODE" = quick ] && SUFFIX=-quick
RESULT=$REPO/bench/results/dist-$DATE$SUFFIX.md
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' | tr '\n' ' ')
{
  echo "# Data-parallel training: $N ranks x 1 thread vs 1 rank x $N threads ($DATE)"
  echo
  echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; flags: $FLAGS"
  echo "- imagine $(git -C "$REPO" rev-parse --short HEAD), LibTorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo '?'), c10d Gloo over loopback; precision: the presets' auto (bf16 where the CPU has it) unless the row says fp32 (what AVX2-only machines run)"
  echo "- Same global batch and recipe in both layouts; evaluation excluded; best of $REPS runs each"
  echo
  echo "| preset | 1 rank x $N threads | $N ranks x 1 thread | ranks / threads | all-reduced per step |"
  echo "|---|---|---|---|---|"
  compare "text shakespeare-cpu ($TEXT_STEPS steps)" tok text --data "$TEXT" --preset shakespeare-cpu \
    --steps "$TEXT_STEPS" --eval-every 0 --eval-iters 1 --no-samples
  compare "text shakespeare-cpu, fp32 ($TEXT_STEPS steps)" tok text --data "$TEXT" --preset shakespeare-cpu \
    --steps "$TEXT_STEPS" --eval-every 0 --eval-iters 1 --no-samples --precision fp32
  compare "music chorales-cpu ($MUSIC_STEPS steps)" ev music --preset chorales-cpu --steps "$MUSIC_STEPS" \
    --eval-every 0 --eval-iters 1
  compare "image VAE fashion-cpu ($IMG_STEPS steps)" img image --model vae --preset fashion-cpu \
    --steps "$IMG_STEPS" --eval-every 0 --eval-samples 64
  compare "image DCGAN fashion-cpu ($IMG_STEPS steps)" img image --model gan --preset fashion-cpu \
    --steps "$IMG_STEPS" --eval-every 0 --eval-samples 64
} | tee "$RESULT"
echo "wrote $RESULT"
