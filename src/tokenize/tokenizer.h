// Tokenizers, stored inside the model directory: `byte` (256 symbols, lossless for any
// input) and `bpe` (SentencePiece BPE trained on the corpus, with byte fallback so any
// input, invalid UTF-8 included, round-trips exactly). Leaves out: music events.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;                 // "byte" or "bpe"
  virtual int vocab_size() const = 0;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  // The exact bytes a token stands for; decode() is their concatenation, so tokens can be
  // streamed one at a time (a multi-byte character may be split across tokens).
  virtual std::string token_bytes(int64_t id) const = 0;
  std::string decode(const std::vector<int64_t>& ids) const;
  // Writes any files the tokenizer needs into model_dir and returns its config.json entry
  // (at least {"kind": ..., "vocab_size": ...}).
  virtual nlohmann::json save(const std::string& model_dir) const = 0;
};

std::unique_ptr<Tokenizer> make_byte_tokenizer();

// Trains SentencePiece BPE on `text` with `vocab_size` pieces (including 256 byte-fallback
// pieces and the special pieces). Throws imagine::Error if vocab_size is out of range
// (must be > 256 + specials and not exceed what the corpus supports).
std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::string& text, int vocab_size);

// Rebuilds a tokenizer from its config.json entry and the files in model_dir.
std::unique_ptr<Tokenizer> load_tokenizer(const nlohmann::json& entry, const std::string& model_dir);

}  // namespace imagine
