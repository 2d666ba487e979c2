#!/usr/bin/env bash
# Installs every Debian package imagine needs to build, test, demo and benchmark.
# Idempotent: packages already present are skipped, so it is cheap to run before each build.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config
  libtorch-dev              # LibTorch 1.13 (CPU)
  libopenblas0-openmp       # without it LibTorch links reference BLAS: ~15x slower training
  libsentencepiece-dev      # BPE tokenizer
  nlohmann-json3-dev        # config.json, safetensors header
  libpng-dev libjpeg-dev zlib1g-dev  # image decoding / PNG writing, gzip'd IDX
  libsmf-dev libfluidsynth-dev fluid-soundfont-gm openttd-openmsx  # MIDI I/O, WAV rendering, bundled songs
  libgloo-dev               # Gloo headers for c10d's ProcessGroupGloo: data-parallel training (--nproc)
  libgtest-dev googletest   # unit tests
  python3-torch             # PyTorch reference models for bench/
  fortunes                  # default text corpus for the demo
  dataset-fashion-mnist     # default image data set
  libsodium-dev             # Ed25519 signatures on provenance manifests
  libcpp-httplib-dev        # imagine serve: the HTTP API
  libimage-exiftool-perl    # tests: exiftool reads the XMP DigitalSourceType of generated PNGs
  python3-mido              # tests: a second MIDI parser reads files carrying manifests
  chromium                  # tests: the web studio in a real browser (driven by playwright-core)
)

# Node.js runs the API tests' clients (the official openai npm package, tests/node). The
# machines ship Node.js 20; where there is none, Debian's nodejs + npm are installed.
if ! command -v npm >/dev/null; then PACKAGES+=(nodejs npm); fi

# The npm packages of tests/node, pinned by its package-lock.json (npm's registry): the
# official openai client and playwright-core (drives Debian's chromium; it downloads no browser).
node_packages() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/node"
  if [ ! -f "$dir/node_modules/openai/package.json" ] || [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
    echo "installing npm packages in tests/node"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  node_packages
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: missing packages: ${missing[*]}" >&2
    echo "hint: run this script as root (or install sudo)" >&2
    exit 1
  fi
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
node_packages
