#!/usr/bin/env bash
# Image benchmarks: imagine's VAE and DCGAN (C++/LibTorch) side by side with identical
# PyTorch (Python) references on Fashion-MNIST, then the sample quality of imagine's models.
#
#   bench/bench_image.sh IMAGINE_BIN [quick]
#
#   (a) training speed: vae and gan, STEPS steps of 64 images each, images/s excluding
#       evaluation, and the seconds one epoch (60 000 images) takes at that rate
#   (b) quality: imagine's VAE and DCGAN trained with --preset fashion-cpu (1500 steps of
#       64 images), then `imagine eval --samples 10000`: FID, KID, precision/recall, the
#       floor (real training images scored as samples), the VAE's ELBO and IW NLL
#
# `quick` runs a few steps of everything (a smoke test; its numbers mean nothing).
# Writes bench/results/image-DATE.md (image-DATE-quick.md in quick mode) and prints it.
# Environment: THREADS (default BENCH_THREADS, else nproc), STEPS (speed part, default 300),
# QUALITY=0 skips (b), BENCH_IMAGE_DATA (IDX folder, default /usr/share/datasets/fashion-mnist),
# PYTHON (a python3 with torch), BENCH_KEEP=1 keeps the scratch folder with models and logs.
set -euo pipefail

usage() { echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
BIN=$1
MODE=${2:-full}
case "$MODE" in full | quick) ;; *) usage ;; esac
[ -x "$BIN" ] || { echo "error: $BIN is not an executable (build it with 'make build')" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${BENCH_IMAGE_DATA:-/usr/share/datasets/fashion-mnist}
TRAIN_IDX=$DATA/train-images-idx3-ubyte.gz
[ -f "$TRAIN_IDX" ] || { echo "error: $TRAIN_IDX not found (set BENCH_IMAGE_DATA to an IDX folder)" >&2; exit 1; }
THREADS=${THREADS:-${BENCH_THREADS:-$(nproc)}}
QUALITY=${QUALITY:-1}
BATCH=64
SEED=1337

# A python3 that has torch: the one on PATH, else Debian's (python3-torch), e.g. under pyenv.
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3 /usr/bin/python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null; then PY=$c; break; fi
  done
fi
[ -n "$PY" ] || { echo "error: no python3 with torch found (apt-get install python3-torch, or set PYTHON)" >&2; exit 1; }

if [ "$MODE" = quick ]; then
  STEPS=${STEPS:-10}
  Q_FLAGS=(--steps 20 --eval-every 10 --eval-samples 128)
  E_FLAGS=(--samples 256 --iw-k 5 --iw-images 50)
else
  STEPS=${STEPS:-300}
  Q_FLAGS=()
  E_FLAGS=(--samples 10000)
fi
[ "$STEPS" -ge 2 ] || { echo "error: STEPS must be at least 2" >&2; exit 1; }
WARMUP=$((STEPS > 10 ? 5 : 1))  # the reference's warm-up steps, reported apart

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imagine-bench-image.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "scratch folder kept: $WORK" >&2; else trap 'rm -rf "$WORK"' EXIT; fi

log() { echo "[bench_image] $*" >&2; }
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic through python (no bc on a bare Debian)
calc() { "$PY" -c "import math; print($1)"; }
# jget FILE KEY: one field of the last JSON line of FILE ('' for null or missing)
jget() {
  "$PY" -c '
import json, sys
line = [l for l in open(sys.argv[1]) if l.lstrip().startswith("{")][-1]
v = json.loads(line).get(sys.argv[2])
print("" if v is None else v)' "$1" "$2"
}
# fmt FORMAT VALUE: printf-style, '-' for an empty value
fmt() { if [ -z "$2" ]; then echo "-"; else calc "'$1' % $2"; fi; }
# run_logged NAME CMD...: runs CMD, stdout to NAME.out, stderr to NAME.err; on failure shows the end
run_logged() {
  local name=$1; shift
  if ! "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "error: '$name' failed: $*" >&2
    tail -n 20 "$WORK/$name.err" >&2
    exit 1
  fi
}
# imagine_rate NAME: images/s from the summary line "trained N steps in T (R images/s); ..."
# on stdout, the trainer's own figure: images / summed step time, evaluation excluded
imagine_rate() {
  local r
  r=$(sed -nE 's/^trained [0-9]+ steps in [^ ]+ \(([0-9.]+) images\/s\).*/\1/p' "$WORK/$1.out" | tail -n 1)
  [ -n "$r" ] || { echo "error: no 'trained ... images/s' line from imagine (see $WORK/$1.out)" >&2; exit 1; }
  echo "$r"
}
# imagine_losses MODEL_DIR: the losses of the last logged step ("loss" or "d / g")
imagine_losses() {
  "$PY" -c '
import json, sys
last = None
for line in open(sys.argv[1] + "/metrics.jsonl"):
    j = json.loads(line)
    if "step" in j and "event" not in j and "loss" in j:
        last = j
if last is None:
    print("-")
elif "loss_d" in last:
    print("%.4f / %.4f" % (last["loss_d"], last["loss_g"]))
else:
    print("%.4f" % last["loss"])' "$1"
}
python_losses() {  # python_losses JSON_FILE
  if [ -n "$(jget "$1" final_d_loss)" ]; then
    printf '%.4f / %.4f' "$(jget "$1" final_d_loss)" "$(jget "$1" final_g_loss)"
  else
    printf '%.4f' "$(jget "$1" final_loss)"
  fi
}

load1=$(cut -d' ' -f1 /proc/loadavg)
if [ "$(calc "int($load1 > 0.5)")" = 1 ]; then
  log "warning: load average is $load1; other processes will distort the timings"
fi
N_TRAIN=$("$PY" -c '
import gzip, struct, sys
with gzip.open(sys.argv[1], "rb") as f:
    print(struct.unpack(">IIII", f.read(16))[1])' "$TRAIN_IDX")

# ----------------------------------------------------------------------------- (a) speed
log "(a) training speed: $STEPS steps of $BATCH images each, $THREADS threads"
speed_rows=""
for model in vae gan; do
  case $model in vae) ref=vae_reference.py ;; gan) ref=dcgan_reference.py ;; esac
  # --eval-every 0 still evaluates once at the end (outside the timed steps); a small
  # --eval-samples keeps that short.
  run_logged "speed-imagine-$model" "$BIN" train image --model "$model" --data "$DATA" \
    --out "$WORK/speed-imagine-$model" --steps "$STEPS" --batch-size "$BATCH" --eval-every 0 \
    --eval-samples 128 --precision fp32 --seed "$SEED" --threads "$THREADS" --quiet
  run_logged "speed-python-$model" "$PY" "$REPO/bench/python/$ref" --data "$TRAIN_IDX" --steps "$STEPS" \
    --warmup-steps "$WARMUP" --batch-size "$BATCH" --precision fp32 --seed "$SEED" --threads "$THREADS"
  cp "$WORK/speed-python-$model.out" "$WORK/speed-python-$model.json"
  r_i=$(imagine_rate "speed-imagine-$model")
  # Both rates count every step, warm-up included (imagine's definition); the reference's
  # rate without its first steps is shown beside it.
  r_p=$(jget "$WORK/speed-python-$model.json" images_per_s_all)
  r_pw=$(jget "$WORK/speed-python-$model.json" images_per_s)
  speed_rows+=$(printf '| %s | %.0f | %.0f (%.0f) | **%sx** | %.1f | %.1f | %s | %s |' "$model" "$r_i" "$r_p" "$r_pw" \
    "$(calc "f'{$r_i / $r_p:.2f}'")" "$(calc "$N_TRAIN / $r_i")" "$(calc "$N_TRAIN / $r_p")" \
    "$(imagine_losses "$WORK/speed-imagine-$model")" "$(python_losses "$WORK/speed-python-$model.json")")$'\n'
done

# ----------------------------------------------------------------------------- (b) quality
quality_rows=""
floor_row=""
if [ "$QUALITY" != 0 ]; then
  log "(b) quality: imagine's vae and gan with --preset fashion-cpu${Q_FLAGS[*]:+ ${Q_FLAGS[*]}}, then imagine eval ${E_FLAGS[*]}"
  for model in vae gan; do
    t0=$(now)
    run_logged "quality-train-$model" "$BIN" train image --model "$model" --preset fashion-cpu --data "$DATA" \
      --out "$WORK/quality-$model" --seed "$SEED" --threads "$THREADS" --quiet "${Q_FLAGS[@]}"
    t1=$(now)
    run_logged "quality-eval-$model" "$BIN" eval "$WORK/quality-$model" --json --nearest=false \
      --threads "$THREADS" --quiet "${E_FLAGS[@]}"
    f="$WORK/quality-eval-$model.out"
    steps=$(sed -nE 's/^trained ([0-9]+) steps in .*/\1/p' "$WORK/quality-train-$model.out" | tail -n 1)
    quality_rows+=$(printf '| imagine %s | %s x %s | %s | %.0f | %s | %s ± %s | %s | %s | %s | %s |' \
      "$model" "$steps" "$BATCH" "$(calc "f'{$t1 - $t0:.0f}'")" "$(imagine_rate "quality-train-$model")" \
      "$(fmt '%.2f' "$(jget "$f" fid)")" "$(fmt '%.4f' "$(jget "$f" kid)")" "$(fmt '%.4f' "$(jget "$f" kid_std)")" \
      "$(fmt '%.3f' "$(jget "$f" precision)")" "$(fmt '%.3f' "$(jget "$f" recall)")" \
      "$(fmt '%.1f' "$(jget "$f" elbo_nll)")" "$(fmt '%.1f' "$(jget "$f" iw_nll)")")$'\n'
    # The floor depends only on the data and the feature network, not on the model.
    [ -n "$floor_row" ] || floor_row=$(printf '| real training images (floor) | - | - | - | %s | %s | - | - | - | - |' \
      "$(fmt '%.2f' "$(jget "$f" fid_floor)")" "$(fmt '%.4f' "$(jget "$f" kid_floor)")")
    q_samples=$(fmt '%.0f' "$(jget "$f" samples)")
    q_real=$(fmt '%.0f' "$(jget "$f" real_images)")
    q_iw_k=$(fmt '%.0f' "$(jget "$f" iw_k)")
    q_iw_images=$(fmt '%.0f' "$(jget "$f" iw_images)")
    [ "$q_iw_k" = "-" ] || { iw_k=$q_iw_k; iw_images=$q_iw_images; }
  done
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
REPORT=$REPO/bench/results/image-$DATE$SUFFIX.md

{
  echo "## Image: imagine vs PyTorch reference, Fashion-MNIST 28x28 ($DATE${SUFFIX:+, quick smoke test: numbers are meaningless})"
  echo
  echo "Machine: $(nproc) cores ($CPU), $THREADS threads for both; imagine $REV on LibTorch $LIBTORCH;"
  echo "references: bench/python/vae_reference.py and dcgan_reference.py on PyTorch $TORCH_PY ($PY)."
  echo "Load average at start: $load1. Data: $DATA ($N_TRAIN training images)."
  echo
  echo "### (a) Training speed: $STEPS steps of $BATCH images, fp32"
  echo
  echo "Same networks, initialisation order, Adam settings, batches (the references replay imagine's"
  echo "data RNG) and seed in both; vae = width 32, latent 32, Bernoulli likelihood; gan = DCGAN"
  echo "width 32, latent 64, non-saturating loss, one D step then one G step, generator EMA."
  echo "images/s = images trained / summed step time (batch gathering, forward, backward, Adam, EMA;"
  echo "evaluation excluded), every step counted; in brackets the reference's rate without its first"
  echo "$WARMUP steps. s/epoch = $N_TRAIN images at that rate. Final loss = the last step's batch loss"
  echo "(gan: discriminator / generator); with the same LibTorch the two should agree closely."
  echo
  echo "| model | imagine images/s | PyTorch images/s | imagine / PyTorch | imagine s/epoch | PyTorch s/epoch | imagine final loss | PyTorch final loss |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s' "$speed_rows"
  if [ "$QUALITY" != 0 ]; then
    echo
    echo "### (b) Quality: imagine, --preset fashion-cpu${Q_FLAGS[*]:+ ${Q_FLAGS[*]}}, imagine eval ${E_FLAGS[*]}"
    echo
    echo "Training wall = the whole process (start-up, data, training, an evaluation of 1000 samples and"
    echo "a checkpoint every 1000 steps (the preset's), sample grids). Scores: $q_samples samples against $q_real held-out"
    echo "images in the feature space of imagine's own Fashion-MNIST classifier (lower FID/KID is better);"
    echo "the gan samples from its EMA generator. The floor scores real training images in place of"
    echo "samples: the best a model can reach with this feature network."
    echo "NLLs in nats per image; IW NLL = importance-weighted, k = ${iw_k:-?} on ${iw_images:-?} held-out images."
    echo
    echo "| model | steps x batch | training wall s | images/s | FID | KID | precision | recall | ELBO NLL | IW NLL |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    printf '%s' "$quality_rows"
    echo "$floor_row"
  fi
} >"$REPORT"

log "wrote $REPORT"
cat "$REPORT"
