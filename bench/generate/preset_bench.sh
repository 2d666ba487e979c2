#!/usr/bin/env bash
# Generation speed and peak memory for every text model preset, side by side in one run:
# `imagine generate text --max-tokens 256` with the KV cache (float32 and bf16 decoding
# weights) and without it (the whole window recomputed every token), one sequence, plus the
# process's peak RSS (GNU time) for each.
#
#   bench/generate/preset_bench.sh IMAGINE_BIN [THREADS]
#
# The models are trained for a few steps only: speed and memory do not depend on the weights.
# Writes bench/results/presets-DATE.md and prints it.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 IMAGINE_BIN [THREADS]" >&2; exit 2; fi
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
THREADS=${2:-1}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA=${BENCH_DATA:-$REPO/../shared/data/tinyshakespeare/input.txt}
[ -f "$DATA" ] || { echo "error: $DATA not found (set BENCH_DATA)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: GNU time (/usr/bin/time) is needed; apt install time" >&2; exit 1; }
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
TOKENS=256

# gen MODEL ARGS... -> "tokens_per_s peak_rss_mb"
gen() {
  local model=$1; shift
  local err=$SCRATCH/err
  /usr/bin/time -f 'RSS %M' "$BIN" generate text --model "$model" --max-tokens "$TOKENS" --seed 1 --threads "$THREADS" \
    --no-watermark --out "$SCRATCH/out.txt" "$@" > /dev/null 2> "$err"
  local rate rss
  rate=$(grep -o '[0-9.]* tokens/s' "$err" | tail -1 | cut -d' ' -f1)
  rss=$(grep -o 'RSS [0-9]*' "$err" | tail -1 | cut -d' ' -f2)
  awk -v r="$rate" -v m="$rss" 'BEGIN { printf "%.0f %.0f\n", r, m / 1024 }'
}

DATE=$(date +%Y-%m-%d)
RESULT=$REPO/bench/results/presets-$DATE.md
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' | tr '\n' ' ')
{
  echo "# Text generation per preset: $TOKENS new tokens, one sequence, $THREADS thread(s) ($DATE)"
  echo
  echo "- Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; flags: $FLAGS"
  echo "- imagine $(git -C "$REPO" rev-parse --short HEAD); \`generate text --max-tokens $TOKENS --no-watermark\` from the prompt-less start; peak RSS of the whole process (GNU time)"
  echo
  echo "| preset | parameters | context | KV cache fp32 | KV cache bf16 weights | recomputed | cache / recompute | peak RSS (fp32 / bf16 / recomputed) |"
  echo "|---|---|---|---|---|---|---|---|"
  for preset in tiny shakespeare-cpu shakespeare-cpu-fast shakespeare; do
    model=$SCRATCH/$preset
    "$BIN" train text --data "$DATA" --out "$model" --preset "$preset" --steps 1 --eval-every 0 --eval-iters 1 \
      --no-samples --quiet > /dev/null
    params=$("$BIN" info "$model" --json | grep -o '"parameters": *[0-9]*' | head -1 | grep -o '[0-9]*$')
    ctx=$("$BIN" info "$model" --json | grep -o '"block_size": *[0-9]*' | head -1 | grep -o '[0-9]*$')
    read -r cached rss_c < <(gen "$model")
    read -r bf16 rss_b < <(gen "$model" --decode-precision bf16)
    read -r recomputed rss_r < <(gen "$model" --no-kv-cache)
    ratio=$(awk -v a="$cached" -v b="$recomputed" 'BEGIN { printf "%.1f", a / b }')
    printf '| %s | %s | %s | %s tok/s | %s tok/s | %s tok/s | **%s×** | %s / %s / %s MB |\n' "$preset" "$params" "$ctx" \
      "$cached" "$bf16" "$recomputed" "$ratio" "$rss_c" "$rss_b" "$rss_r"
  done
} | tee "$RESULT"
echo "wrote $RESULT"
