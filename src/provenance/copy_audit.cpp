// Copy audit: SA-IS suffix arrays with matching-statistics queries, the index file format,
// melody symbols, and exact blocked nearest-neighbour search. No tensors, no threads: the
// caller decides parallelism (each query is independent and const).
#include "provenance/copy_audit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/files.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "copy_audit's index file and token hash assume a little-endian host"
#endif

namespace imagine {

// =======================================================================================
// SA-IS
// =======================================================================================

namespace {

// Direct sort for tiny inputs (and the recursion's base): O(n^2 log n), n < 16.
std::vector<int32_t> sa_naive(const std::vector<int32_t>& s) {
  std::vector<int32_t> sa(s.size());
  std::iota(sa.begin(), sa.end(), 0);
  std::sort(sa.begin(), sa.end(), [&](int32_t a, int32_t b) {
    return std::lexicographical_compare(s.begin() + a, s.end(), s.begin() + b, s.end());
  });
  return sa;
}

// Induced sorting after the AtCoder Library's formulation (CC0): L/S types, LMS
// substrings sorted by one induction, named, recursed on when names repeat, induced again.
std::vector<int32_t> sa_is(const std::vector<int32_t>& s, int32_t upper) {
  const int32_t n = int32_t(s.size());
  if (n < 16) return sa_naive(s);

  std::vector<int32_t> sa(n);
  std::vector<bool> ls(n, false);  // true: S-type (suffix i < suffix i+1)
  for (int32_t i = n - 2; i >= 0; i--) ls[i] = (s[i] == s[i + 1]) ? ls[i + 1] : (s[i] < s[i + 1]);

  // Bucket starts: sum_l[c] = first slot of bucket c (L-types go first), sum_s[c] = first S slot.
  std::vector<int32_t> sum_l(size_t(upper) + 1, 0), sum_s(size_t(upper) + 1, 0);
  for (int32_t i = 0; i < n; i++) {
    if (!ls[i]) {
      sum_s[s[i]]++;
    } else {
      sum_l[s[i] + 1]++;
    }
  }
  for (int32_t c = 0; c <= upper; c++) {
    sum_s[c] += sum_l[c];
    if (c < upper) sum_l[c + 1] += sum_s[c];
  }

  std::vector<int32_t> buf(size_t(upper) + 1);
  auto induce = [&](const std::vector<int32_t>& lms) {
    std::fill(sa.begin(), sa.end(), -1);
    std::copy(sum_s.begin(), sum_s.end(), buf.begin());
    for (int32_t d : lms) {
      if (d == n) continue;
      sa[buf[s[d]]++] = d;
    }
    std::copy(sum_l.begin(), sum_l.end(), buf.begin());
    sa[buf[s[n - 1]]++] = n - 1;
    for (int32_t i = 0; i < n; i++) {
      int32_t v = sa[i];
      if (v >= 1 && !ls[v - 1]) sa[buf[s[v - 1]]++] = v - 1;
    }
    std::copy(sum_l.begin(), sum_l.end(), buf.begin());
    for (int32_t i = n - 1; i >= 0; i--) {
      int32_t v = sa[i];
      if (v >= 1 && ls[v - 1]) sa[--buf[s[v - 1] + 1]] = v - 1;
    }
  };

  std::vector<int32_t> lms_map(size_t(n) + 1, -1);
  int32_t m = 0;
  for (int32_t i = 1; i < n; i++) {
    if (!ls[i - 1] && ls[i]) lms_map[i] = m++;
  }
  std::vector<int32_t> lms;
  lms.reserve(m);
  for (int32_t i = 1; i < n; i++) {
    if (!ls[i - 1] && ls[i]) lms.push_back(i);
  }

  induce(lms);

  if (m) {
    std::vector<int32_t> sorted_lms;
    sorted_lms.reserve(m);
    for (int32_t v : sa) {
      if (lms_map[v] != -1) sorted_lms.push_back(v);
    }
    std::vector<int32_t> rec_s(m);
    int32_t rec_upper = 0;
    rec_s[lms_map[sorted_lms[0]]] = 0;
    for (int32_t i = 1; i < m; i++) {
      int32_t l = sorted_lms[i - 1], r = sorted_lms[i];
      int32_t end_l = (lms_map[l] + 1 < m) ? lms[lms_map[l] + 1] : n;
      int32_t end_r = (lms_map[r] + 1 < m) ? lms[lms_map[r] + 1] : n;
      bool same = true;
      if (end_l - l != end_r - r) {
        same = false;
      } else {
        while (l < end_l) {
          if (s[l] != s[r]) break;
          l++;
          r++;
        }
        if (l == n || s[l] != s[r]) same = false;
      }
      if (!same) rec_upper++;
      rec_s[lms_map[sorted_lms[i]]] = rec_upper;
    }
    // Free what the recursion does not need before it allocates its own tables.
    std::vector<int32_t>().swap(lms_map);
    std::vector<int32_t> rec_sa = sa_is(rec_s, rec_upper);
    for (int32_t i = 0; i < m; i++) sorted_lms[i] = lms[rec_sa[i]];
    induce(sorted_lms);
  }
  return sa;
}

}  // namespace

std::vector<int32_t> build_suffix_array(const std::vector<int32_t>& s, int32_t upper) {
  IMAGINE_CHECK(s.size() <= size_t(std::numeric_limits<int32_t>::max()),
                "split the training data into several indexes", "suffix array: ", s.size(),
                " symbols is more than 2^31 - 1");
  IMAGINE_CHECK(upper >= 0, "", "suffix array: negative alphabet bound ", upper);
  for (int32_t v : s)
    IMAGINE_CHECK(v >= 0 && v <= upper, "", "suffix array: symbol ", v, " outside [0, ", upper, "]");
  return sa_is(s, upper);
}

// =======================================================================================
// Token index
// =======================================================================================

namespace {

constexpr char kMagic[8] = {'I', 'M', 'G', 'C', 'O', 'P', 'Y', 'X'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFlagOrigins = 1;
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 * 5 + 64 + 64;
constexpr uint64_t kMaxLabelBytes = 4096;
constexpr uint64_t kMaxNameBytes = 65536;
const char* kRebuildHint =
    "the copy-audit index is damaged, truncated or from another version: delete it and rebuild it from the "
    "training data";

std::string hash_tokens(const std::vector<int32_t>& vocab, const std::vector<int32_t>& text) {
  Sha256 h;
  int32_t block[4096];
  size_t used = 0;
  for (int32_t v : text) {
    if (v == 0) continue;
    block[used++] = vocab[v - 1];
    if (used == 4096) {
      h.update(block, sizeof(block));
      used = 0;
    }
  }
  h.update(block, used * sizeof(int32_t));
  return h.hex_digest();
}

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// A bounds-checked reader over the payload: every read checks the bytes are there.
struct Reader {
  const std::string& bytes;
  size_t at;
  const std::string& what;
  void need(uint64_t n) const {
    IMAGINE_CHECK(n <= bytes.size() - at, kRebuildHint, what, ": copy-audit index is truncated");
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  template <typename T>
  void get_array(std::vector<T>& out, uint64_t count) {
    IMAGINE_CHECK(count <= (bytes.size() - at) / sizeof(T), kRebuildHint, what,
                  ": copy-audit index is truncated");
    out.resize(count);
    if (count) std::memcpy(out.data(), bytes.data() + at, count * sizeof(T));
    at += count * sizeof(T);
  }
  std::string get_string(uint64_t n) {
    need(n);
    std::string s = bytes.substr(at, n);
    at += n;
    return s;
  }
};

}  // namespace

void TokenIndexBuilder::add(const std::string& name, const std::vector<int32_t>& tokens,
                            const std::vector<int64_t>& origins) {
  IMAGINE_CHECK(origins.empty() || origins.size() == tokens.size(), "pass one origin per token, or none",
                "copy audit: document '", name, "' has ", tokens.size(), " tokens but ", origins.size(),
                " origins");
  TokenDocument doc;
  doc.name = name;
  doc.token_begin = tokens_.size();
  doc.token_count = tokens.size();
  documents_.push_back(doc);
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  if (!origins.empty() && !any_origins_) {
    any_origins_ = true;
    origins_.assign(tokens_.size() - tokens.size(), -1);
  }
  if (any_origins_) {
    if (origins.empty()) {
      origins_.insert(origins_.end(), tokens.size(), -1);
    } else {
      origins_.insert(origins_.end(), origins.begin(), origins.end());
    }
  }
}

TokenIndex TokenIndexBuilder::build() {
  const uint64_t total = uint64_t(tokens_.size()) + documents_.size();
  IMAGINE_CHECK(total <= uint64_t(std::numeric_limits<int32_t>::max()),
                "split the training data into several indexes", "copy audit: ", tokens_.size(), " tokens in ",
                documents_.size(), " documents is too many for one index");
  TokenIndex index;
  index.label_ = label_;

  // Distinct ids: a presence table when they span a modest range (the usual vocabulary),
  // otherwise a sort of a copy.
  std::vector<int32_t>& vocab = index.vocab_;
  int64_t lo = 0, hi = -1;
  if (!tokens_.empty()) {
    auto mm = std::minmax_element(tokens_.begin(), tokens_.end());
    lo = *mm.first;
    hi = *mm.second;
  }
  std::vector<int32_t> rank_of;  // id - lo -> rank + 1, when the range is small
  const bool table = !tokens_.empty() && hi - lo < (int64_t(1) << 26);
  if (table) {
    rank_of.assign(size_t(hi - lo + 1), 0);
    for (int32_t t : tokens_) rank_of[size_t(t - lo)] = 1;
    int32_t r = 0;
    for (size_t i = 0; i < rank_of.size(); i++) {
      if (rank_of[i]) {
        rank_of[i] = ++r;
        vocab.push_back(int32_t(lo + int64_t(i)));
      }
    }
  } else {
    vocab = tokens_;
    std::sort(vocab.begin(), vocab.end());
    vocab.erase(std::unique(vocab.begin(), vocab.end()), vocab.end());
  }

  std::vector<int32_t>& text = index.text_;
  text.reserve(total);
  for (const TokenDocument& doc : documents_) {
    for (uint64_t i = doc.token_begin; i < doc.token_begin + doc.token_count; i++) {
      int32_t t = tokens_[i];
      text.push_back(table ? rank_of[size_t(t - lo)]
                           : int32_t(std::lower_bound(vocab.begin(), vocab.end(), t) - vocab.begin()) + 1);
    }
    text.push_back(0);
  }
  std::vector<int32_t>().swap(rank_of);
  std::vector<int32_t>().swap(tokens_);

  index.sa_ = build_suffix_array(text, int32_t(vocab.size()));
  index.origins_ = std::move(origins_);
  index.documents_ = std::move(documents_);
  index.token_count_ = total - index.documents_.size();
  index.finish_tables();

  origins_.clear();
  documents_.clear();
  any_origins_ = false;
  return index;
}

void TokenIndex::finish_tables() {
  text_begin_.resize(documents_.size());
  for (size_t d = 0; d < documents_.size(); d++) text_begin_[d] = documents_[d].token_begin + d;
  token_sha256_ = hash_tokens(vocab_, text_);
}

std::vector<int32_t> TokenIndex::document_tokens(size_t document) const {
  IMAGINE_CHECK(document < documents_.size(), "", "copy audit: no document ", document, " (the index has ",
                documents_.size(), ")");
  std::vector<int32_t> out(documents_[document].token_count);
  for (size_t i = 0; i < out.size(); i++) out[i] = vocab_[text_[text_begin_[document] + i] - 1];
  return out;
}

std::vector<int32_t> TokenIndex::map_query(const std::vector<int32_t>& query) const {
  // -1 equals no text symbol (separators are 0, tokens >= 1), so unknown ids end a match.
  std::vector<int32_t> q(query.size());
  for (size_t i = 0; i < query.size(); i++) {
    auto it = std::lower_bound(vocab_.begin(), vocab_.end(), query[i]);
    q[i] = (it != vocab_.end() && *it == query[i]) ? int32_t(it - vocab_.begin()) + 1 : -1;
  }
  return q;
}

size_t TokenIndex::longest_prefix(const std::vector<int32_t>& q, size_t from, size_t* pos) const {
  // Binary search for q[from..]'s place among the suffixes, skipping the prefix both
  // boundaries already share with it (Manber & Myers' mlr trick). The longest match is
  // with a neighbour of that place. The pattern holds no 0, and the text ends with 0, so
  // a comparison stops inside one document and never runs off the end.
  const size_t m = q.size() - from;
  const int32_t* p = q.data() + from;
  int64_t l = -1, r = int64_t(sa_.size());
  size_t lcp_l = 0, lcp_r = 0;
  while (r - l > 1) {
    int64_t mid = l + (r - l) / 2;
    size_t h = std::min(lcp_l, lcp_r);
    const int32_t* t = text_.data() + sa_[mid];
    while (h < m && p[h] == t[h]) h++;
    if (h == m) {
      *pos = size_t(sa_[mid]);
      return m;
    }
    if (p[h] < t[h]) {
      r = mid;
      lcp_r = h;
    } else {
      l = mid;
      lcp_l = h;
    }
  }
  if (lcp_l >= lcp_r && l >= 0) {
    *pos = size_t(sa_[l]);
    return lcp_l;
  }
  if (r < int64_t(sa_.size())) {
    *pos = size_t(sa_[r]);
    return lcp_r;
  }
  *pos = 0;
  return 0;
}

size_t TokenIndex::count_occurrences(const std::vector<int32_t>& q, size_t from, size_t length) const {
  if (length == 0) return 0;
  const int32_t* p = q.data() + from;
  auto cmp = [&](int32_t s) {  // sign of suffix s's first `length` symbols vs the pattern
    const int32_t* t = text_.data() + s;
    for (size_t h = 0; h < length; h++) {
      if (t[h] != p[h]) return t[h] < p[h] ? -1 : 1;
    }
    return 0;
  };
  auto first = std::partition_point(sa_.begin(), sa_.end(), [&](int32_t s) { return cmp(s) < 0; });
  auto last = std::partition_point(first, sa_.end(), [&](int32_t s) { return cmp(s) == 0; });
  return size_t(last - first);
}

TokenMatch TokenIndex::describe(const std::vector<int32_t>& q, size_t from, size_t length, size_t pos) const {
  TokenMatch match;
  match.query_begin = from;
  match.length = length;
  if (length == 0) return match;
  size_t d =
      size_t(std::upper_bound(text_begin_.begin(), text_begin_.end(), uint64_t(pos)) - text_begin_.begin()) -
      1;
  match.document = d;
  match.document_name = documents_[d].name;
  match.document_offset = pos - text_begin_[d];
  if (!origins_.empty()) match.origin = origins_[documents_[d].token_begin + match.document_offset];
  match.occurrences = count_occurrences(q, from, length);
  return match;
}

std::vector<size_t> TokenIndex::matching_statistics(const std::vector<int32_t>& query) const {
  std::vector<int32_t> q = map_query(query);
  std::vector<size_t> out(q.size(), 0);
  size_t pos = 0;
  for (size_t i = 0; i < q.size(); i++) out[i] = longest_prefix(q, i, &pos);
  return out;
}

TokenMatch TokenIndex::longest_match(const std::vector<int32_t>& query) const {
  std::vector<int32_t> q = map_query(query);
  size_t best = 0, best_from = 0, best_pos = 0;
  for (size_t i = 0; i < q.size(); i++) {
    if (q.size() - i <= best) break;  // no later start can be longer
    size_t pos = 0;
    size_t len = longest_prefix(q, i, &pos);
    if (len > best) {
      best = len;
      best_from = i;
      best_pos = pos;
    }
  }
  return describe(q, best_from, best, best_pos);
}

std::vector<TokenMatch> TokenIndex::matches(const std::vector<int32_t>& query, size_t min_length) const {
  IMAGINE_CHECK(min_length >= 1, "", "copy audit: min_length must be at least 1");
  std::vector<int32_t> q = map_query(query);
  std::vector<TokenMatch> out;
  size_t prev = 0;
  for (size_t i = 0; i < q.size(); i++) {
    size_t pos = 0;
    size_t len = longest_prefix(q, i, &pos);
    bool tail_of_previous = i > 0 && prev > len;  // q[i-1..i+len] occurs, so this run is inside it
    if (len >= min_length && !tail_of_previous) out.push_back(describe(q, i, len, pos));
    prev = len;
  }
  return out;
}

// ---- file format ----

std::string TokenIndex::serialize() const {
  std::string payload;
  payload.reserve(4 * (vocab_.size() + 2 * text_.size()) + 8 * origins_.size() + label_.size() + 64);
  put<uint32_t>(payload, uint32_t(label_.size()));
  payload += label_;
  payload.append(reinterpret_cast<const char*>(vocab_.data()), vocab_.size() * 4);
  payload.append(reinterpret_cast<const char*>(text_.data()), text_.size() * 4);
  payload.append(reinterpret_cast<const char*>(sa_.data()), sa_.size() * 4);
  payload.append(reinterpret_cast<const char*>(origins_.data()), origins_.size() * 8);
  for (const TokenDocument& doc : documents_) {
    put<uint32_t>(payload, uint32_t(doc.name.size()));
    payload += doc.name;
    put<uint64_t>(payload, doc.token_count);
  }

  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  out.append(kMagic, 8);
  put<uint32_t>(out, kVersion);
  put<uint32_t>(out, origins_.empty() ? 0 : kFlagOrigins);
  put<uint64_t>(out, documents_.size());
  put<uint64_t>(out, token_count_);
  put<uint64_t>(out, vocab_.size());
  put<uint64_t>(out, payload.size());
  put<uint64_t>(out, 0);  // reserved
  out += sha256_hex(payload);
  out += token_sha256_;
  out += payload;
  return out;
}

void TokenIndex::save(const std::string& path) const {
  for (const TokenDocument& doc : documents_) {
    IMAGINE_CHECK(doc.name.size() <= kMaxNameBytes, "use shorter document names",
                  "copy audit: document name of ", doc.name.size(), " bytes");
  }
  IMAGINE_CHECK(label_.size() <= kMaxLabelBytes, "", "copy audit: label of ", label_.size(), " bytes");
  write_file_atomic(path, serialize());
}

TokenIndex TokenIndex::load(const std::string& path) { return deserialize(read_file(path), path); }

TokenIndex TokenIndex::deserialize(const std::string& bytes, const std::string& what) {
  IMAGINE_CHECK(bytes.size() >= kHeaderBytes && std::memcmp(bytes.data(), kMagic, 8) == 0, kRebuildHint, what,
                ": not a copy-audit index (bad magic or too short)");
  Reader rd{bytes, 8, what};
  uint32_t version = rd.get<uint32_t>();
  IMAGINE_CHECK(version == kVersion, kRebuildHint, what, ": copy-audit index version ", version,
                ", expected ", kVersion);
  uint32_t flags = rd.get<uint32_t>();
  uint64_t n_docs = rd.get<uint64_t>();
  uint64_t n_tokens = rd.get<uint64_t>();
  uint64_t n_vocab = rd.get<uint64_t>();
  uint64_t payload_bytes = rd.get<uint64_t>();
  uint64_t reserved = rd.get<uint64_t>();
  std::string payload_sha = rd.get_string(64);
  std::string token_sha = rd.get_string(64);
  IMAGINE_CHECK(payload_bytes == bytes.size() - kHeaderBytes, kRebuildHint, what, ": copy-audit index holds ",
                bytes.size() - kHeaderBytes, " payload bytes, its header says ", payload_bytes,
                " (truncated or padded)");
  IMAGINE_CHECK(flags <= kFlagOrigins && reserved == 0, kRebuildHint, what,
                ": unknown copy-audit index flags ", flags);
  IMAGINE_CHECK(sha256_hex(bytes.data() + kHeaderBytes, payload_bytes) == payload_sha, kRebuildHint, what,
                ": copy-audit index checksum mismatch (the file is corrupt)");
  // Counts are bounded before any allocation: every element takes at least one byte.
  IMAGINE_CHECK(n_docs <= payload_bytes && n_tokens <= payload_bytes && n_vocab <= n_tokens &&
                    n_tokens + n_docs <= uint64_t(std::numeric_limits<int32_t>::max()),
                kRebuildHint, what, ": copy-audit index header has impossible counts");

  TokenIndex index;
  uint32_t label_size = rd.get<uint32_t>();
  IMAGINE_CHECK(label_size <= kMaxLabelBytes, kRebuildHint, what, ": copy-audit label too long");
  index.label_ = rd.get_string(label_size);
  const uint64_t n_text = n_tokens + n_docs;
  rd.get_array(index.vocab_, n_vocab);
  rd.get_array(index.text_, n_text);
  rd.get_array(index.sa_, n_text);
  if (flags & kFlagOrigins) rd.get_array(index.origins_, n_tokens);
  uint64_t begin = 0;
  for (uint64_t d = 0; d < n_docs; d++) {
    TokenDocument doc;
    uint32_t name_size = rd.get<uint32_t>();
    IMAGINE_CHECK(name_size <= kMaxNameBytes, kRebuildHint, what, ": copy-audit document name too long");
    doc.name = rd.get_string(name_size);
    doc.token_count = rd.get<uint64_t>();
    IMAGINE_CHECK(doc.token_count <= n_tokens - begin, kRebuildHint, what,
                  ": copy-audit document table overruns");
    doc.token_begin = begin;
    begin += doc.token_count;
    index.documents_.push_back(doc);
  }
  IMAGINE_CHECK(begin == n_tokens && rd.at == bytes.size(), kRebuildHint, what,
                ": copy-audit document table does not cover the tokens");

  // Structural checks so that queries can trust every index: vocabulary strictly sorted,
  // symbols in range, separators exactly at document ends, the suffix array a permutation.
  for (uint64_t i = 1; i < n_vocab; i++) {
    IMAGINE_CHECK(index.vocab_[i - 1] < index.vocab_[i], kRebuildHint, what,
                  ": copy-audit vocabulary not sorted");
  }
  index.token_count_ = n_tokens;
  index.text_begin_.resize(n_docs);
  uint64_t at = 0;
  for (uint64_t d = 0; d < n_docs; d++) {
    index.text_begin_[d] = at;
    for (uint64_t i = 0; i < index.documents_[d].token_count; i++, at++) {
      int32_t v = index.text_[at];
      IMAGINE_CHECK(v >= 1 && uint64_t(v) <= n_vocab, kRebuildHint, what,
                    ": copy-audit text symbol out of range");
    }
    IMAGINE_CHECK(index.text_[at] == 0, kRebuildHint, what, ": copy-audit document separator missing");
    at++;
  }
  std::vector<bool> seen(n_text, false);
  for (int32_t s : index.sa_) {
    IMAGINE_CHECK(s >= 0 && uint64_t(s) < n_text && !seen[s], kRebuildHint, what,
                  ": copy-audit suffix array is not a permutation");
    seen[s] = true;
  }
  index.token_sha256_ = hash_tokens(index.vocab_, index.text_);
  IMAGINE_CHECK(index.token_sha256_ == token_sha, kRebuildHint, what,
                ": copy-audit token hash does not match its tokens");
  return index;
}

// =======================================================================================
// Melodies
// =======================================================================================

namespace {
constexpr int kMaxInterval = 60;
constexpr int kMaxRhythm = 16;
}  // namespace

std::string melody_label(const MelodyOptions& options) {
  return str("melody-v1 onset_tolerance=", options.onset_tolerance, " rhythm_steps=", options.rhythm_steps);
}

MelodySymbols melody_symbols(const Song& song, const MelodyOptions& options) {
  IMAGINE_CHECK(options.onset_tolerance >= 0 && options.rhythm_steps >= 1, "",
                "copy audit: melody options need onset_tolerance >= 0 and rhythm_steps >= 1");
  std::vector<size_t> order;
  for (size_t i = 0; i < song.notes.size(); i++) {
    if (!song.notes[i].drum) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return song.notes[a].start < song.notes[b].start; });

  // Top line: one note per onset group, the highest (the earliest on equal pitch).
  std::vector<size_t> melody;
  std::vector<double> onset;
  for (size_t k = 0; k < order.size();) {
    double group_start = song.notes[order[k]].start;
    size_t top = order[k];
    size_t e = k;
    while (e < order.size() && song.notes[order[e]].start - group_start <= options.onset_tolerance) {
      if (song.notes[order[e]].pitch > song.notes[top].pitch) top = order[e];
      e++;
    }
    melody.push_back(top);
    onset.push_back(group_start);
    k = e;
  }

  MelodySymbols out;
  for (size_t j = 2; j < melody.size(); j++) {
    int interval = song.notes[melody[j]].pitch - song.notes[melody[j - 1]].pitch;
    interval = std::max(-kMaxInterval, std::min(kMaxInterval, interval));
    double ioi = onset[j] - onset[j - 1],
           ioi_prev = onset[j - 1] - onset[j - 2];  // both > 0: groups are apart
    int rhythm = int(std::lround(options.rhythm_steps * std::log2(ioi / ioi_prev)));
    rhythm = std::max(-kMaxRhythm, std::min(kMaxRhythm, rhythm));
    out.symbols.push_back((interval + kMaxInterval) * (2 * kMaxRhythm + 1) + (rhythm + kMaxRhythm));
    out.first_note.push_back(int64_t(melody[j - 2]));
  }
  return out;
}

TokenIndex build_melody_index(const std::vector<Song>& pieces, const MelodyOptions& options) {
  TokenIndexBuilder builder(melody_label(options));
  for (const Song& piece : pieces) {
    MelodySymbols m = melody_symbols(piece, options);
    builder.add(piece.name, m.symbols, m.first_note);
  }
  return builder.build();
}

MelodyMatch longest_melody_match(const TokenIndex& index, const Song& query, const MelodyOptions& options) {
  IMAGINE_CHECK(index.label() == melody_label(options),
                "audit with the melody options the index was built with", "copy audit: the index holds '",
                index.label(), "', not '", melody_label(options), "'");
  MelodySymbols m = melody_symbols(query, options);
  TokenMatch t = index.longest_match(m.symbols);
  MelodyMatch out;
  if (t.length == 0) return out;
  out.symbols = t.length;
  out.melody_notes = t.length + 2;
  out.query_note = size_t(m.first_note[t.query_begin]);
  out.piece = t.document;
  out.piece_name = t.document_name;
  out.training_note = t.origin >= 0 ? size_t(t.origin) : 0;
  out.occurrences = t.occurrences;
  return out;
}

// =======================================================================================
// Nearest neighbours
// =======================================================================================

VectorIndex::VectorIndex(std::vector<float> rows, size_t dim) : rows_(std::move(rows)), dim_(dim) {
  IMAGINE_CHECK(dim > 0 && rows_.size() % dim == 0, "pass rows x dim floats, row-major",
                "copy audit: ", rows_.size(), " floats is not a whole number of ", dim, "-dimensional rows");
  count_ = rows_.size() / dim;
}

namespace {

// Squared L2 distances from 4 queries to one row, 8 independent partial sums each so the
// compiler can keep them in vector registers without reassociating (no -ffast-math).
// Differences, not |q|^2 + |x|^2 - 2 q.x: an exact copy then gives exactly 0.
void dist4(const float* q0, const float* q1, const float* q2, const float* q3, const float* x, size_t dim,
           double* out) {
  float a0[8] = {0}, a1[8] = {0}, a2[8] = {0}, a3[8] = {0};
  size_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    for (int j = 0; j < 8; j++) {
      float xv = x[d + j];
      float e0 = q0[d + j] - xv, e1 = q1[d + j] - xv, e2 = q2[d + j] - xv, e3 = q3[d + j] - xv;
      a0[j] += e0 * e0;
      a1[j] += e1 * e1;
      a2[j] += e2 * e2;
      a3[j] += e3 * e3;
    }
  }
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int j = 0; j < 8; j++) {
    s0 += a0[j];
    s1 += a1[j];
    s2 += a2[j];
    s3 += a3[j];
  }
  for (; d < dim; d++) {
    double e0 = q0[d] - x[d], e1 = q1[d] - x[d], e2 = q2[d] - x[d], e3 = q3[d] - x[d];
    s0 += e0 * e0;
    s1 += e1 * e1;
    s2 += e2 * e2;
    s3 += e3 * e3;
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

}  // namespace

std::vector<NeighbourReport> VectorIndex::nearest(const std::vector<float>& queries,
                                                  const NeighbourOptions& options) const {
  IMAGINE_CHECK(queries.size() % dim_ == 0, "pass queries x dim floats, row-major",
                "copy audit: ", queries.size(), " query floats is not a whole number of ", dim_,
                "-dimensional rows");
  IMAGINE_CHECK(options.k >= 1, "", "copy audit: k must be at least 1");
  IMAGINE_CHECK(count_ > 0, "index at least one training vector", "copy audit: no training vectors");
  const size_t nq = queries.size() / dim_;
  const size_t k = std::min(options.k, count_);
  std::vector<NeighbourReport> reports(nq);

  // Queries in batches (bounding the distance matrix); within a batch, training rows in
  // blocks that stay in cache while every query of the batch passes over them.
  const size_t kBatch = 256, kBlock = 64;
  std::vector<double> dist;
  std::vector<size_t> order(count_);
  for (size_t b0 = 0; b0 < nq; b0 += kBatch) {
    const size_t bn = std::min(kBatch, nq - b0);
    dist.assign(bn * count_, 0.0);
    for (size_t r0 = 0; r0 < count_; r0 += kBlock) {
      const size_t r1 = std::min(count_, r0 + kBlock);
      for (size_t qi = 0; qi < bn; qi += 4) {
        const float* qp[4];
        for (size_t j = 0; j < 4; j++) qp[j] = queries.data() + (b0 + std::min(qi + j, bn - 1)) * dim_;
        for (size_t r = r0; r < r1; r++) {
          double s[4];
          dist4(qp[0], qp[1], qp[2], qp[3], rows_.data() + r * dim_, dim_, s);
          for (size_t j = 0; j < 4 && qi + j < bn; j++) dist[(qi + j) * count_ + r] = s[j];
        }
      }
    }
    for (size_t qi = 0; qi < bn; qi++) {
      const double* dq = dist.data() + qi * count_;
      std::iota(order.begin(), order.end(), size_t(0));
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [&](size_t a, size_t b) { return dq[a] < dq[b] || (dq[a] == dq[b] && a < b); });
      NeighbourReport& rep = reports[b0 + qi];
      double sum = 0;
      for (size_t j = 0; j < k; j++) {
        rep.indices.push_back(order[j]);
        rep.distances.push_back(std::sqrt(dq[order[j]]));
        sum += rep.distances.back();
      }
      double mean = sum / double(k);
      rep.ratio = mean > 0 ? rep.distances[0] / mean : 0.0;
      rep.flagged = rep.ratio < options.threshold;
    }
  }
  return reports;
}

NeighbourReport VectorIndex::nearest_one(const std::vector<float>& query,
                                         const NeighbourOptions& options) const {
  IMAGINE_CHECK(query.size() == dim_, "", "copy audit: query has ", query.size(), " values, the index ",
                dim_);
  return nearest(query, options)[0];
}

std::vector<float> pixel_vector(const std::vector<uint8_t>& pixels) {
  std::vector<float> out(pixels.size());
  for (size_t i = 0; i < pixels.size(); i++) out[i] = pixels[i] / 255.0f;
  return out;
}

}  // namespace imagine
