// Tests for generate/sampler: every filter (top-k, top-p, min-p, combined) against sets
// computed independently here, greedy and near-greedy temperatures, the repetition penalty,
// seed reproducibility, and the empirical distribution at temperature 1 against softmax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/runtime.h"
#include "generate/sampler.h"

namespace {

using imagine::Rng;
using imagine::SamplingParams;

std::vector<float> random_logits(uint32_t seed, int n = 50, double scale = 2.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> nd(0.0, scale);
  std::vector<float> l(n);
  for (auto& x : l) x = static_cast<float>(nd(gen));
  return l;
}

SamplingParams all_off(double temperature = 1.0) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0;
  p.min_p = 0.0;
  p.repeat_penalty = 1.0;
  return p;
}

// Token ids by decreasing logit (ties by id).
std::vector<int64_t> ranked(const std::vector<float>& l) {
  std::vector<int64_t> order(l.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return l[a] > l[b]; });
  return order;
}

// softmax(l / t) over the given ids, in double.
std::vector<double> softmax_over(const std::vector<float>& l, const std::vector<int64_t>& ids, double t = 1.0) {
  double mx = -INFINITY;
  for (auto i : ids) mx = std::max(mx, static_cast<double>(l[i]));
  std::vector<double> p;
  double z = 0;
  for (auto i : ids) z += p.emplace_back(std::exp((l[i] - mx) / t));
  for (auto& x : p) x /= z;
  return p;
}

// The expected candidate set for the filter chain top-k -> top-p -> min-p, computed
// independently. Sets `ambiguous` when a threshold lies within rounding of a boundary.
std::vector<int64_t> expected_set(const std::vector<float>& l, int64_t k, double top_p, double min_p,
                                  bool* ambiguous) {
  *ambiguous = false;
  auto order = ranked(l);
  if (k > 0 && k < static_cast<int64_t>(order.size())) order.resize(k);
  auto p = softmax_over(l, order);
  size_t keep = order.size();
  if (top_p < 1.0) {
    double cum = 0;
    for (size_t i = 0; i < order.size(); i++) {
      cum += p[i];
      if (std::abs(cum - top_p) < 1e-9) *ambiguous = true;
      if (cum >= top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (min_p > 0) {
    const double floor = min_p * p[0];
    size_t m = 0;
    for (size_t i = 0; i < keep; i++) {
      if (std::abs(p[i] - floor) < 1e-12) *ambiguous = true;
      if (p[i] >= floor) m = i + 1;
      else break;  // sorted: nothing after falls above the floor
    }
    keep = std::max<size_t>(1, m);
  }
  order.resize(keep);
  return order;
}

// Checks candidate_set against the independent computation (ids, order and probabilities at
// the temperature) and that sample_token draws only from it. Returns the distinct tokens drawn.
std::set<int64_t> check_filters(const std::vector<float>& l, const SamplingParams& p, uint64_t seed, int draws) {
  bool ambiguous = false;
  auto want = expected_set(l, p.top_k, p.top_p, p.min_p, &ambiguous);
  if (ambiguous) return {};
  auto got = imagine::candidate_set(l, p);
  EXPECT_EQ(got.size(), want.size());
  const auto probs = softmax_over(l, want, p.temperature);
  double total = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); i++) {
    EXPECT_EQ(got[i].first, want[i]) << "rank " << i;
    EXPECT_NEAR(got[i].second, probs[i], 1e-9) << "rank " << i;
    total += got[i].second;
  }
  EXPECT_NEAR(total, 1.0, 1e-9);
  const std::set<int64_t> allowed(want.begin(), want.end());
  std::set<int64_t> drawn;
  Rng rng(seed);
  for (int i = 0; i < draws; i++) {
    const int64_t t = imagine::sample_token(l, {}, p, rng);
    EXPECT_TRUE(allowed.count(t)) << "sampled token " << t << " outside the allowed set of " << allowed.size();
    drawn.insert(t);
  }
  return drawn;
}

}  // namespace

TEST(Sampler, TopKNeverSamplesOutsideTheKBest) {
  size_t max_distinct = 0;
  for (uint32_t seed = 0; seed < 40; seed++) {
    auto l = random_logits(seed, 50, 1.0);
    for (int64_t k : {1, 3, 10}) {
      auto p = all_off();
      p.top_k = k;
      auto drawn = check_filters(l, p, seed * 31 + k, 200);
      EXPECT_LE(drawn.size(), static_cast<size_t>(k));
      max_distinct = std::max(max_distinct, drawn.size());
      // independent: the allowed ids are those with fewer than k strictly larger logits
      auto cands = imagine::candidate_set(l, p);
      for (auto& [id, pr] : cands) {
        int larger = 0;
        for (float x : l) larger += x > l[id];
        EXPECT_LT(larger, k);
      }
    }
  }
  EXPECT_GE(max_distinct, 5u);  // sampling actually spreads over the k = 10 candidates
}

TEST(Sampler, TopPNeverSamplesOutsideTheNucleus) {
  int checked = 0;
  for (uint32_t seed = 100; seed < 140; seed++) {
    auto l = random_logits(seed);
    for (double top_p : {0.1, 0.5, 0.9, 0.99}) {
      auto p = all_off();
      p.top_p = top_p;
      bool amb;
      auto want = expected_set(l, 0, top_p, 0, &amb);
      if (amb) continue;
      // sanity of the independent set: mass >= p, and without its last member < p
      auto pr = softmax_over(l, ranked(l));
      double mass = std::accumulate(pr.begin(), pr.begin() + want.size(), 0.0);
      EXPECT_GE(mass, top_p);
      EXPECT_LT(mass - pr[want.size() - 1], top_p);
      check_filters(l, p, seed, 200);
      checked++;
    }
  }
  EXPECT_GT(checked, 150);
}

TEST(Sampler, MinPNeverSamplesBelowTheFloor) {
  for (uint32_t seed = 200; seed < 240; seed++) {
    auto l = random_logits(seed);
    const auto all = ranked(l);
    const auto full = softmax_over(l, all);  // full[0] = pmax
    for (double min_p : {0.01, 0.1, 0.5}) {
      auto p = all_off();
      p.min_p = min_p;
      check_filters(l, p, seed, 200);
      Rng rng(seed + 7);
      for (int i = 0; i < 200; i++) {
        const int64_t t = imagine::sample_token(l, {}, p, rng);
        const size_t rank = std::find(all.begin(), all.end(), t) - all.begin();
        EXPECT_GE(full[rank], min_p * full[0] * (1 - 1e-12));
      }
    }
  }
}

TEST(Sampler, CombinedFiltersAndTemperature) {
  int checked = 0;
  for (uint32_t seed = 300; seed < 340; seed++) {
    auto l = random_logits(seed, 64, 1.5);
    for (double t : {0.5, 1.0, 1.7}) {
      SamplingParams p;
      p.temperature = t;
      p.top_k = 12;
      p.top_p = 0.8;
      p.min_p = 0.05;
      p.repeat_penalty = 1.0;
      check_filters(l, p, seed, 100);
      checked++;
    }
  }
  EXPECT_EQ(checked, 120);
  // The default parameters are the combined chain too.
  auto l = random_logits(999, 64);
  check_filters(l, SamplingParams{}, 5, 300);
}

TEST(Sampler, TemperatureZeroAndNearZeroAreArgmax) {
  for (uint32_t seed = 400; seed < 430; seed++) {
    auto l = random_logits(seed, 40);
    const int64_t argmax = std::max_element(l.begin(), l.end()) - l.begin();
    // a clear winner, so 1e-4 must be greedy as well
    auto sorted = l;
    std::sort(sorted.rbegin(), sorted.rend());
    for (double t : {0.0, 1e-4}) {
      if (t > 0 && sorted[0] - sorted[1] < 0.01) continue;
      SamplingParams p;
      p.temperature = t;
      p.top_k = 0;
      p.top_p = 1.0;
      p.min_p = 0.0;
      Rng rng(seed);
      for (int i = 0; i < 50; i++) EXPECT_EQ(imagine::sample_token(l, {}, p, rng), argmax) << "t=" << t;
      // with the default filters on as well
      SamplingParams d;
      d.temperature = t;
      for (int i = 0; i < 20; i++) EXPECT_EQ(imagine::sample_token(l, {}, d, rng), argmax) << "t=" << t;
    }
    SamplingParams g = all_off(0.0);
    auto c = imagine::candidate_set(l, g);
    ASSERT_EQ(c.size(), 1u);
    EXPECT_EQ(c[0].first, argmax);
    EXPECT_DOUBLE_EQ(c[0].second, 1.0);
  }
}

TEST(Sampler, RepeatPenaltyRule) {
  std::vector<float> l = {2.0f, -1.5f, 0.5f, -0.25f, 3.0f, 0.0f};
  auto a = l;
  imagine::apply_repeat_penalty(a, {0, 1, 1, 5, 1, 99, -1}, 2.0);  // duplicates, out-of-range ids ignored
  EXPECT_FLOAT_EQ(a[0], 1.0f);    // positive: divided
  EXPECT_FLOAT_EQ(a[1], -3.0f);   // negative: multiplied (once, despite three occurrences)
  EXPECT_FLOAT_EQ(a[2], 0.5f);    // not recent: untouched
  EXPECT_FLOAT_EQ(a[3], -0.25f);
  EXPECT_FLOAT_EQ(a[4], 3.0f);
  EXPECT_FLOAT_EQ(a[5], 0.0f);    // zero stays zero
  auto b = l;
  imagine::apply_repeat_penalty(b, {0, 1, 2, 3, 4, 5}, 1.0);  // 1 = off
  EXPECT_EQ(b, l);
  auto c = l;
  imagine::apply_repeat_penalty(c, {4}, 0.5);  // < 1 encourages
  EXPECT_FLOAT_EQ(c[4], 6.0f);
}

TEST(Sampler, RepeatPenaltyLowersFrequencyOfRecentTokens) {
  const std::vector<float> l = {1.0f, 1.0f, 1.0f, 1.0f};
  auto p = all_off();
  const int n = 8000;
  auto freq = [&](const SamplingParams& sp, const std::vector<int64_t>& recent, int64_t tok) {
    Rng rng(77);
    int hits = 0;
    for (int i = 0; i < n; i++) hits += imagine::sample_token(l, recent, sp, rng) == tok;
    return static_cast<double>(hits) / n;
  };
  const double plain = freq(p, {0, 0, 2}, 0);
  p.repeat_penalty = 1.5;
  p.repeat_last_n = 64;
  const double penalised = freq(p, {0, 0, 2}, 0);
  // expected: e^(1/1.5) / (e^(1/1.5) + e^(1/1.5) + 2e) for token 0 (tokens 0 and 2 penalised)
  const double e0 = std::exp(1.0 / 1.5), e1 = std::exp(1.0);
  const double want = e0 / (2 * e0 + 2 * e1);
  EXPECT_NEAR(plain, 0.25, 0.03);
  EXPECT_NEAR(penalised, want, 0.03);
  EXPECT_LT(penalised, plain - 0.03);
  // repeat_last_n: only the window counts; token 0 is outside the last 1 token here
  p.repeat_last_n = 1;
  const double outside = freq(p, {0, 3}, 0);
  EXPECT_NEAR(outside, e1 / (3 * e1 + e0), 0.03);
  EXPECT_GT(outside, 0.25);  // token 3 penalised, token 0 relatively more likely
  // repeat_last_n = 0 disables the penalty
  p.repeat_last_n = 0;
  EXPECT_DOUBLE_EQ(freq(p, {0, 0, 2}, 0), plain);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  auto l = random_logits(500, 30, 0.7);
  SamplingParams p;
  p.temperature = 1.0;
  p.top_k = 0;
  p.top_p = 1.0;
  p.min_p = 0.0;
  auto run = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<int64_t> out;
    for (int i = 0; i < 200; i++) out.push_back(imagine::sample_token(l, out, p, rng));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  // the Rng itself: same seed, same stream; state round trip continues the stream
  Rng a(9), b(9);
  for (int i = 0; i < 10; i++) EXPECT_EQ(a.next(), b.next());
  Rng c(0);
  c.set_state(a.state());
  for (int i = 0; i < 10; i++) EXPECT_EQ(a.next(), c.next());
}

TEST(Sampler, EmpiricalDistributionMatchesSoftmax) {
  const std::vector<float> l = {2.0f, 1.0f, 0.5f, 0.0f, -1.0f};
  const auto probs = softmax_over(l, {0, 1, 2, 3, 4});
  const int n = 20000;
  for (uint64_t seed : {1u, 2u, 3u}) {
    Rng rng(seed);
    std::vector<int> count(5, 0);
    for (int i = 0; i < n; i++) count[imagine::sample_token(l, {}, all_off(), rng)]++;
    double chi2 = 0;
    for (int i = 0; i < 5; i++) {
      const double e = probs[i] * n;
      chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    // 4 degrees of freedom: P(chi2 > 18.47) = 0.001
    EXPECT_LT(chi2, 18.47) << "seed " << seed;
  }
  // At temperature 2 the distribution is softmax(l / 2).
  const auto probs2 = softmax_over(l, {0, 1, 2, 3, 4}, 2.0);
  Rng rng(4);
  std::vector<int> count(5, 0);
  for (int i = 0; i < n; i++) count[imagine::sample_token(l, {}, all_off(2.0), rng)]++;
  double chi2 = 0;
  for (int i = 0; i < 5; i++) chi2 += (count[i] - probs2[i] * n) * (count[i] - probs2[i] * n) / (probs2[i] * n);
  EXPECT_LT(chi2, 18.47);
}

TEST(Sampler, RngUniformIsInUnitIntervalAndBelowIsUniform) {
  Rng rng(123);
  std::vector<int> c(7, 0);
  for (int i = 0; i < 70000; i++) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    c[rng.below(7)]++;
  }
  for (int x : c) EXPECT_NEAR(x, 10000, 400);
}
