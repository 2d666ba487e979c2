#!/usr/bin/env bash
# Music figures for docs/responsible.md: the token watermark after the MIDI round trip
# (detection rate by piece length), and the melody copy audit (longest melody passage shared
# with a training chorale) for generated pieces, held-out test chorales and training
# chorales. Prints one JSON line per measurement.
#   bench/watermark/bench_music_audit.sh BUILD_DIR WORK_DIR
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-/tmp/imagine-music-bench}
B=$BUILD/imagine
CHORALES=${CHORALES:-../shared/data/jsb-chorales/jsb-chorales-16th.json}
N=${N:-20}
mkdir -p "$WORK"
[ -f "$WORK/bach/model.safetensors" ] || $B train music --data "$CHORALES" --out "$WORK/bach" --preset chorales-cpu --quiet
for secs in 5 10 20 40; do
  rm -rf "$WORK/gen$secs" && mkdir -p "$WORK/gen$secs"
  for s in $(seq 1 "$N"); do
    $B generate music --model "$WORK/bach" --out "$WORK/gen$secs/s$s.mid" --seconds "$secs" --seed "$s" --quiet > /dev/null
  done
  $B detect "$WORK/gen$secs"/*.mid --json | /usr/bin/python3 -c "
import json, sys
rs = [json.loads(l) for l in sys.stdin]
z = [r['z'] for r in rs]
print(json.dumps({'measure': 'music-watermark', 'seconds': $secs, 'pieces': len(rs),
  'scored_mean': sum(r['scored'] for r in rs) / len(rs), 'z_mean': sum(z) / len(z), 'z_min': min(z),
  'detected': sum(r['verdict'] == 'watermarked' for r in rs) / len(rs)}))"
done
# Unwatermarked pieces and real chorales: the null side.
rm -rf "$WORK/plain" "$WORK/test" "$WORK/train" && mkdir -p "$WORK/plain"
for s in $(seq 1 "$N"); do
  $B generate music --model "$WORK/bach" --out "$WORK/plain/s$s.mid" --seconds 20 --seed "$s" --no-watermark --quiet > /dev/null
done
$B export music --data "$CHORALES" --split test --count "$N" --out "$WORK/test" --quiet > /dev/null
$B export music --data "$CHORALES" --split train --count "$N" --out "$WORK/train" --quiet > /dev/null
for set in plain test; do
  $B detect "$WORK/$set"/*.mid --json | /usr/bin/python3 -c "
import json, sys
rs = [json.loads(l) for l in sys.stdin]
print(json.dumps({'measure': 'music-watermark-null', 'set': '$set', 'pieces': len(rs),
  'z_max': max(r['z'] for r in rs), 'detected': sum(r['verdict'] == 'watermarked' for r in rs)}))"
done
for set in gen20 test train; do
  $B audit --model "$WORK/bach" "$WORK/$set"/*.mid --json --quiet | /usr/bin/python3 -c "
import json, sys
j = json.load(sys.stdin)
n = sorted(i['detail']['longest_melody_notes'] for i in j['items'])
print(json.dumps({'measure': 'melody-audit', 'set': '$set', 'pieces': len(n), 'longest_notes_median': n[len(n) // 2],
  'longest_notes_max': n[-1], 'longest_notes_min': n[0], 'flagged': j['flagged']}))"
done
