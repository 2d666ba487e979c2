// Tests for provenance/copy_audit: the suffix array and every query against brute force
// on random inputs (many seeds, small and repetitive alphabets), document boundaries and
// offsets, a planted passage, the index file's round trip and its refusal of damaged
// files, transposed / altered melodies, and the nearest-neighbour ratio test against a
// direct computation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "../support/temp_dir.h"
#include "core/error.h"
#include "core/files.h"
#include "music/song.h"
#include "provenance/copy_audit.h"

using imagine::MelodyOptions;
using imagine::NeighbourOptions;
using imagine::Note;
using imagine::Song;
using imagine::TokenIndex;
using imagine::TokenIndexBuilder;
using imagine::TokenMatch;
using imagine::VectorIndex;

namespace {

std::vector<int32_t> random_tokens(std::mt19937& rng, size_t n, int32_t alphabet, int32_t base = 0) {
  std::uniform_int_distribution<int32_t> pick(0, alphabet - 1);
  std::vector<int32_t> v(n);
  for (auto& t : v) t = base + pick(rng);
  return v;
}

// Longest common prefix of query[i..] with doc[j..], by definition.
size_t lcp_at(const std::vector<int32_t>& q, size_t i, const std::vector<int32_t>& d, size_t j) {
  size_t h = 0;
  while (i + h < q.size() && j + h < d.size() && q[i + h] == d[j + h]) h++;
  return h;
}

struct Brute {
  size_t length = 0;
  size_t occurrences = 0;
};
// For query position i: the longest prefix found in any document, and how often it occurs.
Brute brute_at(const std::vector<std::vector<int32_t>>& docs, const std::vector<int32_t>& q, size_t i) {
  Brute b;
  for (const auto& d : docs)
    for (size_t j = 0; j < d.size(); j++) b.length = std::max(b.length, lcp_at(q, i, d, j));
  if (b.length == 0) return b;
  for (const auto& d : docs)
    for (size_t j = 0; j < d.size(); j++) b.occurrences += lcp_at(q, i, d, j) >= b.length;
  return b;
}

TokenIndex build(const std::vector<std::vector<int32_t>>& docs) {
  TokenIndexBuilder b;
  for (size_t d = 0; d < docs.size(); d++) b.add("doc" + std::to_string(d), docs[d]);
  return b.build();
}

// The match really is in the training data where it says.
void expect_located(const std::vector<std::vector<int32_t>>& docs, const std::vector<int32_t>& q,
                    const TokenMatch& m) {
  ASSERT_LT(m.document, docs.size());
  EXPECT_EQ(m.document_name, "doc" + std::to_string(m.document));
  const auto& d = docs[m.document];
  ASSERT_LE(m.document_offset + m.length, d.size());
  for (size_t h = 0; h < m.length; h++) ASSERT_EQ(q[m.query_begin + h], d[m.document_offset + h]);
}

}  // namespace

TEST(SuffixArray, MatchesBruteForceOnRandomInputs) {
  for (int seed = 0; seed < 300; seed++) {
    std::mt19937 rng(seed);
    size_t n = std::uniform_int_distribution<size_t>(0, 400)(rng);
    int32_t alphabet = std::vector<int32_t>{1, 2, 3, 5, 40}[seed % 5];
    std::vector<int32_t> s = random_tokens(rng, n, alphabet);
    if (seed % 7 == 0 && n > 10) {  // long repeats stress the recursion
      for (size_t i = n / 2; i < n; i++) s[i] = s[i - n / 2];
    }
    std::vector<int32_t> expect(n);
    for (size_t i = 0; i < n; i++) expect[i] = int32_t(i);
    std::sort(expect.begin(), expect.end(), [&](int32_t a, int32_t b) {
      return std::lexicographical_compare(s.begin() + a, s.end(), s.begin() + b, s.end());
    });
    ASSERT_EQ(imagine::build_suffix_array(s, alphabet), expect) << "seed " << seed;
  }
}

TEST(SuffixArray, RejectsSymbolsOutOfRange) {
  EXPECT_THROW(imagine::build_suffix_array({0, 3, 1}, 2), imagine::Error);
  EXPECT_THROW(imagine::build_suffix_array({0, -1}, 2), imagine::Error);
}

TEST(TokenIndex, MatchingStatisticsAndLongestMatchAgreeWithBruteForce) {
  for (int seed = 0; seed < 150; seed++) {
    std::mt19937 rng(1000 + seed);
    int32_t alphabet = std::vector<int32_t>{2, 3, 8}[seed % 3];
    size_t ndocs = std::uniform_int_distribution<size_t>(1, 5)(rng);
    std::vector<std::vector<int32_t>> docs;
    for (size_t d = 0; d < ndocs; d++)
      docs.push_back(random_tokens(rng, std::uniform_int_distribution<size_t>(0, 80)(rng), alphabet, -3));
    TokenIndex index = build(docs);
    // Queries draw one extra id the training data never holds.
    std::vector<int32_t> q =
        random_tokens(rng, std::uniform_int_distribution<size_t>(0, 60)(rng), alphabet + 1, -3);

    std::vector<size_t> ms = index.matching_statistics(q);
    ASSERT_EQ(ms.size(), q.size());
    size_t best = 0, best_at = 0;
    for (size_t i = 0; i < q.size(); i++) {
      Brute b = brute_at(docs, q, i);
      ASSERT_EQ(ms[i], b.length) << "seed " << seed << " i " << i;
      if (b.length > best) {
        best = b.length;
        best_at = i;
      }
    }
    TokenMatch m = index.longest_match(q);
    ASSERT_EQ(m.length, best) << "seed " << seed;
    if (best > 0) {
      EXPECT_EQ(m.query_begin, best_at);
      EXPECT_EQ(m.occurrences, brute_at(docs, q, best_at).occurrences);
      expect_located(docs, q, m);
    }
    for (const TokenMatch& r : index.matches(q, 2)) {
      EXPECT_EQ(r.length, ms[r.query_begin]);
      EXPECT_GE(r.length, 2u);
      EXPECT_TRUE(r.query_begin == 0 || ms[r.query_begin - 1] <= r.length);
      expect_located(docs, q, r);
    }
  }
}

TEST(TokenIndex, MatchNeverSpansTwoDocuments) {
  // "1 2 3" ends doc0 and "4 5 6" starts doc1: the query 1..6 must be cut at the boundary.
  std::vector<std::vector<int32_t>> docs = {{9, 9, 1, 2, 3}, {4, 5, 6, 8}};
  TokenIndex index = build(docs);
  std::vector<int32_t> q = {1, 2, 3, 4, 5, 6};
  std::vector<size_t> ms = index.matching_statistics(q);
  EXPECT_EQ(ms, (std::vector<size_t>{3, 2, 1, 3, 2, 1}));
  TokenMatch m = index.longest_match(q);
  EXPECT_EQ(m.length, 3u);
  EXPECT_EQ(m.query_begin, 0u);
  EXPECT_EQ(m.document_name, "doc0");
  EXPECT_EQ(m.document_offset, 2u);
  std::vector<TokenMatch> all = index.matches(q, 3);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].document_name, "doc1");
  EXPECT_EQ(all[1].query_begin, 3u);
  EXPECT_EQ(all[1].document_offset, 0u);
}

TEST(TokenIndex, FindsAPlantedPassageWithItsExactPosition) {
  std::mt19937 rng(7);
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < 20; d++) docs.push_back(random_tokens(rng, 5000, 5000));
  std::vector<int32_t> passage(docs[13].begin() + 1234, docs[13].begin() + 1294);  // 60 tokens
  TokenIndexBuilder b("bpe");
  for (int d = 0; d < 20; d++) {
    std::vector<int64_t> o(docs[d].size());
    for (size_t i = 0; i < o.size(); i++) o[i] = int64_t(i) * 4 + 100;  // e.g. byte offsets
    b.add("doc" + std::to_string(d), docs[d], o);
  }
  TokenIndex index = b.build();
  std::vector<int32_t> q = random_tokens(rng, 300, 5000, 10000);  // ids unseen in training
  q.insert(q.begin() + 117, passage.begin(), passage.end());
  TokenMatch m = index.longest_match(q);
  EXPECT_EQ(m.length, 60u);
  EXPECT_EQ(m.query_begin, 117u);
  EXPECT_EQ(m.document, 13u);
  EXPECT_EQ(m.document_name, "doc13");
  EXPECT_EQ(m.document_offset, 1234u);
  EXPECT_EQ(m.origin, 1234 * 4 + 100);
  EXPECT_EQ(m.occurrences, 1u);
  std::vector<TokenMatch> all = index.matches(q, 10);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].query_begin, 117u);
}

TEST(TokenIndex, TokenHashIsTheHashOfTheRawStream) {
  std::vector<std::vector<int32_t>> docs = {{5, -7, 100000}, {}, {3, 3}};
  TokenIndex index = build(docs);
  std::vector<int32_t> all = {5, -7, 100000, 3, 3};
  EXPECT_EQ(index.token_sha256(), imagine::sha256_hex(all.data(), all.size() * 4));
  EXPECT_EQ(index.token_count(), 5u);
  EXPECT_EQ(index.document_tokens(0), docs[0]);
  EXPECT_EQ(index.document_tokens(2), docs[2]);
  EXPECT_EQ(index.documents()[2].token_begin, 3u);
}

TEST(TokenIndex, WideIdRangeUsesTheSortedVocabulary) {
  std::vector<std::vector<int32_t>> docs = {{INT32_MIN, 0, INT32_MAX, 0, 17}};
  TokenIndex index = build(docs);
  TokenMatch m = index.longest_match({1, 0, INT32_MAX, 0, 2});
  EXPECT_EQ(m.length, 3u);
  EXPECT_EQ(m.document_offset, 1u);
}

TEST(TokenIndex, EmptyIndexMatchesNothing) {
  TokenIndex empty;
  EXPECT_EQ(empty.longest_match({1, 2, 3}).length, 0u);
  TokenIndex built = TokenIndexBuilder().build();
  EXPECT_EQ(built.longest_match({1, 2, 3}).length, 0u);
  EXPECT_EQ(built.longest_match({}).length, 0u);
}

TEST(TokenIndex, SaveLoadRoundTrip) {
  std::string dir = imagine::testing::make_temp_dir("copy_audit");
  ASSERT_FALSE(dir.empty());
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < 4; d++) docs.push_back(random_tokens(rng, 300, 50));
  TokenIndexBuilder b("text-bpe-v1");
  for (int d = 0; d < 4; d++)
    b.add("file " + std::to_string(d) + ".txt", docs[d], std::vector<int64_t>(300, d));
  TokenIndex index = b.build();
  std::string path = dir + "/copy_index.bin";
  index.save(path);
  TokenIndex back = TokenIndex::load(path);
  EXPECT_EQ(back.label(), "text-bpe-v1");
  EXPECT_EQ(back.token_sha256(), index.token_sha256());
  EXPECT_EQ(back.text(), index.text());
  EXPECT_EQ(back.suffix_array(), index.suffix_array());
  ASSERT_EQ(back.documents().size(), 4u);
  EXPECT_EQ(back.documents()[2].name, "file 2.txt");
  std::vector<int32_t> q(docs[2].begin() + 10, docs[2].begin() + 50);
  TokenMatch m = back.longest_match(q);
  EXPECT_GE(m.length, 40u);
  EXPECT_EQ(m.origin, 2);
  EXPECT_EQ(back.serialize(), index.serialize());
}

TEST(TokenIndex, RefusesDamagedFiles) {
  std::string dir = imagine::testing::make_temp_dir("copy_audit");
  ASSERT_FALSE(dir.empty());
  std::mt19937 rng(4);
  TokenIndexBuilder b;
  b.add("a", random_tokens(rng, 500, 30));
  b.add("b", random_tokens(rng, 200, 30));
  const std::string good = b.build().serialize();

  auto expect_refused = [&](const std::string& bytes, const std::string& why) {
    std::string path = dir + "/bad.bin";
    imagine::write_file_atomic(path, bytes);
    try {
      TokenIndex::load(path);
      ADD_FAILURE() << why << ": loaded";
    } catch (const imagine::Error& e) {
      EXPECT_FALSE(e.hint().empty()) << why;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << why;
    }
  };
  // Every truncation length near the header and the end, and a sample in between.
  for (size_t n : {size_t(0), size_t(7), size_t(8), size_t(100), size_t(175), size_t(176), size_t(177),
                   good.size() / 2, good.size() - 1})
    expect_refused(good.substr(0, n), "truncated to " + std::to_string(n));
  std::vector<size_t> flips = {8, 12, 16, 24, 32, 40, 48, 56, 120, 176};  // every header field
  for (size_t at = 0; at < good.size(); at += 97) flips.push_back(at);
  for (size_t at : flips) {
    std::string bad = good;
    bad[at] = char(bad[at] ^ 0x5a);
    expect_refused(bad, "byte " + std::to_string(at) + " flipped");
  }
  expect_refused(good + "x", "padded");
  EXPECT_THROW(TokenIndex::load(dir + "/missing.bin"), imagine::Error);
}

// ---- music ----

namespace {

// A monophonic line over a chord accompaniment below it: pitches from a random walk,
// durations (in beats) from a small set, at the given tempo.
Song make_piece(std::mt19937& rng, int notes, int transpose, double bpm, const std::string& name) {
  std::vector<double> beats = {0.25, 0.5, 0.5, 1.0, 1.5};
  std::uniform_int_distribution<int> step(-5, 5), pick(0, int(beats.size()) - 1);
  Song s;
  s.name = name;
  double t = 0, spb = 60.0 / bpm;
  int pitch = 72;
  for (int i = 0; i < notes; i++) {
    pitch = std::max(60, std::min(90, pitch + step(rng)));
    double dur = beats[pick(rng)] * spb;
    s.notes.push_back({pitch + transpose, 80, 0, false, t, t + dur});
    if (i % 4 == 0) s.notes.push_back({pitch + transpose - 12, 60, 0, false, t, t + dur});  // lower voice
    if (i % 3 == 0) s.notes.push_back({36, 100, 0, true, t, t + 0.1});                      // drums ignored
    t += dur;
  }
  s.sort();
  return s;
}

}  // namespace

TEST(Melody, TransposedCopyAtAnotherTempoMatchesFully) {
  std::vector<Song> pieces;
  for (int p = 0; p < 5; p++) {
    std::mt19937 rng(50 + p);
    pieces.push_back(make_piece(rng, 120, 0, 100, "piece" + std::to_string(p)));
  }
  TokenIndex index = imagine::build_melody_index(pieces);
  std::mt19937 rng(53);  // the seed of piece3
  Song copy = make_piece(rng, 120, -5, 140, "generated");
  imagine::MelodyMatch m = imagine::longest_melody_match(index, copy);
  EXPECT_EQ(m.piece_name, "piece3");
  EXPECT_EQ(m.piece, 3u);
  EXPECT_EQ(m.melody_notes, 120u);
  EXPECT_EQ(m.symbols, 118u);
  // Both start at the first melody note: after the drum and the lower voice at time 0.
  EXPECT_EQ(m.training_note, 2u);
  EXPECT_EQ(m.query_note, 2u);
  EXPECT_EQ(pieces[3].notes[2].pitch, copy.notes[2].pitch + 5);
  EXPECT_FALSE(pieces[3].notes[2].drum);
  EXPECT_EQ(imagine::melody_symbols(copy).symbols, imagine::melody_symbols(pieces[3]).symbols);
}

TEST(Melody, ReportsTheNoteWhereAnEmbeddedQuotationStarts) {
  std::vector<Song> pieces;
  for (int p = 0; p < 3; p++) {
    std::mt19937 rng(80 + p);
    pieces.push_back(make_piece(rng, 100, 0, 120, "p" + std::to_string(p)));
  }
  TokenIndex index = imagine::build_melody_index(pieces);
  // The query: its own opening, then melody notes 30..69 of p1 transposed up a tone.
  std::mt19937 rng(999);
  Song q = make_piece(rng, 20, 0, 120, "q");
  std::vector<Note> line;
  for (const Note& n : pieces[1].notes) {  // the top note of each onset
    if (n.drum) continue;
    if (line.empty() || n.start > line.back().start) {
      line.push_back(n);
    } else if (n.pitch > line.back().pitch) {
      line.back() = n;
    }
  }
  ASSERT_EQ(line.size(), 100u);
  double shift = q.duration() + 0.37 - line[30].start;
  size_t first_query_note = q.notes.size();
  for (int i = 30; i < 70; i++) {
    Note n = line[i];
    n.pitch += 2;
    n.start += shift;
    n.end += shift;
    q.notes.push_back(n);
  }
  imagine::MelodyMatch m = imagine::longest_melody_match(index, q);
  EXPECT_EQ(m.piece_name, "p1");
  EXPECT_GE(m.melody_notes, 39u);  // the first quoted note's rhythm symbol sees the gap before it
  EXPECT_LE(m.melody_notes, 41u);
  const Note& at = pieces[1].notes[m.training_note];
  EXPECT_EQ(q.notes[m.query_note].pitch, at.pitch + 2);
  EXPECT_GE(m.query_note, first_query_note - 1);
}

TEST(Melody, AlteredRhythmOrAnotherPieceGivesAShortMatch) {
  std::vector<Song> pieces;
  for (int p = 0; p < 5; p++) {
    std::mt19937 rng(50 + p);
    pieces.push_back(make_piece(rng, 120, 0, 100, "piece" + std::to_string(p)));
  }
  TokenIndex index = imagine::build_melody_index(pieces);

  // Same pitches as piece2, but every fifth onset gap doubled.
  Song altered = pieces[2];
  std::vector<double> starts;
  for (const Note& n : altered.notes)
    if (starts.empty() || n.start > starts.back()) starts.push_back(n.start);
  for (Note& n : altered.notes) {
    size_t k = size_t(std::lower_bound(starts.begin(), starts.end(), n.start) - starts.begin());
    double delay = 0;
    for (size_t j = 5; j <= k; j += 5) delay += starts[j] - starts[j - 1];
    n.start += delay;
    n.end += delay;
  }
  imagine::MelodyMatch a = imagine::longest_melody_match(index, altered);
  EXPECT_LE(a.symbols, 4u);

  std::mt19937 rng(12345);
  imagine::MelodyMatch other = imagine::longest_melody_match(index, make_piece(rng, 120, 3, 100, "new"));
  EXPECT_LE(other.symbols, 6u);
}

TEST(Melody, RefusesAnIndexBuiltWithOtherOptions) {
  TokenIndex index = imagine::build_melody_index({});
  MelodyOptions other;
  other.rhythm_steps = 4;
  EXPECT_THROW(imagine::longest_melody_match(index, Song{}, other), imagine::Error);
  EXPECT_EQ(imagine::longest_melody_match(index, Song{}).symbols, 0u);
}

// ---- nearest neighbours ----

TEST(Neighbours, AgreeWithADirectComputation) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0, 1);
  const size_t n = 300, dim = 37, nq = 9;  // dim and nq not multiples of the kernel's 8 and 4
  std::vector<float> rows(n * dim), queries(nq * dim);
  for (auto& v : rows) v = u(rng);
  for (auto& v : queries) v = u(rng);
  VectorIndex index(rows, dim);
  NeighbourOptions opt;
  opt.k = 20;
  auto reports = index.nearest(queries, opt);
  ASSERT_EQ(reports.size(), nq);
  for (size_t q = 0; q < nq; q++) {
    std::vector<std::pair<double, size_t>> d;
    for (size_t r = 0; r < n; r++) {
      double s = 0;
      for (size_t j = 0; j < dim; j++)
        s += double(queries[q * dim + j] - rows[r * dim + j]) * (queries[q * dim + j] - rows[r * dim + j]);
      d.push_back({std::sqrt(s), r});
    }
    std::sort(d.begin(), d.end());
    ASSERT_EQ(reports[q].indices.size(), 20u);
    double mean = 0;
    for (size_t j = 0; j < 20; j++) {
      EXPECT_EQ(reports[q].indices[j], d[j].second);
      EXPECT_NEAR(reports[q].distances[j], d[j].first, 1e-5);
      mean += d[j].first / 20;
    }
    EXPECT_NEAR(reports[q].ratio, d[0].first / mean, 1e-6);
  }
}

TEST(Neighbours, ExactCopyIsFlaggedRandomVectorIsNot) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> u(0, 1);
  const size_t n = 1000, dim = 784;
  std::vector<float> rows(n * dim);
  for (auto& v : rows) v = u(rng);
  VectorIndex index(rows, dim);
  std::vector<float> copy(rows.begin() + 417 * dim, rows.begin() + 418 * dim);
  imagine::NeighbourReport c = index.nearest_one(copy);
  EXPECT_EQ(c.indices[0], 417u);
  EXPECT_EQ(c.distances[0], 0.0);
  EXPECT_EQ(c.ratio, 0.0);
  EXPECT_TRUE(c.flagged);
  EXPECT_EQ(c.indices.size(), 50u);

  std::vector<float> fresh(dim);
  for (auto& v : fresh) v = u(rng);
  imagine::NeighbourReport f = index.nearest_one(fresh);
  EXPECT_GT(f.ratio, 0.8);
  EXPECT_FALSE(f.flagged);

  // A lightly noised copy is still a near-copy.
  std::normal_distribution<float> noise(0, 0.02f);
  for (auto& v : copy) v += noise(rng);
  EXPECT_TRUE(index.nearest_one(copy).flagged);
}

TEST(Neighbours, KLargerThanTheSetAndBadShapes) {
  VectorIndex index({0, 0, 1, 0, 0, 3}, 2);
  ASSERT_EQ(index.size(), 3u);
  imagine::NeighbourReport r = index.nearest_one({0, 0});
  ASSERT_EQ(r.indices.size(), 3u);
  EXPECT_EQ(r.indices, (std::vector<size_t>{0, 1, 2}));
  EXPECT_DOUBLE_EQ(r.ratio, 0.0);
  imagine::NeighbourReport s = index.nearest_one({0, 1});
  EXPECT_NEAR(s.ratio, 1.0 / ((1.0 + std::sqrt(2.0) + 2.0) / 3.0), 1e-12);
  NeighbourOptions opt;
  opt.threshold = 0.8;
  EXPECT_TRUE(index.nearest_one({0, 1}, opt).flagged);
  EXPECT_THROW(VectorIndex({1, 2, 3}, 2), imagine::Error);
  EXPECT_THROW(index.nearest_one({1, 2, 3}), imagine::Error);
  EXPECT_EQ(imagine::pixel_vector({0, 255})[1], 1.0f);
}
