#!/usr/bin/env bash
# Time to quality on tinyshakespeare (byte tokens, 90/10 split): nanoGPT itself against
# imagine's recipes, side by side in one run, then each GPT option alone at a fixed wall
# time (the ablation of issue 12).
#
#   NANOGPT_DIR=/path/to/nanoGPT bench/train/recipe_bench.sh IMAGINE_BIN [SECONDS]
#
# NANOGPT_DIR: a checkout of github.com/karpathy/nanoGPT (not part of this repository; its
# code is run unmodified: the data is copied to data/shakespeare_char and its prepare.py
# run). Without it the nanoGPT row is skipped. SECONDS: the ablation's --time-limit
# (default 40). Every imagine run is fp32 (--precision fp32) so AVX2 and AVX512-BF16
# machines compare like with like; nanoGPT on the CPU is fp32 too.
# Writes bench/results/recipe-DATE.md and prints it.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 IMAGINE_BIN [SECONDS]" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SECS=${2:-40}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA=${BENCH_DATA:-$REPO/../shared/data/tinyshakespeare/input.txt}
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=$REPO/bench/results/recipe-$(date +%F).md

# summarise METRICS LABEL: final step, seconds, final/best val, first eval at or below 1.88
summarise() {
  "$PY" - "$1" "$2" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if r.get("event") == "eval"]
hit = next((e for e in ev if e["val_loss"] <= 1.88), None)
last = ev[-1]
print(f'| {sys.argv[2]} | {last["step"]} | {last["elapsed_s"]:.1f} | {last["val_loss"]:.4f} | '
      + (f'{hit["elapsed_s"]:.1f} s (step {hit["step"]})' if hit else 'not reached') + ' |')
PY
}

run() {  # run LABEL ARGS...
  local label=$1; shift
  "$BIN" train text --data "$DATA" --out "$WORK/$label" --quiet --precision fp32 "$@" >"$WORK/$label.log" 2>&1
  summarise "$WORK/$label/metrics.jsonl" "$label"
}

{
  echo "# Time to quality, tinyshakespeare — $(date +%F)"
  echo
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo
  echo "| run | steps | seconds | val loss | val <= 1.88 |"
  echo "|---|---|---|---|---|"
  if [ -n "${NANOGPT_DIR:-}" ]; then
    cp "$DATA" "$NANOGPT_DIR/data/shakespeare_char/input.txt"
    (cd "$NANOGPT_DIR/data/shakespeare_char" && "$PY" prepare.py >/dev/null)
    start=$(date +%s.%N)
    (cd "$NANOGPT_DIR" && "$PY" -u train.py config/train_shakespeare_char.py --device=cpu --compile=False \
      --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 \
      --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 --out_dir="$WORK/nanogpt" 2>&1) |
      while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$WORK/nanogpt.log"
    "$PY" - "$WORK/nanogpt.log" "$start" <<'PY'
import re, sys
start = float(sys.argv[2]); ev = []
for line in open(sys.argv[1]):
    t, _, rest = line.partition(" ")
    m = re.match(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", rest)
    if m: ev.append((int(m[1]), float(t) - start, float(m[2])))
hit = next((e for e in ev if e[2] <= 1.88), None)
s, t, v = ev[-1]
print(f"| nanoGPT (README CPU command) | {s} | {t:.1f} | {v:.4f} | " + (f"{hit[1]:.1f} s (step {hit[0]})" if hit else "not reached") + " |")
PY
  fi
  run shakespeare-cpu-fast --preset shakespeare-cpu-fast --eval-every 125
  B=(--preset shakespeare-cpu-fast --eval-every 100 --time-limit "${SECS}s" --steps 100000)
  run "base ${SECS}s" "${B[@]}"
  run "rope ${SECS}s" "${B[@]}" --pos rope
  run "rmsnorm ${SECS}s" "${B[@]}" --norm rmsnorm
  run "qk-norm ${SECS}s" "${B[@]}" --qk-norm
  run "relu2 ${SECS}s" "${B[@]}" --mlp relu2
  run "untied ${SECS}s" "${B[@]}" --untied-head
  run "zero-init ${SECS}s" "${B[@]}" --zero-init
  run "softcap 15 ${SECS}s" "${B[@]}" --logit-softcap 15
  run "trapezoid ${SECS}s" "${B[@]}" --schedule trapezoid
  run "muon ${SECS}s" "${B[@]}" --optimizer muon
  run "adamw 300 steps" --preset shakespeare-cpu-fast --steps 300 --decay-steps 300 --eval-every 100
  run "muon 300 steps" --preset shakespeare-cpu-fast --steps 300 --decay-steps 300 --eval-every 100 --optimizer muon
} | tee "$OUT"
