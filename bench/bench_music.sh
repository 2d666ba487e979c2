#!/usr/bin/env bash
# Music benchmark: a fixed training budget on the JSB chorales (--preset chorales-cpu), then
# the loss per event on the standard test split and musical statistics of generated pieces
# against the test set (imagine eval), and FluidSynth render speed on the openttd-openmsx
# songs (seconds of audio per second of rendering).
#
#   bench/bench_music.sh IMAGINE_BIN [quick]
# Writes bench/results/music-<date>.md and prints it.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; fi
BIN=$(realpath "$1")
MODE=${2:-full}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHORALES=${CHORALES:-$REPO/../shared/data/jsb-chorales/jsb-chorales-16th.json}
SONGS=${SONGS:-/usr/share/games/openttd/baseset/openmsx}
WORK=$(mktemp -d /tmp/imagine-bench-music.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
STEPS_FLAG=()
[ "$MODE" = quick ] && STEPS_FLAG=(--steps 20 --eval-every 10)

t0=$(date +%s.%N)
"$BIN" train music --data "$CHORALES" --out "$WORK/chorales" --preset chorales-cpu --quiet "${STEPS_FLAG[@]}" \
  > "$WORK/train.out"
t1=$(date +%s.%N)
"$BIN" eval "$WORK/chorales" --pieces 16 --seconds 30 --json --quiet > "$WORK/eval.json"

# Render speed: every bundled song, one at a time.
rows=""
total_audio=0; total_render=0
for f in "$SONGS"/*.mid; do
  line=$("$BIN" render music "$f" --wav "$WORK/r.wav")
  audio=$(sed -nE 's/.*: ([0-9.]+) s of audio in ([0-9.]+) s.*/\1/p' <<<"$line")
  took=$(sed -nE 's/.*: ([0-9.]+) s of audio in ([0-9.]+) s.*/\2/p' <<<"$line")
  total_audio=$(python3 -c "print($total_audio + $audio)")
  total_render=$(python3 -c "print($total_render + $took)")
  [ "$MODE" = quick ] && break
done

DATE=$(date +%Y-%m-%d)
SUFFIX=""; [ "$MODE" = quick ] && SUFFIX="-quick"
REPORT=$REPO/bench/results/music-$DATE$SUFFIX.md
mkdir -p "$REPO/bench/results"
python3 - "$WORK/eval.json" "$WORK/train.out" "$t0" "$t1" "$total_audio" "$total_render" "$DATE" "$(nproc)" > "$REPORT" <<'PY'
import json, sys
ev = json.load(open(sys.argv[1])); train = open(sys.argv[2]).read().strip().splitlines()[0]
t0, t1, audio, render = map(float, sys.argv[3:7]); date, cores = sys.argv[7], sys.argv[8]
g, t, tr = ev["generated_stats"], ev["heldout_stats"], ev["train_stats"]
print(f"## Music: JSB chorales, --preset chorales-cpu ({date})\n")
print(f"Machine: {cores} cores. Training: `{train}` (whole process {t1 - t0:.0f} s).\n")
print(f"Loss per event on the test split ({ev['pieces_scored']} chorales, {ev['events']} events): "
      f"**{ev['loss_per_event']:.4f} nats/event**.\n")
print("| pieces | notes/s | polyphony | pitch range | mean pitch | pitch-class distance to test |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for name, s, d in [("test set", t, 0.0), ("training set", tr, None), (f"generated ({g['pieces']} x 30 s)", g, ev["pitch_class_distance_heldout"])]:
    dist = "-" if d is None else f"{d:.3f}"
    print(f"| {name} | {s['notes_per_second']:.2f} | {s['polyphony']:.2f} | {s['pitch_range']:.1f} | {s['mean_pitch']:.1f} | {dist} |")
print(f"\nRender speed (FluidSynth, FluidR3_GM, 44.1 kHz stereo, soundfont load included): "
      f"{audio:.0f} s of openttd-openmsx audio in {render:.1f} s = **{audio / max(render, 1e-9):.0f}x real time**.")
PY
cat "$REPORT"
