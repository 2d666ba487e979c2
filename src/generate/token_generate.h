// Sampling a continuation of a token sequence from a GPT, with a KV cache. Every family
// that generates tokens (text, music) runs this one loop. When the context fills up, the
// window slides: the newest half is kept and re-encoded (learned positions cannot extend
// past block_size).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/runtime.h"
#include "generate/sampler.h"
#include "models/gpt.h"

namespace imagine {

// Adjusts one step's logits in place; `tokens` is the whole sequence so far.
using LogitHook = std::function<void(std::vector<float>& logits, const std::vector<int64_t>& tokens)>;

struct TokenSampling {
  int64_t max_tokens = 256;  // new tokens at most
  SamplingParams sampling;
  bool kv_cache = true;      // false: recompute the whole window for every token
  // Tokens never sampled (e.g. a begin-of-sequence marker in the middle of a piece).
  std::vector<int64_t> banned;
  // Applied to each step's raw logits before sampling, given every token so far (the
  // watermark's green-list bias plugs in here; generate/ knows nothing of watermarks).
  LogitHook logit_hook;
};

// Samples after `context` (cropped to the model's block by the caller). `on_token` sees each
// new token and returns false to stop. Returns the new tokens.
std::vector<int64_t> sample_continuation(GPT& gpt, torch::Device device, std::vector<int64_t> context,
                                         const TokenSampling& opt, Rng& rng,
                                         const std::function<bool(int64_t)>& on_token);

// Next-token logits for a token sequence, by full recomputation (tests, eval).
torch::Tensor next_token_logits(GPT& gpt, const std::vector<int64_t>& tokens, torch::Device device);

}  // namespace imagine
