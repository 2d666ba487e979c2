// See token_watermark.h.
#include "provenance/token_watermark.h"

#include <cmath>
#include <limits>
#include <unordered_set>

#include "core/error.h"

namespace imagine {

std::string TokenWatermarkParams::scheme() const {
  return context == 1 ? "kgw-lefthash-1" : "kgw-selfhash-" + std::to_string(context);
}

void TokenWatermarkParams::validate() const {
  if (context != 1 && context != 4)
    throw UsageError(str("watermark context must be 1 or 4, not ", context),
                     "1 = lefthash (edit-robust), 4 = selfhash (the default)");
  if (!(gamma > 0.0 && gamma < 1.0))
    throw UsageError(str("watermark gamma must be between 0 and 1, not ", gamma), "the default is 0.25");
  if (!(delta >= 0.0 && delta <= 20.0))
    throw UsageError(str("watermark delta must be between 0 and 20, not ", delta), "the default is 2");
}

nlohmann::json TokenWatermarkParams::to_json() const {
  return {{"scheme", scheme()}, {"context", context}, {"gamma", gamma}, {"delta", delta}};
}

TokenWatermarkParams TokenWatermarkParams::from_json(const nlohmann::json& j) {
  TokenWatermarkParams p;
  try {
    p.context = j.at("context").get<int>();
    p.gamma = j.at("gamma").get<double>();
    p.delta = j.at("delta").get<double>();
  } catch (const nlohmann::json::exception&) {
    throw Error("the manifest's watermark parameters are incomplete", "the file's provenance is damaged");
  }
  p.validate();
  return p;
}

nlohmann::json TokenDetection::to_json() const {
  return {{"scored", scored}, {"green", green},     {"skipped", skipped},
          {"z", z},           {"p_value", p_value}, {"verdict", verdict}};
}

double normal_upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

double green_z(int64_t green, int64_t scored, double gamma) {
  if (scored <= 0) return 0.0;
  const double t = double(scored);
  return (double(green) - gamma * t) / std::sqrt(t * gamma * (1.0 - gamma));
}

TokenWatermark::TokenWatermark(const std::string& key32, const TokenWatermarkParams& p) : p_(p) {
  IMAGINE_CHECK(key32.size() == 32, "use a key file created by imagine", "a watermark key must be 32 bytes");
  p_.validate();
  key_ = derive_prf_key(key32, "kgw-v1");
  threshold_ = p_.gamma >= 1.0 ? UINT64_MAX : uint64_t(std::ldexp(p_.gamma, 64));
}

uint64_t TokenWatermark::seed(const int64_t* context, int64_t token) const {
  if (p_.context == 1) return prf(key_, uint64_t(context[0]));
  uint64_t s = UINT64_MAX;
  for (int j = 0; j < p_.context; j++) s = std::min(s, prf(key_, uint64_t(context[j]), uint64_t(token)));
  return s;
}

bool TokenWatermark::green_for_seed(uint64_t seed, int64_t token) const {
  return prf(key_, seed, uint64_t(token), 0x67726565ULL /* "gree" */) < threshold_;
}

bool TokenWatermark::is_green(const int64_t* context, int64_t token) const {
  return green_for_seed(seed(context, token), token);
}

TokenWatermark::Cache::Row& TokenWatermark::Cache::row(int64_t x, size_t vocab) {
  auto it = rows_.find(x);
  if (it != rows_.end()) return it->second;
  Row& r = rows_[x];
  r.seed.assign(vocab, UINT64_MAX);
  r.green.assign(vocab, -1);
  return r;
}

void TokenWatermark::bias(std::vector<float>& logits, const std::vector<int64_t>& tokens,
                          Cache* cache) const {
  const size_t h = size_t(p_.context);
  if (tokens.size() < h || p_.delta == 0.0) return;
  const int64_t* ctx = tokens.data() + tokens.size() - h;
  const float d = float(p_.delta);
  // Tokens more than delta + 30 nats below the best keep p < 1e-13 whether green or not:
  // skipping them saves most of the hashing for large vocabularies and changes no sample
  // in practice.
  float top = -std::numeric_limits<float>::infinity();
  for (float l : logits) top = std::max(top, l);
  const float floor = top - d - 30.0f;
  if (!cache) {
    for (size_t v = 0; v < logits.size(); v++)
      if (logits[v] >= floor && is_green(ctx, int64_t(v))) logits[v] += d;
    return;
  }
  const size_t V = logits.size();
  if (cache->rows_.size() + h > Cache::kRows) cache->rows_.clear();  // bounded: start afresh
  Cache::Row* rows[4];
  for (size_t j = 0; j < h; j++) rows[j] = &cache->row(ctx[j], V);
  const uint64_t left_seed = h == 1 ? seed(ctx, 0) : 0;  // lefthash: one seed for every candidate
  for (size_t v = 0; v < V; v++) {
    if (logits[v] < floor) continue;
    // The green bit depends on the seed alone, and the seed on the context token that gives
    // it (lefthash: the one; selfhash: the minimum PRF(x, v)): it is cached in that token's row.
    size_t best = 0;
    uint64_t s = left_seed;
    for (size_t j = 0; h > 1 && j < h; j++) {
      uint64_t& sj = rows[j]->seed[v];
      if (sj == UINT64_MAX)
        sj = prf(key_, uint64_t(ctx[j]), uint64_t(v));  // (a true UINT64_MAX is just re-hashed)
      if (j == 0 || sj < s) {
        s = sj;
        best = j;
      }
    }
    int8_t& g = rows[best]->green[v];
    if (g < 0) g = green_for_seed(s, int64_t(v)) ? 1 : 0;
    if (g == 1) logits[v] += d;
  }
}

TokenDetection TokenWatermark::detect(const std::vector<int64_t>& tokens, const DetectionPolicy& policy,
                                      size_t first, const std::vector<bool>* score) const {
  TokenDetection d;
  const size_t h = size_t(p_.context);
  std::unordered_set<uint64_t> seen;
  for (size_t i = 0; i < tokens.size(); i++) {
    if (i < first) continue;
    if (i < h || (score && (i >= score->size() || !(*score)[i]))) {
      d.skipped++;
      continue;
    }
    // The pair's identity is what its colour depends on: (seed, token). For selfhash that
    // is (the context token holding the minimum, token), so the same pair met in different
    // 4-token contexts is scored once — scoring it each time would make the counts of
    // repetitive human text (code, tables, boilerplate) swing far wider than the binomial
    // null and raise false positives (measured: docs/responsible.md).
    const uint64_t id =
        prf(key_, seed(tokens.data() + i - h, tokens[i]), uint64_t(tokens[i]), 0x70616972ULL /* "pair" */);
    if (!seen.insert(id).second) {
      d.skipped++;
      continue;
    }
    d.scored++;
    if (is_green(tokens.data() + i - h, tokens[i])) d.green++;
  }
  d.z = green_z(d.green, d.scored, p_.gamma);
  d.p_value = d.scored > 0 ? normal_upper_tail(d.z) : 1.0;
  if (d.z > policy.z_threshold && d.scored > 0)
    d.verdict = "watermarked";
  else if (d.scored < policy.min_tokens)
    d.verdict = "inconclusive";
  else
    d.verdict = "not watermarked";
  return d;
}

}  // namespace imagine
