#!/usr/bin/env bash
# `make demo`: the main jobs on bundled data, a few minutes each on 2 cores:
#   1. a small GPT on the fortunes corpus (Debian's `fortunes`, ~2.5 MB of quips) -> fortunes;
#   2. a VAE and a DCGAN on Fashion-MNIST (Debian's `dataset-fashion-mnist`) -> sample grids,
#      an interpolation strip and variations of a test image;
#   3. a music GPT on the JSB chorales -> a generated piece as .mid, .wav and piano-roll .png,
#      and continuations of a test chorale.
# Every part ends with `imagine detect` on a generated file and on a real one,
# `imagine verify` on a signed output (a demo signing key in $OUT/keys; the watermark key is
# the user's, created on first use in ~/.config/imagine), and `imagine audit` of a generated
# file and of a training item (the copy audit must flag the latter). Each model directory
# gets a model card (README.md) naming the data's licence.
# DEMO_ONLY=text|images|music runs one part.
set -euo pipefail
BIN=${1:-build/imagine}
OUT=${DEMO_OUT:-runs/demo}
DATA=${DEMO_DATA:-/usr/share/games/fortunes}
STEPS=${DEMO_STEPS:-600}
IMAGE_STEPS=${DEMO_IMAGE_STEPS:-5000}
ONLY=${DEMO_ONLY:-}
# Wall-time budgets (train --time-limit; the steps above are caps): 7 minutes of training in
# all, so that the whole demo fits in 10 minutes on a 2-core machine with or without fast bf16.
TEXT_TIME=${DEMO_TEXT_TIME:-2m}
VAE_TIME=${DEMO_VAE_TIME:-1m}
GAN_TIME=${DEMO_GAN_TIME:-2.5m}
MUSIC_TIME=${DEMO_MUSIC_TIME:-1.5m}

mkdir -p "$OUT"
KEYS="$OUT/keys"
[ -f "$KEYS/signing.key" ] || "$BIN" keygen --out "$KEYS" > /dev/null
SIGN=(--sign-key "$KEYS/signing.key")
check() {  # check GENERATED REAL [detect options]
  local gen=$1 real=$2
  shift 2
  echo
  echo "== watermark and provenance"
  "$BIN" detect "$gen" "$real" "$@"
  "$BIN" verify "$gen" --trusted-keys "$KEYS/signing.pub"
}
audit() {  # audit MODEL GENERATED TRAINING_ITEM: is the output a copy? (the training item is)
  echo
  echo "== copy audit: a generated file, then an item of the training data"
  "$BIN" audit --model "$1" "$2" "$3" --quiet
}

if [ -z "$ONLY" ] || [ "$ONLY" = text ]; then
  MODEL="$OUT/fortunes-gpt"
  # The demo owns this folder: start it afresh each time (imagine itself never overwrites a model).
  rm -rf "$MODEL"

  echo "== training a text model on $DATA ($STEPS steps; Ctrl-C saves a checkpoint, resume with --resume)"
  "$BIN" train text --data "$DATA" --out "$MODEL" --log-every 100 \
    --block-size 128 --batch-size 16 --steps "$STEPS" --decay-steps "$STEPS" --eval-every 250 --time-limit "$TEXT_TIME" \
    --data-license "BSD (fortune-mod; see /usr/share/doc/fortunes/copyright)"

  echo
  echo "== three generated fortunes (seeds 1-3)"
  "$BIN" generate text --model "$MODEL" --count 3 --seed 1 --max-tokens 300 --stop '\n%' \
    --out "$OUT/fortunes.txt" --quiet "${SIGN[@]}"
  check "$OUT/fortunes.txt" /usr/share/games/fortunes/fortunes
  head -c 2000 /usr/share/games/fortunes/fortunes > "$OUT/training-excerpt.txt"
  audit "$MODEL" "$OUT/fortunes.txt" "$OUT/training-excerpt.txt"
  echo
  echo "== model summary"
  "$BIN" info "$MODEL"
  echo
  echo "model directory:   $MODEL   (README.md model card, config.json, model.safetensors, copy-index.bin, metrics.jsonl, checkpoint-latest/)"
  echo "generated samples: $OUT/fortunes.txt"
  echo "try:               $BIN generate text --model $MODEL --prompt 'You will' --temperature 0.7"
fi

if [ -z "$ONLY" ] || [ "$ONLY" = images ]; then
  IMG="$OUT/images"
  VAE="$IMG/fashion-vae"
  GAN="$IMG/fashion-gan"
  rm -rf "$IMG"
  mkdir -p "$IMG"
  echo
  echo "== training a VAE on Fashion-MNIST ($IMAGE_STEPS steps; sample grids go to $VAE/samples/)"
  FASHION_LICENSE="MIT (Expat), Zalando SE; see /usr/share/doc/dataset-fashion-mnist/copyright"
  "$BIN" train image --model vae --out "$VAE" --preset fashion-cpu --steps "$IMAGE_STEPS" --time-limit "$VAE_TIME" \
    --data-license "$FASHION_LICENSE"
  echo
  echo "== training a DCGAN on Fashion-MNIST ($IMAGE_STEPS steps)"
  "$BIN" train image --model gan --out "$GAN" --preset fashion-cpu --steps "$IMAGE_STEPS" --time-limit "$GAN_TIME" \
    --data-license "$FASHION_LICENSE"
  echo
  echo "== outputs"
  "$BIN" generate image --model "$GAN" --count 64 --seed 1 --out "$IMG/gan-samples.png" --upscale 2 --quiet
  "$BIN" generate image --model "$VAE" --count 64 --seed 1 --out "$IMG/vae-samples.png" --upscale 2 --quiet
  "$BIN" interpolate image --model "$GAN" --from seed:3 --to seed:11 --steps 10 --out "$IMG/gan-interpolation.png" --upscale 3 --quiet
  "$BIN" export image --out "$IMG/test-images" --count 3 --quiet > /dev/null
  "$BIN" vary image --model "$VAE" --input "$IMG/test-images/test-0-Ankle_boot.png" --count 14 --strength 0.6 \
    --seed 1 --out "$IMG/vae-variations.png" --upscale 3 --quiet
  "$BIN" interpolate image --model "$VAE" --from "$IMG/test-images/test-0-Ankle_boot.png" \
    --to "$IMG/test-images/test-1-Pullover.png" --steps 10 --out "$IMG/vae-boot-to-pullover.png" --upscale 3 --quiet
  "$BIN" generate image --model "$GAN" --count 1 --seed 5 --out "$IMG/gan-seed5.png" --quiet "${SIGN[@]}"
  check "$IMG/gan-seed5.png" "$IMG/test-images/test-2-Trouser.png"
  "$BIN" export image --out "$IMG/train-images" --split train --count 1 --quiet > /dev/null
  audit "$GAN" "$IMG/gan-seed5.png" "$(ls "$IMG"/train-images/*.png | head -1)"
  echo
  echo "== sample quality (FID-style, own Fashion-MNIST classifier's features; lower is better)"
  "$BIN" eval "$GAN" --samples 2000 --no-nearest --quiet
  "$BIN" eval "$VAE" --samples 2000 --no-nearest --iw-k 50 --iw-images 500 --quiet
  echo
  echo "image models:      $VAE  $GAN"
  echo "images:            $IMG/*.png  (variations: first tile = the test image, second = its reconstruction)"
  echo "try:               $BIN generate image --model $GAN --count 16 --out grid.png --truncation 0.8"
fi

if [ -z "$ONLY" ] || [ "$ONLY" = music ]; then
  MUS="$OUT/music"
  CHORALES=${DEMO_CHORALES:-$(dirname "$0")/../../shared/data/jsb-chorales/jsb-chorales-16th.json}
  rm -rf "$MUS"
  mkdir -p "$MUS"
  echo
  echo "== training a music model on the JSB chorales ($CHORALES)"
  "$BIN" train music --data "$CHORALES" --out "$MUS/chorales-gpt" --preset chorales-cpu --log-every 100 --time-limit "$MUSIC_TIME" \
    --data-license "Public-domain music by J. S. Bach (JSB Chorales dataset, Boulanger-Lewandowski et al. 2012)"
  echo
  echo "== a new chorale-like piece (seed 1) and two continuations of a test chorale's first 8 s"
  "$BIN" generate music --model "$MUS/chorales-gpt" --out "$MUS/piece.mid" --wav "$MUS/piece.wav" --seconds 30 --seed 1 \
    --quiet "${SIGN[@]}"
  "$BIN" roll music "$MUS/piece.mid" --png "$MUS/piece-roll.png"
  "$BIN" export music --data "$CHORALES" --out "$MUS/test-chorales" --count 1 --quiet > /dev/null
  "$BIN" continue music --model "$MUS/chorales-gpt" --primer "$MUS/test-chorales/test-0.mid" --primer-seconds 8 \
    --count 2 --seconds 16 --seed 1 --out "$MUS/continuations" --wav --quiet
  echo
  check "$MUS/piece.mid" "$MUS/test-chorales/test-0.mid"
  "$BIN" verify "$MUS/piece.wav" --trusted-keys "$KEYS/signing.pub"
  "$BIN" export music --data "$CHORALES" --split train --out "$MUS/train-chorales" --count 1 --quiet > /dev/null
  audit "$MUS/chorales-gpt" "$MUS/piece.mid" "$MUS/train-chorales/train-0.mid"
  echo
  echo "== evaluation (loss per event on the test split; statistics of 8 generated pieces)"
  "$BIN" eval "$MUS/chorales-gpt" --pieces 8 --seconds 20 --quiet
  echo
  echo "music model:       $MUS/chorales-gpt"
  echo "listen / look:     $MUS/piece.wav  $MUS/piece-roll.png  $MUS/continuations/*.wav"
fi

# The web studio on the demo's models: one folder holding them (hard links, no copies), and a
# data root with the demo's corpora for training runs started from the page.
STUDIO="$OUT/studio"
rm -rf "$STUDIO"
mkdir -p "$STUDIO/models" "$STUDIO/data"
for pair in "fortunes-gpt:$OUT/fortunes-gpt" "fashion-vae:$OUT/images/fashion-vae" \
  "fashion-gan:$OUT/images/fashion-gan" "chorales-gpt:$OUT/music/chorales-gpt"; do
  name=${pair%%:*}
  dir=${pair#*:}
  [ -f "$dir/config.json" ] || continue
  cp -al "$dir" "$STUDIO/models/$name" 2>/dev/null || cp -a "$dir" "$STUDIO/models/$name"
done
mkdir -p "$STUDIO/data/fortunes"
if [ -d "$DATA" ]; then cp "$DATA/fortunes" "$STUDIO/data/fortunes/" 2>/dev/null || true; else cp "$DATA" "$STUDIO/data/fortunes/"; fi
CHORALES_JSON=${DEMO_CHORALES:-$(dirname "$0")/../../shared/data/jsb-chorales/jsb-chorales-16th.json}
if [ -f "$CHORALES_JSON" ]; then mkdir -p "$STUDIO/data/chorales" && cp "$CHORALES_JSON" "$STUDIO/data/chorales/"; fi
echo
echo "== the web studio on these models (generate, vary, blend, listen, check, train in the browser)"
echo "run:               $BIN serve --models $STUDIO/models --data-root $STUDIO/data"
echo "then open:         http://127.0.0.1:7860/"
