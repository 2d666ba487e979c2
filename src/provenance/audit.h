// The copy audit of a model's outputs against its training data (the engine is
// provenance/copy_audit.h). One auditor per model directory:
//   text   the longest verbatim token run shared with the training split, from the suffix
//          array that training stored as MODEL_DIR/copy-index.bin (or rebuilt from the
//          recorded files after their sha256 is checked); flagged at >= 50 tokens for BPE
//          models and >= 200 for byte models;
//   music  the longest transposition- and tempo-invariant melody passage shared with a
//          training piece (same file); flagged at >= 16 melody notes;
//   image  the nearest training images in pixel space and in the evaluation feature
//          space; flagged by the ratio test of Carlini et al. 2023 (nearest / mean of the
//          50 nearest < 0.5) in pixel space (the feature-space ratio is reported, not used
//          to flag: it fires on 7% of held-out real Fashion-MNIST images).
// Reports name the training item (file and offset, piece, image index) so they double as
// attribution, and `reject_copies` re-samples what the audit flags.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/text_corpus.h"
#include "image/image.h"
#include "music/song.h"
#include "provenance/copy_audit.h"
#include "tokenize/tokenizer.h"

namespace imagine {

constexpr const char* kCopyIndexFile = "copy-index.bin";

struct AuditOptions {
  int64_t min_tokens = 0;         // text: flag runs of this many tokens (0: 50 for BPE, 200 for bytes)
  int64_t min_melody_notes = 16;  // music: flag a shared melody passage of this many notes
  NeighbourOptions neighbours;    // images: k and the ratio threshold
  std::string feature_cache;      // images: where the feature network is cached ("" = default)
};

struct AuditReport {
  std::string kind;       // text, music, image
  bool flagged = false;   // a likely copy of training data
  std::string summary;    // one line for people
  nlohmann::json detail;  // the measurements and the training items, for --json and manifests
};

class CopyAuditor {
 public:
  virtual ~CopyAuditor() = default;
  virtual std::string kind() const = 0;  // text, music or image: what this model's audits take
  // Each throws imagine::Error when the auditor is of another kind.
  virtual AuditReport audit_text(const std::string& text) const;
  virtual AuditReport audit_song(const Song& song) const;
  virtual AuditReport audit_image(const Image& image) const;
  // Images only: a side-by-side picture of `image` and the three nearest training images
  // (pixel space) its audit_image report names, each scaled to at least 96 px.
  virtual Image side_by_side(const Image& image, const AuditReport& report) const;
};

// Audits one file's bytes by their type: text, PNG/JPEG (decoded into *image when given) or
// MIDI. Error with a hint for WAV (audit its MIDI) and anything else.
AuditReport audit_file_bytes(const CopyAuditor& a, const std::string& bytes, const std::string& what,
                             Image* image = nullptr);

// Opens the auditor for MODEL_DIR (text, music, or image family). Text and music read
// copy-index.bin, or rebuild it from the recorded training data when it is missing
// (checking the files' sha256 against config.json); images load the training set and
// the feature network. `log` receives progress lines (may be empty).
std::unique_ptr<CopyAuditor> open_copy_auditor(const std::string& model_dir, const AuditOptions& options,
                                               const std::function<void(const std::string&)>& log);

// Training time: the index over the training split (the first train_bytes of the corpus),
// one document per file, and its config.json record.
TokenIndex build_text_copy_index(const TextCorpus& corpus, uint64_t train_bytes, const Tokenizer& tokenizer);
TokenIndex build_music_copy_index(const std::vector<Song>& train_pieces);
nlohmann::json copy_index_record(const TokenIndex& index);
// Writes the index into the model directory (atomically) and returns its record.
nlohmann::json save_copy_index(const TokenIndex& index, const std::string& model_dir);

// The seed of attempt k of an output first sampled with `seed`: seed itself for k = 0, then
// a well-mixed function of both (so retries never collide with the next output's seed).
uint64_t retry_seed(uint64_t seed, int attempt);
// --reject-copies: calls attempt(0), attempt(1), ... until one is not flagged or
// max_tries attempts were made; returns the index of the attempt to keep (the last one
// when all were flagged) and fills `record` with the check for the manifest.
int reject_copies(int max_tries, const std::function<AuditReport(int attempt)>& attempt,
                  nlohmann::json* record);

}  // namespace imagine
