#!/usr/bin/env bash
# `imagine serve` under load (docs/benchmarks.md): the batched-decode figure (8 concurrent
# text clients against one, same model, same server) and 50 loopback clients for 30 s mixing
# text, image and music requests (latency, statuses, throughput, server RSS).
#
#   bench/serve/bench_serve.sh IMAGINE_BIN [WORK_DIR]
# Trains small models into WORK_DIR/models the first time (shakespeare-cpu text, fashion-cpu
# VAE, chorales-cpu music, a few hundred steps: the model sizes matter here, not quality).
set -euo pipefail
BIN=$(realpath "$1")
WORK=${2:-/tmp/imagine-serve-bench}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH=$(dirname "$BIN")/serve_bench
DECODE=$(dirname "$BIN")/decode_bench
SHARED="$ROOT/../shared/data"
M="$WORK/models"
mkdir -p "$M"
[ -f "$M/text/model.safetensors" ] || "$BIN" train text --data "$SHARED/tinyshakespeare/input.txt" --out "$M/text" \
  --preset shakespeare-cpu --steps 300 --no-samples --quiet
# The 10.7M-parameter `shakespeare` size (context 256), barely trained: what batching does
# at a width where the matmuls, not the per-op overhead, dominate.
[ -f "$M/text-large/model.safetensors" ] || "$BIN" train text --data "$SHARED/tinyshakespeare/input.txt" \
  --out "$M/text-large" --preset shakespeare --steps 20 --batch-size 8 --no-samples --quiet
[ -f "$M/vae/model.safetensors" ] || "$BIN" train image --model vae --out "$M/vae" --preset fashion-cpu --steps 300 --quiet
[ -f "$M/music/model.safetensors" ] || "$BIN" train music --data "$SHARED/jsb-chorales/jsb-chorales-16th.json" \
  --out "$M/music" --preset chorales-cpu --steps 300 --quiet

"$BIN" serve --models "$M" --port 0 --quiet --queue 16 --text-queue 32 > "$WORK/serve.out" 2> "$WORK/serve.err" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "http://" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$WORK/serve.out")
echo "server pid $PID port $PORT"

BATCH=$("$BENCH" batch "$PORT" text 20 128)
echo "$BATCH"
BATCH_LARGE=$("$BENCH" batch "$PORT" text-large 20 128)
echo "$BATCH_LARGE"
LOAD=$("$BENCH" load "$PORT" text vae music 50 30 "$PID")
echo "$LOAD"
kill $PID
wait $PID || true
trap - EXIT
# The decoder alone (no HTTP, no client threads): B sequences together, and the parts of a step.
DEC=$("$DECODE" "$M/text" 256 2)
echo "$DEC"
DEC_LARGE=$("$DECODE" "$M/text-large" 128 2)
echo "$DEC_LARGE"

TAG=$(grep -q -w avx512_bf16 /proc/cpuinfo && echo avx512bf16 || echo avx2)
OUT="$ROOT/bench/results/serve-$(date +%F)-$TAG.md"
{
  echo "# imagine serve: batched decoding and mixed load ($(date +%F))"
  echo
  echo "- machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "- CPU flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "- models: shakespeare-cpu text (byte), shakespeare-size text (10.7M, context 256, 20 steps), fashion-cpu VAE, chorales-cpu music; server defaults (--slots 8)"
  echo
  echo "## 8 concurrent text clients vs one (128 tokens per request, 20 s each)"
  echo '```json'
  echo "$BATCH"
  echo '```'
  echo
  echo "## The same with the 10.7M shakespeare-size model (context 256)"
  echo '```json'
  echo "$BATCH_LARGE"
  echo '```'
  echo
  echo "## The decoder alone (decode_bench, 2 threads): shakespeare-cpu, 256 tokens; shakespeare size, 128 tokens"
  echo '```json'
  echo "$DEC"
  echo "$DEC_LARGE"
  echo '```'
  echo
  echo "## 50 clients, 30 s: 60% text (64 tokens), 25% image (4 per request), 15% music (4 s, no WAV)"
  echo '```json'
  echo "$LOAD"
  echo '```'
} > "$OUT"
echo "wrote $OUT"
