// Byte and SentencePiece-BPE tokenizers. The BPE one routes everything SentencePiece would alter
// (invalid UTF-8, NUL, U+2581) straight to byte-fallback pieces so any byte string round-trips.
#include "tokenize/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/utf8.h"
#include "core/files.h"
#include "tokenize/sentencepiece.h"

namespace imagine {
namespace {

constexpr int kByteVocab = 256;
constexpr int kSpecials = 1;  // <unk> only: no bos/eos/pad pieces exist
constexpr int kMinBpeVocab = kByteVocab + kSpecials + 16;
constexpr int kMaxBpeVocab = 1 << 20;
constexpr size_t kMaxSentenceBytes = 2048;  // SentencePiece silently drops sentences over 4192
constexpr size_t kMaxTrainBytes = 64u << 20;
constexpr unsigned kSeed = 1234;
const char* kModelFile = "tokenizer.model";
const char* kBrokenHint = "the model directory looks damaged: restore it from a backup or retrain the model";

// Length of the character at s[i] when SentencePiece may see it, else 0. Besides invalid UTF-8,
// NUL is excluded (C-string handling), U+2581 (SentencePiece's own space marker, which would
// decode as a space) and '\n' (never in training sentences, so it is a byte piece anyway).
size_t sp_safe_length(std::string_view s, size_t i) {
  size_t n = utf8_length(s, i);
  if (n == 1 && (s[i] == '\0' || s[i] == '\n')) return 0;
  if (n == 3 && s.compare(i, 3, "\xE2\x96\x81") == 0) return 0;
  return n;
}

class ByteTokenizer : public Tokenizer {
 public:
  std::string kind() const override { return "byte"; }
  int vocab_size() const override { return kByteVocab; }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids(text.size());
    for (size_t i = 0; i < text.size(); i++) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string token_bytes(int64_t id) const override {
    IMAGINE_CHECK(id >= 0 && id < kByteVocab, "the token ids do not come from this model's tokenizer",
                  "token id ", id, " is outside the byte vocabulary (0..255)");
    return std::string(1, static_cast<char>(id));
  }
  nlohmann::json save(const std::string&) const override {
    return {{"kind", "byte"}, {"vocab_size", kByteVocab}};
  }
};

class BpeTokenizer : public Tokenizer {
 public:
  // Returns an empty string on success, else why the proto is unusable.
  std::string load(const std::string& proto) {
    try {
      sp_ = std::make_unique<spm::Model>(proto);
    } catch (const Error& e) {
      return e.what();
    }
    proto_ = proto;
    const int n = sp_->size();
    for (int& b : byte_ids_) b = -1;
    pieces_.assign(n, "");
    std::string piece;
    for (int id = 0; id < n; id++) {
      const spm::PieceKind kind = sp_->piece(id, &piece);
      if (kind == spm::PieceKind::Byte) {
        if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0) return str("malformed byte piece ", piece);
        const int byte = std::stoi(piece.substr(3, 2), nullptr, 16);  // "<0xNN>"
        byte_ids_[byte] = id;
        pieces_[id] = std::string(1, static_cast<char>(byte));
      } else if (kind == spm::PieceKind::Normal) {
        std::string bytes;
        for (size_t i = 0; i < piece.size(); i++) {
          if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
            bytes += ' ';
            i += 2;
          } else {
            bytes += piece[i];
          }
        }
        pieces_[id] = bytes;
      }
    }
    for (int b = 0; b < kByteVocab; b++) {
      if (byte_ids_[b] < 0) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        return str("it has no byte-fallback piece ", name);
      }
    }
    return "";
  }

  std::string kind() const override { return "bpe"; }
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }

  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    ids.reserve(text.size() / 3 + 8);
    std::string_view all(text);
    size_t run = 0;  // start of the pending run SentencePiece may encode
    size_t i = 0;
    while (i < all.size()) {
      size_t n = sp_safe_length(all, i);
      if (n > 0) {
        i += n;
        continue;
      }
      append_sp(all.substr(run, i - run), &ids);
      // An invalid byte is one byte piece; an excluded valid character is all of its bytes.
      size_t len = utf8_length(all, i);
      if (len == 0) len = 1;
      for (size_t k = 0; k < len; k++) ids.push_back(byte_ids_[static_cast<unsigned char>(all[i + k])]);
      i += len;
      run = i;
    }
    append_sp(all.substr(run), &ids);
    return ids;
  }

  std::string token_bytes(int64_t id) const override {
    IMAGINE_CHECK(id >= 0 && id < static_cast<int64_t>(pieces_.size()),
                  "the token ids do not come from this model's tokenizer", "token id ", id,
                  " is outside the BPE vocabulary (0..", pieces_.size() - 1, ")");
    return pieces_[id];
  }

  nlohmann::json save(const std::string& model_dir) const override {
    write_file_atomic(model_dir + "/" + kModelFile, proto_);
    return {
        {"kind", "bpe"}, {"vocab_size", vocab_size()}, {"file", kModelFile}, {"sha256", sha256_hex(proto_)}};
  }

 private:
  void append_sp(std::string_view piece, std::vector<int64_t>* ids) const {
    if (piece.empty()) return;
    sp_->encode(piece, ids);
  }

  std::unique_ptr<spm::Model> sp_;
  std::string proto_;
  std::vector<std::string> pieces_;  // the bytes of every id, precomputed for streaming decode
  int byte_ids_[kByteVocab] = {};
};

// Appends `line`'s SentencePiece-safe runs as training sentences, cut to kMaxSentenceBytes,
// preferably before a space so words stay whole.
void add_sentences(std::string_view line, std::vector<std::string>* out) {
  size_t i = 0;
  while (i < line.size()) {
    size_t start = i;
    size_t last_space = std::string_view::npos;
    while (i < line.size()) {
      size_t n = sp_safe_length(line, i);
      if (n == 0 || i + n - start > kMaxSentenceBytes) break;
      if (line[i] == ' ' && i > start) last_space = i;
      i += n;
    }
    bool cut = i < line.size() && sp_safe_length(line, i) > 0;
    if (cut && last_space != std::string_view::npos) i = last_space;
    if (i > start) out->emplace_back(line.substr(start, i - start));
    if (!cut) {
      size_t len = i < line.size() ? utf8_length(line, i) : 0;
      i += len == 0 ? 1 : len;  // skip the character SentencePiece must not see
    }
  }
}

// SentencePiece gives every character of the training text its own piece (coverage 1.0) and
// fails when they do not fit; it refuses coverages below 0.98, which cannot help a corpus with
// a long tail of rare characters. Byte fallback makes rare characters lossless anyway, so when
// there are more distinct characters than half the non-byte budget, cut the rare ones out of
// the training sentences and let encode() spell them as bytes.
void keep_common_characters(std::vector<std::string>* sentences, int vocab_size) {
  std::unordered_map<std::string, int64_t> counts;
  for (const std::string& s : *sentences) {
    size_t i = 0;
    while (i < s.size()) {
      size_t n = utf8_length(s, i);  // sentences hold only valid UTF-8
      counts[s.substr(i, n)]++;
      i += n;
    }
  }
  size_t budget = static_cast<size_t>(vocab_size - kByteVocab - kSpecials) / 2;
  if (counts.size() <= budget) return;
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& c : counts) ranked.push_back({-c.second, c.first});
  std::sort(ranked.begin(), ranked.end());  // most frequent first; ties by bytes, so deterministic
  std::unordered_set<std::string> keep;
  for (size_t k = 0; k < budget; k++) keep.insert(ranked[k].second);

  std::vector<std::string> cut;
  for (const std::string& s : *sentences) {
    size_t start = 0;
    size_t i = 0;
    while (i < s.size()) {
      size_t n = utf8_length(s, i);
      if (keep.count(s.substr(i, n)) == 0) {
        if (i > start) cut.push_back(s.substr(start, i - start));
        start = i + n;
      }
      i += n;
    }
    if (s.size() > start) cut.push_back(s.substr(start));
  }
  sentences->swap(cut);
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) out += token_bytes(id);
  return out;
}

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> train_bpe_tokenizer(const std::string& text, int vocab_size) {
  IMAGINE_CHECK(vocab_size >= kMinBpeVocab, "use a larger --vocab-size (or --tokenizer byte)",
                "BPE vocab size ", vocab_size, " is too small: it needs at least ", kMinBpeVocab, " (",
                kByteVocab, " byte pieces, <unk>, and room for characters and merges)");
  IMAGINE_CHECK(vocab_size <= kMaxBpeVocab, "use a smaller --vocab-size", "BPE vocab size ", vocab_size,
                " is too large (at most ", kMaxBpeVocab, ")");

  // Huge corpora: every k-th line is plenty for merge statistics and keeps training to seconds.
  size_t stride = text.size() / kMaxTrainBytes + 1;
  std::vector<std::string> sentences;
  size_t start = 0;
  size_t line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (line_no % stride == 0) add_sentences(std::string_view(text).substr(start, end - start), &sentences);
    line_no++;
    start = end + 1;
  }
  keep_common_characters(&sentences, vocab_size);
  IMAGINE_CHECK(!sentences.empty(), "pass --data some non-empty text",
                "cannot train a BPE tokenizer: the corpus has no text");

  // Exact round trips need identity normalisation, no dummy prefix, kept whitespace and byte
  // fallback (which also spells the characters cut out above); one thread, no sampling and a
  // fixed seed make training deterministic.
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"split_by_whitespace", "true"},
      {"character_coverage", "1.0"},
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      {"num_threads", "1"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"train_extremely_large_corpus", "false"},
      {"max_sentence_length", std::to_string(kMaxSentenceBytes + 16)},
      {"minloglevel", "2"},  // errors come back as a status; INFO/WARNING lines would be noise
  };
  std::string proto;
  std::string message;
  try {
    proto = spm::train(sentences, args, kSeed);
  } catch (const Error& e) {
    message = e.what();
  }
  if (!message.empty()) {
    std::string hint = "try a different --vocab-size";
    if (message.find("too high") != std::string::npos) {
      hint = "use a smaller --vocab-size (this corpus supports fewer pieces), or more data";
    } else if (message.find("smaller than required_chars") != std::string::npos) {
      hint = "use a larger --vocab-size: every distinct character in the corpus needs a piece";
    }
    throw Error(str("cannot train a BPE tokenizer with vocab size ", vocab_size, ": ", message), hint);
  }
  auto tokenizer = std::make_unique<BpeTokenizer>();
  std::string problem = tokenizer->load(proto);
  IMAGINE_CHECK(problem.empty(), "this is a bug: please report it",
                "SentencePiece produced an unusable model: ", problem);
  return tokenizer;
}

std::unique_ptr<Tokenizer> load_tokenizer(const nlohmann::json& entry, const std::string& model_dir) {
  IMAGINE_CHECK(entry.is_object() && entry.contains("kind") && entry["kind"].is_string(), kBrokenHint,
                "config.json: the tokenizer entry has no \"kind\"");
  std::string kind = entry["kind"].get<std::string>();
  int expected_vocab = -1;
  if (entry.contains("vocab_size")) {
    IMAGINE_CHECK(entry["vocab_size"].is_number_integer(), kBrokenHint,
                  "config.json: tokenizer vocab_size is not an integer");
    expected_vocab = entry["vocab_size"].get<int>();
  }

  if (kind == "byte") {
    IMAGINE_CHECK(expected_vocab == -1 || expected_vocab == kByteVocab, kBrokenHint,
                  "config.json: a byte tokenizer has vocab_size 256, not ", expected_vocab);
    return make_byte_tokenizer();
  }
  IMAGINE_CHECK(kind == "bpe", "this model may come from a newer imagine; upgrade it",
                "config.json: unknown tokenizer kind \"", kind, "\"");

  std::string file = kModelFile;
  if (entry.contains("file")) {
    IMAGINE_CHECK(entry["file"].is_string(), kBrokenHint, "config.json: tokenizer file is not a string");
    file = entry["file"].get<std::string>();
  }
  // The file must live inside the model directory, never elsewhere.
  IMAGINE_CHECK(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
                kBrokenHint, "config.json: tokenizer file \"", file, "\" is not a plain file name");
  std::string path = model_dir + "/" + file;
  IMAGINE_CHECK(std::filesystem::exists(path),
                "copy the whole model directory: the tokenizer file belongs with config.json",
                "missing tokenizer file: ", path);
  std::string proto = read_file(path);
  if (entry.contains("sha256")) {
    IMAGINE_CHECK(entry["sha256"].is_string(), kBrokenHint, "config.json: tokenizer sha256 is not a string");
    std::string want = entry["sha256"].get<std::string>();
    std::string got = sha256_hex(proto);
    IMAGINE_CHECK(got == want, kBrokenHint, "corrupt tokenizer file ", path, ": sha256 is ", got,
                  ", config.json expects ", want);
  }
  auto tokenizer = std::make_unique<BpeTokenizer>();
  std::string problem = tokenizer->load(proto);
  IMAGINE_CHECK(problem.empty(), kBrokenHint, "corrupt tokenizer file ", path, ": ", problem);
  IMAGINE_CHECK(expected_vocab == -1 || expected_vocab == tokenizer->vocab_size(), kBrokenHint,
                "tokenizer file ", path, " has ", tokenizer->vocab_size(), " pieces, config.json says ",
                expected_vocab);
  return tokenizer;
}

}  // namespace imagine
