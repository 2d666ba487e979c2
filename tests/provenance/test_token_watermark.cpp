// The token watermark (KGW green lists) and its PRF: SipHash-2-4 test vectors, the green
// fraction, detection statistics on marked and unmarked streams, repeats scored once.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/runtime.h"
#include "provenance/prf.h"
#include "provenance/token_watermark.h"

namespace imagine {
namespace {

const std::string kKey(32, '\x07');

TEST(Prf, SipHashTestVectors) {
  // The reference vectors of the SipHash paper: key 00..0f, messages 00..(n-1).
  PrfKey k{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  unsigned char m[16];
  for (int i = 0; i < 16; i++) m[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(siphash24(k, m, 0), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(siphash24(k, m, 1), 0x74f839c593dc67fdULL);
  EXPECT_EQ(siphash24(k, m, 15), 0xa129ca6149be45e5ULL);
  // The word forms hash exactly the little-endian bytes.
  EXPECT_EQ(prf(k, 0x0706050403020100ULL), siphash24(k, m, 8));
  EXPECT_EQ(prf(k, 0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL), siphash24(k, m, 16));
  // Purposes give unrelated sub-keys.
  EXPECT_NE(derive_prf_key(kKey, "a").k0, derive_prf_key(kKey, "b").k0);
}

// Samples a stream the way generation does: uniform logits plus the bias, softmax.
std::vector<int64_t> sample_stream(const TokenWatermark* wm, int vocab, int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<int64_t> t = {1, 2, 3, 4};
  for (int i = 0; i < n; i++) {
    std::vector<float> logits(vocab, 0.0f);
    if (wm) wm->bias(logits, t);
    double total = 0;
    for (float l : logits) total += std::exp(l);
    double u = rng.uniform() * total;
    int64_t pick = vocab - 1;
    for (int v = 0; v < vocab; v++) {
      u -= std::exp(logits[v]);
      if (u <= 0) {
        pick = v;
        break;
      }
    }
    t.push_back(pick);
  }
  return t;
}

class KgwScheme : public ::testing::TestWithParam<int> {};

TEST_P(KgwScheme, GreenFractionIsGamma) {
  TokenWatermarkParams p;
  p.context = GetParam();
  TokenWatermark wm(kKey, p);
  int64_t green = 0, total = 0;
  int64_t ctx[4] = {5, 9, 200, 31};
  for (int c = 0; c < 50; c++) {
    ctx[0] = c;
    for (int v = 0; v < 1000; v++, total++) green += wm.is_green(ctx, v);
  }
  EXPECT_NEAR(double(green) / total, p.gamma, 0.01);
}

TEST_P(KgwScheme, MarkedStreamDetectedUnmarkedNot) {
  TokenWatermarkParams p;
  p.context = GetParam();
  TokenWatermark wm(kKey, p);
  auto marked = sample_stream(&wm, 500, 200, 1);
  auto plain = sample_stream(nullptr, 500, 200, 1);
  TokenDetection dm = wm.detect(marked), dp = wm.detect(plain);
  // Uniform logits + delta 2: p(green) = 0.25 e^2 / (0.25 e^2 + 0.75) = 0.71, so z ~ 15.
  EXPECT_GT(dm.z, 8.0);
  EXPECT_EQ(dm.verdict, "watermarked");
  EXPECT_LT(dm.p_value, 1e-10);
  EXPECT_LT(std::abs(dp.z), 4.0);
  EXPECT_EQ(dp.verdict, "not watermarked");
  EXPECT_EQ(dm.scored + dm.skipped, int64_t(marked.size()));
  // Another key sees no mark in the marked stream.
  TokenWatermark other(std::string(32, '\x08'), p);
  EXPECT_LT(other.detect(marked).z, 4.0);
}

// The per-generation cache only saves hashing: every biased logit equals the uncached
// computation, over a stream long enough to pass the cache's bound many times, with
// repeated context tokens and logits far below the best (which are never biased).
TEST_P(KgwScheme, CachedBiasEqualsUncached) {
  TokenWatermarkParams p;
  p.context = GetParam();
  TokenWatermark wm(kKey, p);
  TokenWatermark::Cache cache;
  Rng rng(9);
  const int vocab = 300;
  std::vector<int64_t> t = {7, 7, 7};
  int64_t biased = 0;
  for (int step = 0; step < 600; step++) {
    std::vector<float> logits(vocab);
    for (auto& l : logits) l = float(rng.uniform() * 8.0 - 4.0);
    logits[size_t(step % vocab)] = -100.0f;  // below the floor: left alone
    std::vector<float> plain = logits, cached = logits;
    wm.bias(plain, t);
    wm.bias(cached, t, &cache);
    ASSERT_EQ(plain, cached) << "step " << step;
    for (int v = 0; v < vocab; v++) biased += plain[size_t(v)] != logits[size_t(v)];
    EXPECT_EQ(plain[size_t(step % vocab)], -100.0f);
    t.push_back(step < 300 ? int64_t(rng.uniform() * vocab) : int64_t(step % 5));
  }
  // About gamma of the candidates are green once there is context.
  EXPECT_NEAR(double(biased) / (600.0 * vocab), p.gamma, 0.02);
}

INSTANTIATE_TEST_SUITE_P(Contexts, KgwScheme, ::testing::Values(1, 4));

TEST(Kgw, NullDistributionIsStandardNormal) {
  TokenWatermarkParams p;
  TokenWatermark wm(kKey, p);
  double sum = 0, sq = 0;
  const int runs = 400;
  for (int r = 0; r < runs; r++) {
    const double z = wm.detect(sample_stream(nullptr, 300, 200, 100 + r)).z;
    sum += z;
    sq += z * z;
  }
  const double mean = sum / runs, sd = std::sqrt(sq / runs - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.2);
  EXPECT_NEAR(sd, 1.0, 0.15);
}

TEST(Kgw, RepeatedPairsScoredOnce) {
  TokenWatermarkParams p;
  p.context = 1;
  TokenWatermark wm(kKey, p);
  // "7 8 7 8 7 8 ...": only the pairs (7,8) and (8,7) are distinct.
  std::vector<int64_t> t;
  for (int i = 0; i < 100; i++) t.push_back(i % 2 ? 8 : 7);
  TokenDetection d = wm.detect(t);
  EXPECT_EQ(d.scored, 2);
  EXPECT_EQ(d.skipped, 98);
  EXPECT_EQ(d.verdict, "inconclusive");  // far too few tokens to decide, not "human"
}

TEST(Kgw, ShortTextInconclusiveAndScoringMask) {
  TokenWatermark wm(kKey, TokenWatermarkParams{});
  auto plain = sample_stream(nullptr, 500, 20, 3);
  EXPECT_EQ(wm.detect(plain).verdict, "inconclusive");
  std::vector<bool> none(plain.size(), false);
  TokenDetection d = wm.detect(plain, DetectionPolicy{}, 0, &none);
  EXPECT_EQ(d.scored, 0);
  EXPECT_EQ(d.p_value, 1.0);
}

TEST(Kgw, ZMatchesFormula) {
  // G = 50 of T = 100 at gamma 0.25: (50 - 25) / sqrt(100 * 0.25 * 0.75) = 5.7735.
  EXPECT_NEAR(green_z(50, 100, 0.25), 5.7735, 1e-4);
  EXPECT_NEAR(normal_upper_tail(4.0), 3.167e-5, 1e-8);
  EXPECT_NEAR(normal_upper_tail(0.0), 0.5, 1e-12);
}

TEST(Kgw, BadParametersRefused) {
  TokenWatermarkParams p;
  p.context = 2;
  EXPECT_THROW(p.validate(), UsageError);
  p.context = 4;
  p.gamma = 1.5;
  EXPECT_THROW(p.validate(), UsageError);
  EXPECT_THROW(TokenWatermark("short", TokenWatermarkParams{}), Error);
  EXPECT_THROW(TokenWatermarkParams::from_json(nlohmann::json::object()), Error);
}

}  // namespace
}  // namespace imagine
