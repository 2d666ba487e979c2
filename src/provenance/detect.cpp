// See detect.h.
#include "provenance/detect.h"

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "image/image.h"
#include "music/events.h"
#include "music/midi.h"
#include "provenance/carriers.h"
#include "provenance/keys.h"
#include "provenance/sweet.h"
#include "tokenize/tokenizer.h"

namespace imagine {

nlohmann::json DetectReport::to_json() const {
  return {{"path", path},   {"type", type}, {"method", method},     {"verdict", verdict},   {"z", z},
          {"p_value", p_value}, {"scored", scored}, {"unit", unit}, {"manifest", manifest}, {"note", note}};
}

namespace {

void fill(DetectReport& r, const TokenDetection& d, const TokenWatermarkParams& p) {
  r.method = p.scheme();
  r.z = d.z;
  r.p_value = d.p_value;
  r.scored = d.scored;
  r.unit = "tokens";
  r.verdict = d.verdict;
}

// The token parameters: the manifest's when it has them (the file says how it was marked).
TokenWatermarkParams token_params(const EmbeddedProvenance& prov, const DetectOptions& opt) {
  if (prov.present && prov.manifest.contains("watermark")) {
    const auto& w = prov.manifest["watermark"];
    if (w.value("applied", false) && w.contains("context")) return TokenWatermarkParams::from_json(w);
  }
  return opt.tokens;
}

}  // namespace

DetectReport detect_file(const std::string& path, const DetectOptions& opt) {
  const std::string bytes = read_file(path);
  const WatermarkKey key = load_watermark_key(opt.watermark_key, /*create=*/false);
  DetectReport r;
  r.path = path;
  const EmbeddedProvenance prov = read_provenance(path, bytes);
  r.manifest = prov.present;
  switch (prov.type) {  // sniffed; text with a sidecar even when it is not UTF-8
    case ArtifactType::Png:
    case ArtifactType::Jpeg: {
      r.type = is_png(bytes) ? "png" : "jpeg";
      const ImageDetection d = detect_image_watermark(decode_image(bytes, path), key.bytes, opt.images,
                                                      opt.policy.z_threshold);
      r.method = opt.images.to_json().value("scheme", std::string("dct-qim"));
      r.z = d.z;
      r.p_value = d.p_value;
      r.scored = d.coefficients;
      r.unit = "coefficients";
      r.verdict = d.coefficients == 0 ? "inconclusive" : d.detected ? "watermarked" : "not watermarked";
      if (d.coefficients == 0) r.note = "image too small to carry the mark";
      return r;
    }
    case ArtifactType::Midi: {
      r.type = "midi";
      EventVocab vocab;
      if (!opt.model_dir.empty()) {
        vocab = EventVocab::from_json(json_field(read_model_config(opt.model_dir), "events", opt.model_dir + "/config.json"));
      } else if (prov.present && prov.manifest.contains("watermark") && prov.manifest["watermark"].contains("events")) {
        vocab = EventVocab::from_json(prov.manifest["watermark"]["events"]);
        r.note = "event vocabulary from the file's manifest";
      } else {
        r.note = "default event vocabulary (10 ms grid); pass --model for the model's";
      }
      const std::vector<int> ev = vocab.encode(parse_midi(bytes, path), /*eos=*/false);
      const TokenWatermarkParams p = token_params(prov, opt);
      fill(r, TokenWatermark(key.bytes, p).detect(std::vector<int64_t>(ev.begin(), ev.end()), opt.policy), p);
      return r;
    }
    case ArtifactType::Wav:
      r.type = "wav";
      r.method = "none";
      r.verdict = "no audio watermark";
      r.note = prov.present ? "provenance manifest present (see imagine verify); audio itself is not watermarked"
                            : "no provenance manifest; audio is not watermarked by imagine";
      return r;
    case ArtifactType::Text: {
      r.type = "text";
      std::unique_ptr<Tokenizer> tok;
      if (!opt.model_dir.empty()) {
        const auto cfg = read_model_config(opt.model_dir);
        tok = load_tokenizer(json_field(cfg, "tokenizer", opt.model_dir + "/config.json"), opt.model_dir);
        r.note = tok->kind() + " tokenizer of " + opt.model_dir;
      } else {
        tok = make_byte_tokenizer();
        r.note = "byte tokens (pass --model DIR to score with a BPE model's tokenizer)";
      }
      const TokenWatermarkParams p = token_params(prov, opt);
      const std::vector<int64_t> ids = tok->encode(bytes);
      if (opt.entropy_threshold > 0) {
        // SWEET-style: only positions where the model was uncertain are scored.
        IMAGINE_CHECK(!opt.model_dir.empty(), "pass --model DIR (the model that wrote the text)",
                      "--entropy-threshold needs the model to compute entropies");
        TextModel m = load_text_model(opt.model_dir, torch::kCPU);
        const std::vector<bool> mask = entropy_mask(next_token_entropies(m, ids), opt.entropy_threshold);
        fill(r, TokenWatermark(key.bytes, p).detect(ids, opt.policy, 0, &mask), p);
        r.note += str("; scoring positions with next-token entropy >= ", opt.entropy_threshold, " nats");
      } else {
        fill(r, TokenWatermark(key.bytes, p).detect(ids, opt.policy), p);
      }
      return r;
    }
    default:
      throw Error(path + " is not a file imagine can check", "detect reads text (UTF-8), PNG, JPEG, MIDI and WAV files");
  }
}

}  // namespace imagine
