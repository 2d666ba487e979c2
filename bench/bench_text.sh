#!/usr/bin/env bash
# Text benchmarks: imagine (C++/LibTorch) side by side with an identical PyTorch (Python)
# reference on tinyshakespeare, plus KV-cache vs full-recomputation generation speed.
#
#   bench/bench_text.sh IMAGINE_BIN [quick]
#
#   (a) training speed: shakespeare-cpu, 300 steps, tokens/s from summed step times
#   (b) time to quality: the full shakespeare-cpu recipe (2000 steps), wall seconds and
#       best validation loss
#   (c) generation: 256 new tokens with and without the KV cache, for the model from (b)
#       (context 64) and for the `shakespeare` architecture (6/6/384, context 256)
#
# `quick` runs a few steps of everything (a smoke test; its numbers mean nothing).
# Writes bench/results/text-DATE.md (text-DATE-quick.md in quick mode) and prints it.
# Environment: BENCH_DATA (text file), BENCH_THREADS (default nproc), PYTHON (a python3
# with torch), BENCH_KEEP=1 keeps the scratch folder with models and logs.
set -euo pipefail

usage() { echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
BIN=$1
MODE=${2:-full}
case "$MODE" in full | quick) ;; *) usage ;; esac
[ -x "$BIN" ] || { echo "error: $BIN is not an executable (build it with 'make build')" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BENCH_DATA:-$REPO/../shared/data/tinyshakespeare/input.txt}
[ -f "$DATA" ] || { echo "error: data file $DATA not found (set BENCH_DATA)" >&2; exit 1; }
DATA=$(cd "$(dirname "$DATA")" && pwd)/$(basename "$DATA")
THREADS=${BENCH_THREADS:-$(nproc)}
REF=$REPO/bench/python/gpt_reference.py

# A python3 that has torch: the one on PATH, else Debian's (python3-torch), e.g. under pyenv.
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "error: no python3 with torch found (apt-get install python3-torch, or set PYTHON)" >&2; exit 1; }

if [ "$MODE" = quick ]; then
  SPEED_STEPS=10; TTQ_STEPS=20; TTQ_EVAL_EVERY=10; TTQ_EVAL_ITERS=2; GEN_TOKENS=32; GEN_REPEATS=1
else
  SPEED_STEPS=300; TTQ_STEPS=2000; TTQ_EVAL_EVERY=250; TTQ_EVAL_ITERS=20; GEN_TOKENS=256; GEN_REPEATS=3
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imagine-bench-text.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "scratch folder kept: $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi

log() { echo "[bench_text] $*" >&2; }
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic through python (no bc on a bare Debian)
calc() { "$PY" -c "import math; print($1)"; }
# jget FILE KEY: one field of the last JSON line of FILE ('' for null)
jget() {
  "$PY" -c '
import json, sys
line = [l for l in open(sys.argv[1]) if l.lstrip().startswith("{")][-1]
v = json.loads(line).get(sys.argv[2])
print("" if v is None else v)' "$1" "$2"
}
# run_logged NAME CMD...: runs CMD, stdout to NAME.out, stderr to NAME.err; on failure shows the end
run_logged() {
  local name=$1; shift
  if ! "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "error: '$name' failed: $*" >&2
    tail -n 20 "$WORK/$name.err" >&2
    exit 1
  fi
}

# The shakespeare-cpu recipe, spelled out for the reference (imagine's preset sets decay-steps
# 2000 whatever --steps is, so the reference gets --decay-steps 2000 too).
PRESET_CPU=(--batch-size 12 --block-size 64 --n-layer 4 --n-head 4 --n-embd 128 --dropout 0
            --lr 1e-3 --min-lr 1e-4 --warmup-steps 100 --decay-steps 2000 --beta1 0.9 --beta2 0.99
            --weight-decay 0.1 --grad-clip 1)

load1=$(cut -d' ' -f1 /proc/loadavg)
if [ "$(calc "int($load1 > 0.5)")" = 1 ]; then
  log "warning: load average is $load1; other processes will distort the timings"
fi

# Both precisions, side by side: fp32, and bf16 autocast (bfloat16 matmuls, float32
# weights), which imagine picks by default on CPUs with AVX512-BF16.
PRECISIONS=${BENCH_PRECISIONS:-"bf16 fp32"}

# ----------------------------------------------------------------------------- (a) speed
log "(a) training speed: $SPEED_STEPS steps each, $THREADS threads, precisions: $PRECISIONS"
speed_rows=""
for prec in $PRECISIONS; do
  run_logged "speed-imagine-$prec" "$BIN" train text --preset shakespeare-cpu --data "$DATA" \
    --out "$WORK/speed-imagine-$prec" --steps "$SPEED_STEPS" --eval-every 0 --samples=false --quiet \
    --threads "$THREADS" --precision "$prec"
  "$PY" "$REPO/bench/python/imagine_metrics.py" "$WORK/speed-imagine-$prec" >"$WORK/speed-imagine-$prec.json"
  run_logged "speed-python-$prec" "$PY" "$REF" --data "$DATA" "${PRESET_CPU[@]}" --steps "$SPEED_STEPS" \
    --eval-every 0 --eval-iters 20 --threads "$THREADS" --precision "$prec"
  cp "$WORK/speed-python-$prec.out" "$WORK/speed-python-$prec.json"
  sp_i=$(jget "$WORK/speed-imagine-$prec.json" tokens_per_s)
  sp_p=$(jget "$WORK/speed-python-$prec.json" tokens_per_s)
  sv_i=$(jget "$WORK/speed-imagine-$prec.json" final_val_loss)
  sv_p=$(jget "$WORK/speed-python-$prec.json" best_val_loss)
  speed_rows+=$(printf '| %s | %.0f | %.0f | **%sx** | %.4f | %.4f |' "$prec" "$sp_i" "$sp_p" \
    "$(calc "f'{$sp_i / $sp_p:.2f}'")" "$sv_i" "$sv_p")$'\n'
done

# ----------------------------------------------------------------------------- (b) time to quality
log "(b) time to quality: $TTQ_STEPS steps each"
ttq_rows=""
ttq_model=""
for prec in $PRECISIONS; do
  t0=$(now)
  run_logged "ttq-imagine-$prec" "$BIN" train text --preset shakespeare-cpu --data "$DATA" \
    --out "$WORK/ttq-imagine-$prec" --steps "$TTQ_STEPS" --eval-every "$TTQ_EVAL_EVERY" \
    --eval-iters "$TTQ_EVAL_ITERS" --samples=false --quiet --threads "$THREADS" --precision "$prec"
  t1=$(now)
  "$PY" "$REPO/bench/python/imagine_metrics.py" "$WORK/ttq-imagine-$prec" >"$WORK/ttq-imagine-$prec.json"
  run_logged "ttq-python-$prec" "$PY" "$REF" --data "$DATA" "${PRESET_CPU[@]}" --steps "$TTQ_STEPS" \
    --eval-every "$TTQ_EVAL_EVERY" --eval-iters "$TTQ_EVAL_ITERS" --threads "$THREADS" --precision "$prec"
  t2=$(now)
  cp "$WORK/ttq-python-$prec.out" "$WORK/ttq-python-$prec.json"
  [ -n "$ttq_model" ] || ttq_model="$WORK/ttq-imagine-$prec"
  for impl in imagine python; do
    f="$WORK/ttq-$impl-$prec.json"
    if [ $impl = imagine ]; then wall=$(calc "f'{$t1 - $t0:.1f}'"); label="imagine (C++)"; else
      wall=$(calc "f'{$t2 - $t1:.1f}'"); label="PyTorch (Python)"; fi
    ttq_rows+=$(printf '| %s | %s | %s | %.0f | %.4f (%s) |' "$label" "$prec" "$wall" "$(jget "$f" tokens_per_s)" \
      "$(jget "$f" best_val_loss)" "$(jget "$f" best_step)")$'\n'
  done
done

# The same model with a doubled learning rate (preset shakespeare-cpu-fast), bf16: the
# recipe that reaches nanoGPT's 1.88 soonest. time_to_target = elapsed seconds at the first
# evaluation with validation loss <= 1.88.
fast_rows=""
if [ "$MODE" = full ]; then
  t0=$(now)
  run_logged ttq-imagine-fast "$BIN" train text --preset shakespeare-cpu-fast --data "$DATA" \
    --out "$WORK/ttq-imagine-fast" --samples=false --quiet --threads "$THREADS" --precision bf16
  t1=$(now)
  "$PY" "$REPO/bench/python/imagine_metrics.py" "$WORK/ttq-imagine-fast" >"$WORK/ttq-imagine-fast.json"
  run_logged ttq-python-fast "$PY" "$REF" --data "$DATA" "${PRESET_CPU[@]}" --lr 2e-3 --min-lr 2e-4 --steps 2000 \
    --eval-every 250 --eval-iters 20 --threads "$THREADS" --precision bf16
  t2=$(now)
  cp "$WORK/ttq-python-fast.out" "$WORK/ttq-python-fast.json"
  target_i=$("$PY" -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("event") == "eval" and j["val_loss"] <= 1.88:
        print("%.1f s (step %d)" % (j.get("elapsed_s", float("nan")), j["step"])); break
else:
    print("not reached")' "$WORK/ttq-imagine-fast/metrics.jsonl")
  fast_rows+=$(printf '| imagine (C++) | bf16 | %s | %.0f | %.4f (%s) | %s |' "$(calc "f'{$t1 - $t0:.1f}'")" \
    "$(jget "$WORK/ttq-imagine-fast.json" tokens_per_s)" "$(jget "$WORK/ttq-imagine-fast.json" best_val_loss)" \
    "$(jget "$WORK/ttq-imagine-fast.json" best_step)" "$target_i")$'\n'
  target_p=$("$PY" -c '
import json, sys
line = [l for l in open(sys.argv[1]) if l.lstrip().startswith("{")][-1]
for e in json.loads(line)["evals"]:
    if e["val_loss"] <= 1.88:
        print("%.1f s (step %d)" % (e["elapsed_s"], e["step"])); break
else:
    print("not reached")' "$WORK/ttq-python-fast.json")
  fast_rows+=$(printf '| PyTorch (Python) | bf16 | %s | %.0f | %.4f (%s) | %s |' "$(calc "f'{$t2 - $t1:.1f}'")" \
    "$(jget "$WORK/ttq-python-fast.json" tokens_per_s)" "$(jget "$WORK/ttq-python-fast.json" best_val_loss)" \
    "$(jget "$WORK/ttq-python-fast.json" best_step)" "$target_p")$'\n'
fi

# ----------------------------------------------------------------------------- (c) generation
log "(c) generation: $GEN_TOKENS new tokens, KV cache vs full recomputation, median of $GEN_REPEATS"
# The `shakespeare` architecture, trained for one step (batch 1, one evaluation batch): only
# the architecture matters for generation speed.
run_logged gen-big-train "$BIN" train text --preset shakespeare --data "$DATA" --out "$WORK/gen-big" \
  --steps 1 --batch-size 1 --eval-iters 1 --samples=false --quiet --threads "$THREADS"

# A prompt that fills the context (it is cropped to the model's last block_size tokens), so
# every new token is generated with a full window: the regime a KV cache is for.
head -c 4096 "$DATA" >"$WORK/prompt.txt"

# gen_time MODEL_DIR NAME [--no-kv-cache]: median seconds over GEN_REPEATS runs; the text of
# the first run is kept in NAME.txt
gen_time() {
  local model=$1 name=$2; shift 2
  local times=() i line
  for ((i = 0; i < GEN_REPEATS; i++)); do
    run_logged "$name-$i" "$BIN" generate text --model "$model" --max-tokens "$GEN_TOKENS" --seed 1 \
      --temperature 0.8 --threads "$THREADS" --prompt-file "$WORK/prompt.txt" "$@"
    line=$(grep -E '^\[[0-9]+ tokens in ' "$WORK/$name-$i.err" | tail -n 1 || true)
    [ -n "$line" ] || { echo "error: no timing line from generate (see $WORK/$name-$i.err)" >&2; exit 1; }
    times+=("$(sed -E 's/^\[([0-9]+) tokens in ([0-9.eE+-]+) s.*/\1 \2/' <<<"$line")")
  done
  cp "$WORK/$name-0.out" "$WORK/$name.txt"
  printf '%s\n' "${times[@]}" | sort -k2 -g | sed -n "$(((GEN_REPEATS + 1) / 2))p"  # "TOKENS SECONDS"
}

gen_row() {  # gen_row MODEL_DIR LABEL -> one markdown table row
  local model=$1 label=$2 kv nokv n_kv s_kv n_no s_no same
  kv=$(gen_time "$model" "$(basename "$model")-kv")
  nokv=$(gen_time "$model" "$(basename "$model")-nokv" --no-kv-cache)
  read -r n_kv s_kv <<<"$kv"
  read -r n_no s_no <<<"$nokv"
  if cmp -s "$WORK/$(basename "$model")-kv.txt" "$WORK/$(basename "$model")-nokv.txt"; then same=yes; else same=no; fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$n_kv" \
    "$(calc "f'{$n_kv / $s_kv:.0f}'")" "$(calc "f'{$n_no / $s_no:.0f}'")" "$(calc "f'{$s_no / $s_kv:.2f}x'")" "$same"
}
gen_small=$(gen_row "$ttq_model" "shakespeare-cpu (4 layers, 128 wide, context 64), model from (b)")
gen_big=$(gen_row "$WORK/gen-big" "shakespeare (6 layers, 384 wide, context 256), 1 training step*")
# The same width with a 1024-token context: recomputation grows with the context, the KV
# cache's per-token cost barely does. Timed once (the no-cache run takes about a minute).
gen_long=""
if [ "$MODE" = full ]; then
  run_logged gen-long-train "$BIN" train text --preset shakespeare --block-size 1024 --data "$DATA" \
    --out "$WORK/gen-long" --steps 1 --batch-size 1 --eval-iters 1 --samples=false --quiet --threads "$THREADS"
  GEN_REPEATS_SAVED=$GEN_REPEATS; GEN_REPEATS=1
  gen_long=$(gen_row "$WORK/gen-long" "shakespeare with context 1024 (6 layers, 384 wide), 1 training step*, 1 run")
  GEN_REPEATS=$GEN_REPEATS_SAVED
fi

# ----------------------------------------------------------------------------- report
DATE=$(date +%Y-%m-%d)
CPU=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
TORCH_PY=$("$PY" -c 'import torch; print(torch.__version__)')
LIBTORCH=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo unknown)
REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain -- src include apps 2>/dev/null || true)" ]; then REV="$REV (modified)"; fi
mkdir -p "$REPO/bench/results"
SUFFIX=""; [ "$MODE" = quick ] && SUFFIX="-quick"
REPORT=$REPO/bench/results/text-$DATE$SUFFIX.md

{
  echo "## Text: imagine vs PyTorch reference, tinyshakespeare ($DATE${SUFFIX:+, quick smoke test: numbers are meaningless})"
  echo
  echo "Machine: $(nproc) cores ($CPU), $THREADS threads for both; imagine $REV on LibTorch $LIBTORCH;"
  echo "reference: bench/python/gpt_reference.py on PyTorch $TORCH_PY ($PY). Load average at start: $load1."
  echo "Same model, initial weights, batches and recipe in both (the reference replays imagine's data RNG)."
  echo
  echo "### (a) Training speed: shakespeare-cpu, $SPEED_STEPS steps"
  echo
  echo "tokens/s = tokens trained / summed optimizer-step time (evaluation excluded)."
  echo
  echo "| precision | imagine tokens/s | PyTorch tokens/s | imagine / PyTorch | imagine val loss | PyTorch val loss |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  printf '%s' "$speed_rows"
  echo
  echo "### (b) Time to quality: shakespeare-cpu, $TTQ_STEPS steps, eval every $TTQ_EVAL_EVERY steps x $TTQ_EVAL_ITERS batches"
  echo
  echo "Wall = the whole process (start-up, data loading, training and evaluations; imagine also"
  echo "writes a checkpoint at each evaluation). Samples at evaluations are off for imagine."
  echo
  echo "| implementation | precision | wall s | tokens/s | best val loss (step) |"
  echo "| --- | --- | ---: | ---: | ---: |"
  printf '%s' "$ttq_rows"
  echo
  if [ -n "$fast_rows" ]; then
    echo "#### shakespeare-cpu-fast (lr 2e-3 -> 2e-4), bf16, 2000 steps"
    echo
    echo "| implementation | precision | wall s | tokens/s | best val loss (step) | first eval <= 1.88 (training-loop time) |"
    echo "| --- | --- | ---: | ---: | ---: | --- |"
    printf '%s' "$fast_rows"
    echo
  fi
  echo "### (c) Generation: $GEN_TOKENS new tokens after a prompt that fills the context, temperature 0.8, seed 1, median of $GEN_REPEATS runs"
  echo
  echo "| model | tokens | KV cache tok/s | no cache tok/s | KV speed-up | same text |"
  echo "| --- | ---: | ---: | ---: | ---: | --- |"
  echo "$gen_small"
  echo "$gen_big"
  [ -z "$gen_long" ] || echo "$gen_long"
  echo
  echo "\* trained for a single step (batch 1) only to get the architecture; its weights are"
  echo "meaningless, which does not matter for speed."
} >"$REPORT"

log "wrote $REPORT"
cat "$REPORT"
