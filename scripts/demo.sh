#!/usr/bin/env bash
# `make demo`: the main job on bundled data. Trains a small GPT on the fortunes corpus
# (Debian's `fortunes` package, ~2.5 MB of quips) for a few minutes on 2 cores, then prints
# generated fortunes and where the model and outputs are.
set -euo pipefail
BIN=${1:-build/imagine}
OUT=${DEMO_OUT:-runs/demo}
DATA=${DEMO_DATA:-/usr/share/games/fortunes}
STEPS=${DEMO_STEPS:-2000}

mkdir -p "$OUT"
MODEL="$OUT/fortunes-gpt"
# The demo owns this folder: start it afresh each time (imagine itself never overwrites a model).
rm -rf "$MODEL"

echo "== training a text model on $DATA ($STEPS steps; Ctrl-C saves a checkpoint, resume with --resume)"
"$BIN" train text --data "$DATA" --out "$MODEL" --preset shakespeare-cpu-fast --log-every 100 \
  --block-size 128 --batch-size 16 --steps "$STEPS" --decay-steps "$STEPS" --eval-every 250

echo
echo "== three generated fortunes (seeds 1-3)"
"$BIN" generate text --model "$MODEL" --count 3 --seed 1 --max-tokens 300 --stop '\n%' \
  --out "$OUT/fortunes.txt" --quiet
echo
echo "== model summary"
"$BIN" info "$MODEL"
echo
echo "model directory:   $MODEL   (config.json, model.safetensors, metrics.jsonl, checkpoint-latest/)"
echo "generated samples: $OUT/fortunes.txt"
echo "try:               $BIN generate text --model $MODEL --prompt 'You will' --temperature 0.7"
