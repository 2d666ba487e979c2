// `imagine detect`: which detector a file needs (by its bytes, not its name), and its
// verdict. Text and MIDI are scored with the token watermark (MIDI is re-encoded into the
// music model's events), PNG/JPEG with the image watermark. WAV files carry no audio-domain
// mark: their provenance (the RIFF chunk of their MIDI's manifest) is reported instead.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "provenance/image_watermark.h"
#include "provenance/token_watermark.h"

namespace imagine {

struct DetectOptions {
  std::string watermark_key;   // "" = the default key (never created by detection)
  std::string model_dir;       // text: its tokenizer; MIDI: its event vocabulary
  DetectionPolicy policy;      // z threshold, minimum scored tokens
  // Text: score only positions whose next-token entropy under model_dir's model reaches
  // this many nats (provenance/sweet.h); 0 = every position.
  double entropy_threshold = 0;
  // Token parameters: taken from the file's manifest when it records them, else these.
  TokenWatermarkParams tokens;
  ImageWatermarkParams images;
};

struct DetectReport {
  std::string path;
  std::string type;       // text, png, jpeg, midi, wav
  std::string method;     // kgw-selfhash-4, kgw-lefthash-1, image scheme, none
  std::string verdict;    // watermarked, not watermarked, inconclusive, no audio watermark
  double z = 0;
  double p_value = 1;
  int64_t scored = 0;     // tokens or coefficients scored
  std::string unit;       // "tokens" or "coefficients"
  bool manifest = false;  // the file carries a provenance manifest
  std::string note;       // e.g. which tokenizer was assumed
  nlohmann::json to_json() const;
};

DetectReport detect_file(const std::string& path, const DetectOptions& opt);

}  // namespace imagine
