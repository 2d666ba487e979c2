// The one way generated artifacts leave the program. A verb (CLI or server) computes its
// content, describes how it was made (GenerationRecord), and hands both to an
// OutputWriter, which
//   1. watermarks the content (images here; token streams were marked while sampling,
//      through token_watermark()),
//   2. builds the provenance manifest (provenance/manifest.h): tool, model id, settings,
//      watermark parameters and key id, content hash, training-data record, IPTC digital
//      source type,
//   3. signs it when a signing key is configured,
//   4. embeds it the way other tools read it (PNG: XMP + "parameters" + manifest chunks;
//      MIDI: a meta event; WAV: RIFF INFO + a chunk; text: a FILE.provenance.json sidecar)
//   5. and writes atomically.
// Dataset exports are not generated content and do not come through here.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "image/image.h"
#include "music/render.h"
#include "music/song.h"
#include "provenance/image_watermark.h"
#include "provenance/keys.h"
#include "provenance/envelope.h"
#include "provenance/token_watermark.h"

namespace imagine {

enum class ProvenanceLevel { None, Minimal, Full };
ProvenanceLevel parse_provenance_level(const std::string& name);  // none|minimal|full
std::string to_string(ProvenanceLevel level);

struct OutputPolicy {
  bool watermark = true;
  ProvenanceLevel level = ProvenanceLevel::Minimal;
  std::string watermark_key;  // key file; "" = $XDG_CONFIG_HOME/imagine/watermark.key (created on first use)
  std::string sign_key;       // "" = $XDG_CONFIG_HOME/imagine/signing.key when it exists, else unsigned
  TokenWatermarkParams tokens;
  ImageWatermarkParams images;
  // The manifests' "created" time (ISO 8601 UTC); "" = the time of writing. Set from
  // SOURCE_DATE_EPOCH (source_date_epoch()), the same request gives the same bytes.
  std::string created;
};

// $SOURCE_DATE_EPOCH as an ISO 8601 UTC time, "" when unset; Error when it is not a number.
// Read once by a front end at start-up, never on a request path.
std::string source_date_epoch();

// A generated artifact as bytes, as it is written to a file or sent in a response.
struct Artifact {
  std::string bytes;        // the file: PNG, MIDI, WAV or the text itself
  nlohmann::json manifest;  // the provenance manifest (embedded, or a text's sidecar); null at none
  std::string mime;         // image/png, audio/midi, audio/wav, text/plain; charset=utf-8
};

// The model an artifact came from, as the manifest records it.
struct ModelRecord {
  std::string id;          // "sha256:<hex of the weights file>"
  std::string name;        // the model directory's name
  std::string family;      // gpt-text, gpt-music, vae, gan
  nlohmann::json training_data = nlohmann::json::object();  // fingerprint, files, licence
};
// Hashes the weights (`which`: best | latest) and reads config.json's dataset record.
ModelRecord model_record(const std::string& model_dir, const std::string& which = "best");

// How an artifact was made.
struct GenerationRecord {
  std::string verb;   // generate, vary, blend, interpolate, reconstruct, continue, render, roll, sample
  std::string kind;   // text, image, music, audio
  ModelRecord model;
  nlohmann::json settings = nlohmann::json::object();  // seeds and every generation setting
  std::string prompt;                                   // recorded only at --provenance full
  nlohmann::json attribution;  // nearest training items (recorded only at full)
  nlohmann::json copy_check;   // the --reject-copies check and its result
  nlohmann::json source;       // the manifest of the input a render was made from
};

class OutputWriter {
 public:
  // Loads (or creates) the watermark key and the signing key once.
  explicit OutputWriter(const OutputPolicy& policy);

  const OutputPolicy& policy() const { return policy_; }
  // The token watermark for generation, or nullptr with --no-watermark.
  const TokenWatermark* token_watermark() const { return tokens_.get(); }
  const WatermarkKey& watermark_key() const { return key_; }
  bool signing() const { return sign_.has_value(); }

  // The manifest for content with this hash (signed when a key is configured);
  // null at --provenance none.
  nlohmann::json manifest(const GenerationRecord& rec, const std::string& content_sha256,
                          const std::string& content_hashing) const;

  // The artifacts, in memory (what the write_ functions write; the server sends them).
  Artifact encode_text(const std::string& text, const GenerationRecord& rec) const;
  Artifact encode_image(const Image& img, const GenerationRecord& rec,
                        const std::vector<std::pair<std::string, std::string>>& parameters = {},
                        Image* marked = nullptr) const;
  Artifact encode_midi(const Song& song, const GenerationRecord& rec) const;
  Artifact encode_wav(const Song& song, const GenerationRecord& rec, const std::string& soundfont = "",
                      RenderResult* render = nullptr) const;

  // Text: `text` is written to `path` and the manifest to path + ".provenance.json".
  void write_text(const std::string& path, const std::string& text, const GenerationRecord& rec) const;
  // Images: watermarked (unless off), then PNG with XMP, parameters and manifest. `parameters`
  // are the "key: value" pairs of the parameters chunk (seed, steps, model hash, ...).
  // Returns the image as written.
  Image write_image(const std::string& path, const Image& img, const GenerationRecord& rec,
                    const std::vector<std::pair<std::string, std::string>>& parameters = {}) const;
  // Music: the song as MIDI with the manifest in a meta event.
  void write_midi(const std::string& path, const Song& song, const GenerationRecord& rec) const;
  // Audio: rendered with FluidSynth; RIFF INFO comment + manifest chunk.
  RenderResult write_wav(const std::string& path, const Song& song, const GenerationRecord& rec,
                         const std::string& soundfont = "") const;

 private:
  OutputPolicy policy_;
  WatermarkKey key_;
  std::optional<SigningKey> sign_;
  std::unique_ptr<TokenWatermark> tokens_;
};

}  // namespace imagine
