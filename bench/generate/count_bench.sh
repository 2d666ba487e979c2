#!/usr/bin/env bash
# `generate text --count 8` against 8 sequential runs of one sample each (issue: --count N
# decodes the N samples together in one batch). Prints both the whole-command wall time
# (what a user waits for: 8 runs also load the model 8 times) and the decoding rate the CLI
# reports, on the same model in one run, with the machine's CPU flags.
#   bench/generate/count_bench.sh build/imagine MODEL_DIR [TOKENS] [THREADS]
set -euo pipefail
BIN=${1:?usage: count_bench.sh IMAGINE MODEL_DIR [TOKENS] [THREADS]}
MODEL=${2:?usage: count_bench.sh IMAGINE MODEL_DIR [TOKENS] [THREADS]}
TOKENS=${3:-256}
THREADS=${4:-$(nproc)}
N=8
now() { date +%s.%N; }
rate() {  # the mean of the "[... tokens/s ...]" lines on stdin
  grep -o '[0-9.]* tokens/s' | awk '{s += $1; n++} END {printf "%.0f", s / n}'
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); flags: $(grep -o 'avx512_bf16\|amx_bf16\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "model: $MODEL, $TOKENS tokens a sample, $THREADS threads, $(date -u +%F)"
"$BIN" generate text --model "$MODEL" --max-tokens 8 --quiet > /dev/null  # warm the page cache
t0=$(now)
together=$("$BIN" generate text --model "$MODEL" --count $N --max-tokens "$TOKENS" --seed 1 --threads "$THREADS" 2>&1 >/dev/null)
t1=$(now)
alone=""
for i in $(seq 0 $((N - 1))); do
  alone+=$("$BIN" generate text --model "$MODEL" --max-tokens "$TOKENS" --seed $((1 + i)) --threads "$THREADS" 2>&1 >/dev/null)
  alone+=$'\n'
done
t2=$(now)
wall_together=$(echo "$t1 - $t0" | bc -l)
wall_alone=$(echo "$t2 - $t1" | bc -l)
per_sample_together=$(echo "$together" | rate)  # each of the 8 samples' own rate in the batch
per_sample_alone=$(echo "$alone" | rate)
printf "whole command: --count %d %.2f s, %d runs %.2f s: %.1fx\n" $N "$wall_together" $N "$wall_alone" \
  "$(echo "$wall_alone / $wall_together" | bc -l)"
printf "decoding: %d x %s tokens/s together = %d tokens/s, alone %s tokens/s: %.1fx\n" $N "$per_sample_together" \
  $((N * per_sample_together)) "$per_sample_alone" "$(echo "$N * $per_sample_together / $per_sample_alone" | bc -l)"
