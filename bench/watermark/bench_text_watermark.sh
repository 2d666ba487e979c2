#!/usr/bin/env bash
# Text watermark measurements for docs/responsible.md: trains (or reuses) a byte and a BPE
# model on tinyshakespeare, then runs text_wm_bench for every (context, delta, temperature)
# and the false-positive scan over human-written documentation shipped with Debian.
#   bench/watermark/bench_text_watermark.sh BUILD_DIR WORK_DIR
set -euo pipefail
BUILD=${1:-build}
WORK=${2:-/tmp/imagine-wm-bench}
B=$BUILD/imagine
T=$BUILD/text_wm_bench
DATA=${DATA:-../shared/data/tinyshakespeare/input.txt}
N=${N:-40}        # samples per configuration
mkdir -p "$WORK"
[ -f "$WORK/byte/model.safetensors" ] || $B train text --data "$DATA" --out "$WORK/byte" --preset shakespeare-cpu-fast \
  --block-size 256 --steps 2000 --quiet
[ -f "$WORK/bpe/model.safetensors" ] || $B train text --data "$DATA" --out "$WORK/bpe" --preset shakespeare-cpu-fast \
  --tokenizer bpe --vocab-size 2048 --block-size 128 --steps 2000 --quiet

# Human text no model here produced: uncompressed README/copyright/changelog files from
# /usr/share/doc, deduplicated, all of it (~200 MB here; HUMAN=DIR to use another folder).
HUMAN=${HUMAN:-$WORK/human}
if [ ! -d "$HUMAN" ]; then
  mkdir -p "$HUMAN"
  i=0
  find /usr/share/doc /usr/share/common-licenses -type f \( -name '*.gz' -o -name copyright -o -name 'README*' -o -name '*.txt' \) \
    2>/dev/null | sort | while read -r f; do
    case $f in *.gz) zcat "$f" > "$HUMAN/h$i.txt" 2>/dev/null || true ;; *) cp "$f" "$HUMAN/h$i.txt" ;; esac
    i=$((i + 1))
  done
  (cd "$HUMAN" && md5sum h*.txt | sort | awk 'seen[$1]++ {print $2}' | xargs -r rm -f)
  (cd "$HUMAN" && for f in h*.txt; do file -b "$f" | grep -q text || rm -f "$f"; done)
fi
OUT="$WORK/results.jsonl"
: > "$OUT"
for m in byte bpe; do
  for h in 1 4; do
    $T null "$WORK/$m" $h 200 "$HUMAN"/h*.txt >> "$OUT"
  done
done
for m in byte bpe; do
  for temp in 0.8 1.0; do
    for h in 1 4; do
      for d in 0 1 2 3; do
        $T gen "$WORK/$m" "$N" 400 $h $d $temp >> "$OUT"
      done
    done
  done
done
echo "results in $OUT"
