// See sampler.h. Plain loops over one row: the vocabulary is small and this keeps every
// step exact and reproducible.
#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

namespace imagine {

nlohmann::json SamplingParams::to_json() const {
  return {{"temperature", temperature},
          {"top_k", top_k},
          {"top_p", top_p},
          {"min_p", min_p},
          {"repeat_penalty", repeat_penalty},
          {"repeat_last_n", repeat_last_n}};
}

void apply_repeat_penalty(std::vector<float>& logits, const std::vector<int64_t>& recent, double penalty) {
  if (penalty == 1.0) return;
  std::set<int64_t> seen(recent.begin(), recent.end());
  for (int64_t t : seen) {
    if (t < 0 || t >= static_cast<int64_t>(logits.size())) continue;
    float& l = logits[t];
    l = l > 0 ? static_cast<float>(l / penalty) : static_cast<float>(l * penalty);
  }
}

std::vector<std::pair<int64_t, double>> candidate_set(const std::vector<float>& logits,
                                                      const SamplingParams& p) {
  const int64_t n = static_cast<int64_t>(logits.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  // Ties broken by token id so the order (and the result) is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  int64_t keep = n;
  if (p.top_k > 0 && p.top_k < keep) keep = p.top_k;

  // Probabilities at temperature 1 decide top-p and min-p (llama.cpp applies temperature last).
  const double mx = logits[order[0]];
  std::vector<double> prob(keep);
  double z = 0;
  for (int64_t i = 0; i < keep; i++) z += prob[i] = std::exp(static_cast<double>(logits[order[i]]) - mx);
  for (auto& q : prob) q /= z;
  if (p.top_p < 1.0) {
    double cum = 0;
    for (int64_t i = 0; i < keep; i++) {
      cum += prob[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p.min_p > 0) {
    const double floor = p.min_p * prob[0];
    int64_t k = 1;
    while (k < keep && prob[k] >= floor) k++;
    keep = k;
  }

  std::vector<std::pair<int64_t, double>> out(keep);
  if (p.temperature <= 0) {
    out.resize(1);
    out[0] = {order[0], 1.0};
    return out;
  }
  double zt = 0;
  for (int64_t i = 0; i < keep; i++) {
    const double w = std::exp((static_cast<double>(logits[order[i]]) - mx) / p.temperature);
    out[i] = {order[i], w};
    zt += w;
  }
  for (auto& c : out) c.second /= zt;
  return out;
}

int64_t sample_token(std::vector<float> logits, const std::vector<int64_t>& recent, const SamplingParams& p,
                     Rng& rng) {
  if (p.repeat_penalty != 1.0 && p.repeat_last_n != 0) {
    const size_t n =
        p.repeat_last_n < 0 ? recent.size() : std::min(recent.size(), static_cast<size_t>(p.repeat_last_n));
    std::vector<int64_t> window(recent.end() - n, recent.end());
    apply_repeat_penalty(logits, window, p.repeat_penalty);
  }
  auto cands = candidate_set(logits, p);
  if (cands.size() == 1) return cands[0].first;
  const double u = rng.uniform();
  double cum = 0;
  for (auto& c : cands) {
    cum += c.second;
    if (u < cum) return c.first;
  }
  return cands.back().first;  // rounding: u beyond the last partial sum
}

}  // namespace imagine
