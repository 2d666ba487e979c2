#!/usr/bin/env bash
# Runs every benchmark (`make bench` calls this). Each writes its own bench/results/*.md.
#
#   bench/run_all.sh IMAGINE_BIN [quick]
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bash "$HERE/bench_text.sh" "$@"
bash "$HERE/bench_image.sh" "$@"
bash "$HERE/bench_music.sh" "$@"
