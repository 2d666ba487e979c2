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
  bool kv_cache = true;  // false: recompute the whole window for every token
  // Tokens never sampled (e.g. a begin-of-sequence marker in the middle of a piece).
  std::vector<int64_t> banned;
  // Applied to each step's raw logits before sampling, given every token so far (the
  // watermark's green-list bias plugs in here; generate/ knows nothing of watermarks).
  LogitHook logit_hook;
};

// One sequence being decoded: its tokens so far, its KV cache, the logits for its next
// token and its own random stream. Several slots decode together (decode_round), which is
// how the server serves concurrent requests and --count N samples in one forward.
struct DecodeSlot {
  DecodeSlot(std::vector<int64_t> context, TokenSampling opt, Rng rng, std::function<bool(int64_t)> on_token);
  std::vector<int64_t> ctx;  // context and every token sampled so far
  std::vector<int64_t> out;  // the sampled tokens
  TokenSampling opt;
  Rng rng;
  std::function<bool(int64_t)> on_token;  // sees each new token; false stops the slot
  bool done = false;
  // Decoder state.
  KVCache cache;
  torch::Tensor logits;  // (vocab) for the next token
};

// Encodes the slot's context (cropped to the model's block by the caller): its cache and
// first logits. A slot with max_tokens 0 is done at once.
void prefill(GPT& gpt, torch::Device device, DecodeSlot& slot);
// One token for every live slot: samples from its logits, hands the token to on_token, and
// computes the next logits of the slots that go on, in one batched forward (a slot whose
// context is full slides its window and re-encodes alone).
void decode_round(GPT& gpt, torch::Device device, const std::vector<DecodeSlot*>& slots);

// prefill, then rounds until the slot is done (one sequence alone).
void decode(GPT& gpt, torch::Device device, DecodeSlot& slot);

// Samples after `context` (cropped to the model's block by the caller). `on_token` sees each
// new token and returns false to stop. Returns the new tokens. (One slot, prefill, rounds.)
std::vector<int64_t> sample_continuation(GPT& gpt, torch::Device device, std::vector<int64_t> context,
                                         const TokenSampling& opt, Rng& rng,
                                         const std::function<bool(int64_t)>& on_token);

// Next-token logits for a token sequence, by full recomputation (tests, eval).
torch::Tensor next_token_logits(GPT& gpt, const std::vector<int64_t>& tokens, torch::Device device);

}  // namespace imagine
