#!/usr/bin/env bash
# Runs every benchmark (`make bench` calls this). Each writes its own bench/results/*.md.
#
#   bench/run_all.sh IMAGINE_BIN [quick]
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 IMAGINE_BIN [quick]" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bash "$HERE/bench_text.sh" "$@"
