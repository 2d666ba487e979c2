#!/usr/bin/env bash
# The chorales at the chorales-cpu budget: the modern recipe (the defaults) against GPT-2 +
# AdamW + cosine (the same preset with each choice undone by a flag), after the same steps
# and after the same wall time, scored by `imagine eval` on the chorales' test split.
#
#   bench/train/music_recipe_bench.sh IMAGINE_BIN
#
# STEPS: the preset's horizon (default its 1000). The equal-time rows get their step counts
# from the classic run's seconds and the 4-layer recipe's seconds per step: the recipe at
# 4 layers (the music default) and at 2 layers (half the cost of a step, assumed 0.55x).
# Every run is fp32. Writes bench/results/music-recipe-DATE.md (or OUT) and prints it.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
[ $# -eq 1 ] || { echo "usage: $0 IMAGINE_BIN" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DATA=${BENCH_DATA:-$REPO/../shared/data/jsb-chorales/jsb-chorales-16th.json}
STEPS=${STEPS:-1000}
PY=/usr/bin/python3
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=${OUT:-$REPO/bench/results/music-recipe-$(date +%F).md}
CLASSIC="--pos learned --norm layernorm --no-qk-norm --mlp gelu --logit-softcap 0 --optimizer adamw --schedule cosine"

# run LABEL STEPS ARGS...: train, score on the test split, print a row; leaves the seconds
# in $WORK/seconds
run() {
  local label=$1 steps=$2
  shift 2
  rm -rf "$WORK/run"
  "$BIN" train music --data "$DATA" --out "$WORK/run" --quiet --precision fp32 --preset chorales-cpu \
    --steps "$steps" --decay-steps "$steps" "$@" >"$WORK/log" 2>&1 ||
    { echo "| $label | failed: $(tail -1 "$WORK/log") |"; return; }
  "$BIN" eval "$WORK/run" --pieces 0 --json >"$WORK/eval.json"
  "$PY" - "$WORK/run/metrics.jsonl" "$WORK/eval.json" "$label" "$*" "$WORK/seconds" <<'PY'
import json, sys
ev = [r for r in map(json.loads, open(sys.argv[1])) if r.get("event") == "eval"]
test = json.load(open(sys.argv[2]))["loss_per_event"]
last = ev[-1]
open(sys.argv[5], "w").write(f'{last["elapsed_s"]} {last["step"]}\n')
print(f'| {sys.argv[3]} | `{sys.argv[4] or "(the defaults)"}` | {last["step"]} | {last["elapsed_s"]:.1f} | '
      f'{last["val_loss"]:.4f} | {test:.4f} |')
PY
}

{
  echo "# Chorales: the recipe against GPT-2 + AdamW + cosine at the chorales-cpu budget — $(date +%F)"
  echo
  machine_line
  echo "Data: $DATA; fp32; test loss per event from \`imagine eval DIR --pieces 0\` (best checkpoint)."
  echo
  echo "| run | flags | steps | train seconds | val loss/event | test loss/event |"
  echo "|---|---|---|---|---|---|"
  # shellcheck disable=SC2086
  run "classic: GPT-2 + AdamW + cosine" "$STEPS" $CLASSIC
  read -r classic_s _ <"$WORK/seconds"
  run "recipe, same steps" "$STEPS"
  read -r recipe_s _ <"$WORK/seconds"
  run "recipe, the classic run's time" "$("$PY" -c "print(int($STEPS * $classic_s / $recipe_s))")"
  run "recipe at 2 layers, the classic run's time" "$("$PY" -c "print(int($STEPS * $classic_s / $recipe_s / 0.55))")" \
    --n-layer 2
} | tee "$OUT"
