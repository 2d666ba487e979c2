// Token sampling from logits: repetition penalty, top-k, top-p (nucleus), min-p and
// temperature, applied in llama.cpp's order (penalty, top-k, top-p, min-p, temperature).
// Runs on the CPU over one vocabulary row with our own RNG, so a seed gives the same
// tokens on every machine and thread count.
#pragma once
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/runtime.h"

namespace imagine {

struct SamplingParams {
  double temperature = 0.8;     // <= 0: greedy (argmax)
  int64_t top_k = 40;           // keep the k most likely tokens; 0 = off
  double top_p = 0.95;          // keep the smallest set with this much probability; 1 = off
  double min_p = 0.05;          // drop tokens below min_p * p(most likely); 0 = off
  double repeat_penalty = 1.0;  // > 1 discourages tokens seen in the last repeat_last_n; 1 = off
  int64_t repeat_last_n = 64;   // window for the repetition penalty

  nlohmann::json to_json() const;
};

// Applies the penalty to logits in place (llama.cpp / CTRL rule: divide positive logits,
// multiply negative ones) for every distinct token in `recent`.
void apply_repeat_penalty(std::vector<float>& logits, const std::vector<int64_t>& recent, double penalty);

// The tokens that survive top-k, top-p and min-p (after the penalty), with their
// probabilities at the given temperature, most likely first. Never empty.
std::vector<std::pair<int64_t, double>> candidate_set(const std::vector<float>& logits,
                                                      const SamplingParams& p);

// Samples one token. `recent` holds the last tokens of the context (for the penalty).
int64_t sample_token(std::vector<float> logits, const std::vector<int64_t>& recent, const SamplingParams& p,
                     Rng& rng);

}  // namespace imagine
