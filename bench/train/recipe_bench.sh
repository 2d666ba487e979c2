#!/usr/bin/env bash
# Time to quality on a text corpus (byte tokens, 90/10 split): nanoGPT itself against
# imagine's default recipe, side by side in one run, then the ablation of issue 12: the
# recipe with each of its choices undone (and the two options it leaves off turned on),
# after the same steps and after the same wall time.
#
#   NANOGPT_DIR=/path/to/nanoGPT bench/train/recipe_bench.sh IMAGINE_BIN [what]
#
# what: all (default), race (nanoGPT and the recipe only) or ablation.
# NANOGPT_DIR: a checkout of github.com/karpathy/nanoGPT (not part of this repository). Its
# code runs unmodified with the CPU command of its README; the corpus is copied to
# data/<name>_char/input.txt next to a copy of its shakespeare_char/prepare.py, which is
# run. Without it the nanoGPT row is skipped.
# BENCH_DATA: the corpus (default tinyshakespeare). RECIPE_STEPS: the recipe's horizon for
# the race and the same-steps ablation (default 250). BUDGET: the same-time ablation's wall
# times in seconds, a list (default "60 120"; empty: none): each configuration's step count
# is set from a 12-step probe so that its whole schedule (warm-up, stable, cool-down) fits
# the budget, since a schedule cut short by --time-limit never cools down. On a shared VM
# the probe is off by up to ±25%, so read the seconds column with the loss; the same-steps
# table is exact (fixed seed). Every imagine run is fp32 (--precision fp32)
# so AVX2 and AVX512-BF16 machines compare like with like; nanoGPT on the CPU is fp32 too.
# AVX2=1 holds both sides to AVX2 kernels on an AVX-512 machine (ATEN_CPU_CAPABILITY=avx2,
# OPENBLAS_CORETYPE=Haswell, ONEDNN_MAX_CPU_ISA=AVX2): a stand-in for an AVX2-only VM with
# the same clock and caches, so only the instruction set differs; the header records it.
# Evaluation: 8 batches of 32 windows (256; nanoGPT's 20 x 12 = 240 per split).
# Writes bench/results/recipe-DATE[-NAME].md and prints it.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
[ $# -ge 1 ] || { echo "usage: $0 IMAGINE_BIN [all|race|ablation]" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
WHAT=${2:-all}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA=${BENCH_DATA:-$REPO/../shared/data/tinyshakespeare/input.txt}
NAME=$(basename "$DATA" .txt)
[ "$NAME" = input ] && NAME=shakespeare
STEPS=${RECIPE_STEPS:-250}
BUDGET=${BUDGET-60 120}
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SUFFIX=""
[ "$NAME" = shakespeare ] || SUFFIX="-$NAME"
if [ "${AVX2:-0}" = 1 ]; then
  export ATEN_CPU_CAPABILITY=avx2 OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2
  SUFFIX="$SUFFIX-avx2"
fi
OUT=$REPO/bench/results/recipe-$(date +%F)$SUFFIX-$WHAT.md
EVAL=(--eval-iters 8)

# summarise METRICS LABEL: final step, seconds, final val, first eval at or below 1.88
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
  local label=$1
  shift
  "$BIN" train text --data "$DATA" --out "$WORK/run" --quiet --precision fp32 "${EVAL[@]}" "$@" >"$WORK/log" 2>&1 ||
    { echo "| $label | failed: $(tail -1 "$WORK/log") |"; rm -rf "$WORK/run"; return; }
  summarise "$WORK/run/metrics.jsonl" "$label"
  rm -rf "$WORK/run"
}

# steps_for SECONDS ARGS...: how many steps of this configuration fit in SECONDS (12-step probe,
# the first 4 not counted: start-up and warm caches).
steps_for() {
  local seconds=$1
  shift
  "$BIN" train text --data "$DATA" --out "$WORK/probe" --quiet --precision fp32 --steps 12 --eval-every 0 \
    --eval-iters 1 --log-every 1 "$@" >/dev/null 2>&1
  "$PY" - "$WORK/probe/metrics.jsonl" "$seconds" <<'PY'
import json, sys
t = [json.loads(l) for l in open(sys.argv[1])]
t = [r for r in t if r.get("event") != "eval" and "elapsed_s" in r]
per = (t[-1]["elapsed_s"] - t[3]["elapsed_s"]) / (t[-1]["step"] - t[3]["step"])
# the evaluations (every steps/8) and start-up take about 6% of a run
print(max(20, int(float(sys.argv[2]) * 0.94 / per)))
PY
  rm -rf "$WORK/probe"
}

# The recipe's choices, each undone, and the options it leaves off, each turned on.
VARIANTS=("recipe (the defaults)|"
  "learned positions|--pos learned"
  "LayerNorm|--norm layernorm"
  "no QK-norm|--no-qk-norm"
  "GELU|--mlp gelu"
  "no soft-cap|--logit-softcap 0"
  "cosine schedule|--schedule cosine"
  "AdamW only (lr 3e-3)|--optimizer adamw --lr 3e-3"
  "batch 12|--batch-size 12"
  "+ untied head|--untied-head"
  "+ zero-init|--zero-init"
  "classic: GPT-2 + AdamW, cosine (shakespeare-cpu-fast at batch 32)|--preset shakespeare-cpu-fast --batch-size 32 --warmup-steps 30")

# ablation TITLE SECONDS|steps: one table, every variant after the same steps (STEPS) or with
# its step count fitted to SECONDS.
ablation() {
  echo
  echo "## Ablation after $1"
  echo
  echo "| run | steps | seconds | val loss | val <= 1.88 |"
  echo "|---|---|---|---|---|"
  local v label args n
  for v in "${VARIANTS[@]}"; do
    IFS='|' read -r label args <<<"$v"
    n=$STEPS
    # shellcheck disable=SC2086
    [ "$2" = steps ] || n=$(steps_for "$2" $args)
    # shellcheck disable=SC2086
    run "$label" --steps "$n" --eval-every $((n / 8)) $args
  done
}

{
  echo "# Time to quality, $NAME — $(date +%F)"
  echo
  machine_line
  echo "Corpus: $DATA ($(wc -c <"$DATA") bytes)"
  [ "${AVX2:-0}" = 1 ] &&
    echo "Kernels held to AVX2 for both sides (AVX2=1): ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA"
  if [ "$WHAT" != ablation ]; then
    echo
    echo "## nanoGPT against the recipe"
    echo
    echo "| run | steps | seconds | val loss | val <= 1.88 |"
    echo "|---|---|---|---|---|"
    if [ -n "${NANOGPT_DIR:-}" ]; then
      D="$NANOGPT_DIR/data/${NAME}_char"
      mkdir -p "$D"
      cp "$DATA" "$D/input.txt"
      [ -f "$D/prepare.py" ] || cp "$NANOGPT_DIR/data/shakespeare_char/prepare.py" "$D/"
      (cd "$D" && "$PY" prepare.py >/dev/null)
      start=$(date +%s.%N)
      (cd "$NANOGPT_DIR" && "$PY" -u train.py config/train_shakespeare_char.py --dataset="${NAME}_char" \
        --device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 \
        --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 \
        --out_dir="$WORK/nanogpt" 2>&1) |
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
print(f"| nanoGPT (its README's CPU command) | {s} | {t:.1f} | {v:.4f} | " + (f"{hit[1]:.1f} s (step {hit[0]})" if hit else "not reached") + " |")
PY
    fi
    run "imagine shakespeare-cpu (nanoGPT's settings)" --preset shakespeare-cpu --eval-iters 20 --eval-every 125
    run "imagine default recipe, --steps $STEPS" --steps "$STEPS" --eval-every $((STEPS / 8))
    run "imagine default recipe, --steps $((STEPS * 2))" --steps $((STEPS * 2)) --eval-every $((STEPS / 4))
  fi
  if [ "$WHAT" != race ]; then
    ablation "the same steps ($STEPS)" steps
    for seconds in $BUDGET; do
      ablation "the same wall time (${seconds} s; steps from a probe of each)" "$seconds"
    done
  fi
} | tee "$OUT"
