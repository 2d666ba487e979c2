// Copy audit: did a model reproduce its training data? Three torch-free detectors — the
// longest verbatim token run shared with the training corpus (a suffix array), the same
// for melodies reduced to transposition- and tempo-invariant symbols, and the nearest-
// neighbour ratio test of Carlini et al. 2023 for images or feature vectors. Tokenising,
// decoding and feature extraction are the callers' job; this file only compares.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "music/song.h"

namespace imagine {

// ---------------------------------------------------------------------------------------
// Suffix array
// ---------------------------------------------------------------------------------------

// The suffix array of s (every value in [0, upper]) by SA-IS (Nong, Zhang & Chan 2009):
// O(n + upper) time, about 3n ints of scratch beyond the result. Ties cannot occur: a
// shorter suffix that is a prefix of a longer one sorts first. Throws when s holds more
// than INT32_MAX values or a value outside [0, upper].
std::vector<int32_t> build_suffix_array(const std::vector<int32_t>& s, int32_t upper);

// ---------------------------------------------------------------------------------------
// Token overlap index
// ---------------------------------------------------------------------------------------

struct TokenDocument {
  std::string name;          // file or piece name, as reported in matches
  uint64_t token_begin = 0;  // offset of its first token in the stream of all documents' tokens
  uint64_t token_count = 0;  // tokens in this document (0 allowed)
};

// One verbatim run shared by a query and the training data.
struct TokenMatch {
  size_t query_begin = 0;      // first matched position in the query
  size_t length = 0;           // matched tokens; 0 when not even one token occurs in training
  size_t document = 0;         // index into TokenIndex::documents()
  std::string document_name;   // documents()[document].name
  size_t document_offset = 0;  // token offset of the run inside that document
  int64_t origin = -1;         // caller's label of the first matched training token, -1 if none given
  size_t occurrences = 0;      // training positions holding this exact run (>= 1 when length > 0)
};

// Built once from the training token stream, saved in the model directory, queried per
// generated sample. Documents are concatenated with a separator that no query token can
// equal, so a match never spans two documents. Token ids are any int32 values; ids the
// training data never contains simply match nothing. At most INT32_MAX - documents tokens.
class TokenIndex {
 public:
  TokenIndex() = default;  // empty: every query matches nothing

  size_t token_count() const { return token_count_; }  // training tokens, separators excluded
  const std::vector<TokenDocument>& documents() const { return documents_; }
  const std::string& label() const { return label_; }  // what the tokens are, set by the builder
  std::vector<int32_t> document_tokens(size_t document) const;

  // SHA-256 of the indexed token stream: every document's tokens in order, each as a
  // little-endian int32, no separators. Equal to sha256 of a raw int32 dump of the
  // training tokens, so callers can check the index against recorded training data.
  const std::string& token_sha256() const { return token_sha256_; }

  // Matching statistics: out[i] = length of the longest prefix of query[i..] that occurs
  // verbatim in one training document. O(m log n) comparisons per position worst case,
  // about O(log n + out[i]) in practice.
  std::vector<size_t> matching_statistics(const std::vector<int32_t>& query) const;

  // The longest run of the query found verbatim in training data (the first such run
  // when several tie). length 0 when nothing matches.
  TokenMatch longest_match(const std::vector<int32_t>& query) const;

  // Every maximal run of at least min_length tokens (min_length >= 1), in query order: a
  // run is reported at i when it is not the tail of the run found at i - 1. Runs may
  // overlap in the query when they come from different training passages.
  std::vector<TokenMatch> matches(const std::vector<int32_t>& query, size_t min_length) const;

  // Binary file: header (magic, version, counts, SHA-256 of the payload and of the token
  // stream) then vocabulary, separated text, suffix array, origins and document table.
  // save() writes atomically. load() throws imagine::Error with a hint for a missing,
  // truncated, corrupt or foreign file, and never trusts a count before checking it.
  void save(const std::string& path) const;
  static TokenIndex load(const std::string& path);
  std::string serialize() const;
  static TokenIndex deserialize(const std::string& bytes, const std::string& what);

  // The raw arrays, for tests and diagnostics: text() is the mapped stream (0 separates
  // documents, a training token with the r-th smallest id becomes r + 1).
  const std::vector<int32_t>& text() const { return text_; }
  const std::vector<int32_t>& suffix_array() const { return sa_; }

 private:
  friend class TokenIndexBuilder;
  std::string label_;
  std::vector<int32_t> vocab_;    // sorted distinct training token ids
  std::vector<int32_t> text_;     // mapped tokens, a 0 after every document
  std::vector<int32_t> sa_;       // suffix array of text_
  std::vector<int64_t> origins_;  // per training token, empty when none were given
  std::vector<TokenDocument> documents_;
  std::vector<uint64_t> text_begin_;  // where each document starts in text_
  uint64_t token_count_ = 0;
  std::string token_sha256_;

  std::vector<int32_t> map_query(const std::vector<int32_t>& query) const;
  // Longest prefix of q[from..] that occurs: returns its length, *pos = a text position.
  size_t longest_prefix(const std::vector<int32_t>& q, size_t from, size_t* pos) const;
  size_t count_occurrences(const std::vector<int32_t>& q, size_t from, size_t length) const;
  TokenMatch describe(const std::vector<int32_t>& q, size_t from, size_t length, size_t pos) const;
  void finish_tables();  // text_begin_, token_sha256_ from documents_, vocab_, text_
};

// Collects documents, then builds the index: O(n) for the suffix array, plus a sort of the
// distinct ids when they span more than 2^26 values. Peak memory while building is about
// 5.5n int32 counting the collected tokens (measured: 110 MB for 5M tokens; 1 s on one core).
class TokenIndexBuilder {
 public:
  explicit TokenIndexBuilder(std::string label = "tokens") : label_(std::move(label)) {}
  // origins, when given, has one caller-defined label per token (a byte offset in the
  // file, a note index...) reported back in TokenMatch::origin; empty means none (-1).
  void add(const std::string& name, const std::vector<int32_t>& tokens,
           const std::vector<int64_t>& origins = {});
  TokenIndex build();  // leaves the builder empty

 private:
  std::string label_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> origins_;
  bool any_origins_ = false;
  std::vector<TokenDocument> documents_;
};

// ---------------------------------------------------------------------------------------
// Music: melodies as transposition- and tempo-invariant symbols
// ---------------------------------------------------------------------------------------

// The melody of a song is its top line: non-drum notes whose starts lie within
// onset_tolerance of the first note of a group form one onset, and the highest pitch of
// each onset is the melody note. Melody note j >= 2 becomes one symbol from
//   interval = pitch[j] - pitch[j-1]                     (semitones, clamped to +-60)
//   rhythm   = round(rhythm_steps * log2(ioi[j] / ioi[j-1])), ioi[j] = onset[j] - onset[j-1]
//                                                       (clamped to +-16)
// so a transposed copy, or one at another tempo, gives the same symbols, while a changed
// pitch or rhythm changes the (up to three) symbols whose window covers it. Inner voices
// and note lengths (legato vs staccato) are deliberately ignored.
struct MelodyOptions {
  double onset_tolerance = 0.02;  // seconds: notes starting this close together form one chord
  int rhythm_steps = 2;           // log2 steps per octave of the inter-onset ratio: 2 merges 1.33 with 1.5
};

struct MelodySymbols {
  std::vector<int32_t> symbols;     // one per melody note from the third on
  std::vector<int64_t> first_note;  // per symbol: index in Song::notes of the first of its three notes
};
MelodySymbols melody_symbols(const Song& song, const MelodyOptions& options = {});
std::string melody_label(const MelodyOptions& options);  // the TokenIndex label for these options

// Indexes the melodies of training pieces (documents named by Song::name).
TokenIndex build_melody_index(const std::vector<Song>& pieces, const MelodyOptions& options = {});

struct MelodyMatch {
  size_t symbols = 0;       // matched symbols; 0 when none
  size_t melody_notes = 0;  // melody notes the matched passage spans (symbols + 2, or 0)
  size_t query_note = 0;    // index in the query's Song::notes of the first matched note
  size_t piece = 0;         // index of the training piece (document)
  std::string piece_name;
  size_t training_note = 0;  // index in the training piece's Song::notes of its first matched note
  size_t occurrences = 0;    // places in the training melodies holding this passage
};
// Throws imagine::Error when the index was built with other options (its label differs).
MelodyMatch longest_melody_match(const TokenIndex& index, const Song& query,
                                 const MelodyOptions& options = {});

// ---------------------------------------------------------------------------------------
// Images / feature vectors: nearest neighbours and the ratio test
// ---------------------------------------------------------------------------------------

// Carlini et al. 2023, "Extracting training data from diffusion models": a generated
// sample is a near-copy when its nearest training vector is much closer than its typical
// near neighbours: ratio = d(nearest) / mean(d over the k nearest, the nearest included),
// flagged when ratio < threshold. d is the plain L2 distance (the paper's patch-wise
// maximum for CIFAR-10 is left to the caller, who can pass patch vectors).
struct NeighbourOptions {
  size_t k = 50;           // neighbours averaged; fewer when the training set is smaller
  double threshold = 0.5;  // flag when ratio < threshold (the paper's alpha = 0.5)
};

struct NeighbourReport {
  std::vector<size_t> indices;    // the k nearest training rows, nearest first
  std::vector<double> distances;  // their L2 distances
  double ratio = 1;               // distances[0] / mean(distances); 0 for an exact copy
  bool flagged = false;           // ratio < threshold
};

// Training vectors as one row-major array of rows x dim floats (pixels in [0, 1], or
// network features). Copied once; queries are exact (no approximation) and blocked so
// each training block is read from memory once per batch of queries.
class VectorIndex {
 public:
  VectorIndex(std::vector<float> rows, size_t dim);  // rows.size() must be a multiple of dim
  size_t size() const { return count_; }
  size_t dim() const { return dim_; }
  // queries: n x dim row-major. One report per query.
  std::vector<NeighbourReport> nearest(const std::vector<float>& queries,
                                       const NeighbourOptions& options = {}) const;
  NeighbourReport nearest_one(const std::vector<float>& query, const NeighbourOptions& options = {}) const;

 private:
  std::vector<float> rows_;
  size_t dim_ = 0;
  size_t count_ = 0;
};

// An 8-bit image's samples as floats in [0, 1] (pixels[i] / 255), for pixel-space audits.
std::vector<float> pixel_vector(const std::vector<uint8_t>& pixels);

}  // namespace imagine
