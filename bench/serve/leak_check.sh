#!/usr/bin/env bash
# Memory check of `imagine serve` under valgrind (docs/benchmarks.md, "Serving"): the server
# runs under memcheck while every endpoint is called, streamed and not, with good and bad
# input (bad JSON, unknown model, path traversal, oversize body, wrong key, garbage
# uploads); then it is stopped with SIGTERM and valgrind's leak summary is read. It runs
# twice, one round of requests and ROUNDS rounds, and fails when the memory definitely or
# indirectly lost (no pointer left to it) grows with the rounds: a leak per request. What is
# lost once per process (a library's initialisation) and "possibly lost" / "still reachable"
# blocks (LibTorch's and OpenMP's process-lifetime pools) are reported, not judged.
#
#   bench/serve/leak_check.sh IMAGINE_BIN [WORK_DIR] [ROUNDS]
# Slow (valgrind runs LibTorch some 30x slower): a few minutes on 2 cores.
set -euo pipefail
BIN=$(realpath "$1")
WORK=${2:-/tmp/imagine-leak-check}
ROUNDS=${3:-4}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED="$HERE/../../../shared/data"
command -v valgrind > /dev/null || { echo "error: valgrind is not installed" >&2; echo "hint: apt-get install valgrind" >&2; exit 2; }
M="$WORK/models"
mkdir -p "$M"
printf 'To be, or not to be, that is the question.\nWhether tis nobler in the mind to suffer.\n%.0s' $(seq 200) > "$WORK/corpus.txt"
[ -f "$M/tiny/model.safetensors" ] || "$BIN" train text --data "$WORK/corpus.txt" --out "$M/tiny" --preset tiny \
  --steps 30 --no-samples --quiet --threads 1
[ -f "$M/vae/model.safetensors" ] || "$BIN" train image --model vae --out "$M/vae" --preset tiny --quiet --threads 1 \
  --feature-cache "$WORK/cache"
[ -f "$M/bach/model.safetensors" ] || "$BIN" train music --data "$SHARED/jsb-chorales/jsb-chorales-16th.json" \
  --out "$M/bach" --preset tiny --quiet --threads 1

summary() { sed -n "s/.*$1: *\([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 bytes in \2 blocks/p" "$LOG" | tail -1; }
bytes() { local b=${1%% *}; b=${b//,/}; echo "${b:-0}"; }
run() {  # run ROUNDS: the server under valgrind for ROUNDS rounds of requests; sets LOST
  local rounds=$1
  LOG="$WORK/valgrind-$rounds.log"
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect --num-callers=30 \
    --log-file="$LOG" "$BIN" serve --models "$M" --port 0 --threads 1 --api-key secret-key --quiet \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
  PID=$!
  trap 'kill $PID 2>/dev/null || true' EXIT
  for _ in $(seq 600); do grep -q "http://" "$WORK/serve.out" 2>/dev/null && break; sleep 0.5; done
  PORT=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$WORK/serve.out")
  [ -n "$PORT" ] || { echo "error: the server did not start under valgrind" >&2; cat "$WORK/serve.err" >&2; exit 1; }
  U="http://127.0.0.1:$PORT"
  A=(-H "Authorization: Bearer secret-key")
  calls=0
  call() {  # call METHOD PATH [curl args...]: any HTTP answer will do; only the leak summary is judged
    local method=$1 path=$2
    shift 2
    curl -s -o /dev/null -w '%{http_code} ' --max-time 600 -X "$method" "${A[@]}" "$@" "$U$path" || echo -n "--- "
    calls=$((calls + 1))
  }
  head -c 3000 /dev/urandom > "$WORK/garbage.bin"
  head -c 2000000 /dev/zero | tr '\0' 'a' > "$WORK/big.json"
  for r in $(seq "$rounds"); do
    echo "round $r:"
    call GET /health
    call GET /metrics
    call GET /api/models
    call GET /api/models/tiny
    call POST /api/generate/text -d '{"model": "tiny", "prompt": "To be", "max_tokens": 40, "seed": '"$r"'}'
    call POST /api/generate/text -N -d '{"model": "tiny", "prompt": "To be", "max_tokens": 40, "stream": true, "n": 2}'
    call POST /v1/completions -d '{"model": "tiny", "prompt": "Whether", "max_tokens": 30, "stop": ["."]}'
    call POST /v1/chat/completions -N -d '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20, "stream": true}'
    call GET /v1/models
    call POST /api/generate/image -d '{"model": "vae", "count": 2, "seed": '"$r"'}'
    curl -s "${A[@]}" "$U/api/generate/image" -d '{"model": "vae", "count": 1, "seed": 5}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["base64"])' | base64 -d > "$WORK/one.png" || true
    curl -s "${A[@]}" "$U/api/generate/music" -d '{"model": "bach", "seconds": 2, "seed": 9, "wav": false}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["midi"]["base64"])' > "$WORK/piece.b64" || true
    call POST /api/vary/image -d "{\"model\": \"vae\", \"image\": \"$(base64 -w0 "$WORK/one.png")\", \"count\": 2}"
    call POST /api/interpolate/image -d '{"model": "vae", "from": {"seed": 1}, "to": {"seed": 2}, "steps": 3}'
    call POST /api/blend/image -d "{\"model\": \"vae\", \"images\": [{\"image\": \"$(base64 -w0 "$WORK/one.png")\", \"weight\": 1}, {\"image\": \"$(base64 -w0 "$WORK/one.png")\", \"weight\": 2}]}"
    call POST /api/continue/music -d "{\"model\": \"bach\", \"seconds\": 1, \"primer\": \"$(cat "$WORK/piece.b64")\", \"count\": 2}"
    call POST /api/continue/music -d '{"model": "bach", "seconds": 1, "primer": "TVRoZA==", "count": 1}'
    call POST /api/generate/music -d '{"model": "bach", "seconds": 2, "seed": '"$r"', "wav": true}'
    call POST "/api/detect?model=tiny" -F "file=@$WORK/corpus.txt"
    call POST "/api/verify?name=one.png" --data-binary "@$WORK/one.png"
    call POST "/api/audit?model=tiny" -F "file=@$WORK/corpus.txt"
    call POST "/api/verify?name=x.mid" --data-binary "@$WORK/garbage.bin"
    call POST /api/detect -F "file=@$WORK/garbage.bin"
    call POST /api/generate/text -d '{"model": "tiny", "prompt": '
    call POST /api/generate/text -d '{"model": "../../etc/passwd"}'
    call POST /api/generate/text -d '{"model": "nope"}'
    call POST /api/generate/text -d '{"model": "tiny", "max_tokens": -5}'
    call POST /api/generate/text --data-binary "@$WORK/big.json"
    call POST /api/generate/image -d '{"model": "vae", "count": 100000}'
    call GET /api/jobs
    call GET /api/jobs/job-404
    curl -s -o /dev/null -w '%{http_code} ' "$U/api/models" || true  # no key: 401
    calls=$((calls + 1))
    echo
  done
  kill -TERM $PID
  wait $PID || true
  trap - EXIT
  grep -q "ERROR SUMMARY" "$LOG" || { echo "error: valgrind wrote no summary (did the server exit cleanly?)" >&2; exit 1; }
  local definite indirect
  definite=$(summary "definitely lost")
  indirect=$(summary "indirectly lost")
  echo "$rounds round(s), $calls requests: definitely lost ${definite:-0 bytes}; indirectly lost ${indirect:-0 bytes};" \
    "possibly lost $(summary "possibly lost"); still reachable $(summary "still reachable") (log: $LOG)"
  echo "  memcheck: $(sed -n 's/.*ERROR SUMMARY: //p' "$LOG") (reported; leaks are what is judged)"
  LOST=$(( $(bytes "$definite") + $(bytes "$indirect") ))
}
run 1
ONE=$LOST
run "$ROUNDS"
MANY=$LOST
# What a process loses once (library initialisation that is never torn down) is the same
# after one round and after many; anything a request leaks grows with the rounds.
if [ "$MANY" -gt "$ONE" ]; then
  echo "error: the server leaks memory: $ONE bytes lost after 1 round, $MANY after $ROUNDS; valgrind's records:" >&2
  grep -B2 -A30 "are definitely lost\|are indirectly lost" "$LOG" | head -200 >&2
  exit 1
fi
echo "no leak grows with requests ($ONE bytes lost once per process, the same after $ROUNDS rounds)"
