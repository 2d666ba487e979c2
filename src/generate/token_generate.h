// Sampling a continuation of a token sequence from a GPT, with a preallocated KV cache.
// Every family that generates tokens (text, music) runs this one loop. When the context
// fills up, the window slides. RoPE models: by one token, nothing re-encoded: each layer's
// cache is a ring that overwrites its oldest entry (sliding-window attention, every layer
// seeing its last block_size positions). Learned positions cannot extend past block_size:
// the newest half is kept and re-encoded. The uncached path (kv_cache false) computes the
// same windows afresh (RoPE: a sliding-window forward over the tokens the logits depend on),
// so both compute the same logits and, sampling alike, write the same text.
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
  bool kv_cache = true;  // false: recompute the whole window for every token (same window)
  // Tokens never sampled (e.g. a begin-of-sequence marker in the middle of a piece).
  std::vector<int64_t> banned;
  // Applied to each step's raw logits before sampling, given every token so far (the
  // watermark's green-list bias plugs in here; generate/ knows nothing of watermarks).
  LogitHook logit_hook;
};

// One sequence being decoded: its tokens so far, the logits for its next token and its own
// random stream. Several slots decode together in a BatchDecoder, which is how the server
// serves concurrent requests.
struct DecodeSlot {
  DecodeSlot(std::vector<int64_t> context, TokenSampling opt, Rng rng, std::function<bool(int64_t)> on_token);
  std::vector<int64_t> ctx;  // context and every token sampled so far
  std::vector<int64_t> out;  // the sampled tokens
  TokenSampling opt;
  Rng rng;
  std::function<bool(int64_t)> on_token;  // sees each new token; false stops the slot
  bool done = false;
  // Decoder state.
  std::vector<float> logits;  // for the next token
  int64_t row = -1;           // its row of the decoder's cache while live
  size_t start = 0;           // ctx[start:]: the tokens the next logits depend on
};

// Decodes up to `rows` slots together over one preallocated BatchCache (llama.cpp's
// "slots"): every round samples one token for each live slot and computes all their next
// logits in one batched forward, so B sequences cost little more than one. A slot decoded
// alone gives exactly the tokens it gives beside others (each has its own random stream and
// attends over its own row only).
class BatchDecoder {
 public:
  BatchDecoder(GPT& gpt, torch::Device device, int64_t rows, torch::ScalarType weights = torch::kFloat);
  BatchDecoder(const BatchDecoder&) = delete;
  BatchDecoder& operator=(const BatchDecoder&) = delete;

  // Encodes the slot's context (its last block_size tokens) into a free row:
  // its first logits. A slot with max_tokens 0 is done at once and takes no row. Throws
  // imagine::Error when every row is taken.
  void add(DecodeSlot& slot);
  // Takes a live slot out before it is done (a cancelled request). A no-op for a slot that
  // is not live.
  void remove(DecodeSlot& slot);
  // One token for every live slot: samples from its logits, hands the token to on_token,
  // and computes the next logits of the slots that go on in one batched forward (a slot
  // whose context is full slides its window: see the top of this file).
  // Slots that finish leave the decoder.
  void round();
  // Forgets every slot (after a failed round, whose cache rows are unreliable).
  void clear();

  size_t live() const { return slots_.size(); }
  bool full() const { return static_cast<int64_t>(slots_.size()) >= cache_.rows(); }

 private:
  void encode(DecodeSlot& slot, const std::vector<int64_t>& window);
  void release(size_t row);  // the slot in `row` leaves; the last live slot moves into its row

  GPT& gpt_;
  torch::Device device_;
  BatchCache cache_;
  std::vector<DecodeSlot*> slots_;  // slots_[r] holds row r
};

// Decodes one slot alone to the end (a decoder of one row).
void decode(GPT& gpt, torch::Device device, DecodeSlot& slot);

// Samples after `context` (cropped to the model's block by the caller). `on_token` sees each
// new token and returns false to stop. Returns the new tokens (one slot, decoded alone).
std::vector<int64_t> sample_continuation(GPT& gpt, torch::Device device, std::vector<int64_t> context,
                                         const TokenSampling& opt, Rng& rng,
                                         const std::function<bool(int64_t)>& on_token);

// Next-token logits for a token sequence, by full recomputation over its last block_size
// tokens (tests, eval).
torch::Tensor next_token_logits(GPT& gpt, const std::vector<int64_t>& tokens, torch::Device device);
// The same over tokens[start:] (at most block_size tokens; any number for a RoPE model, read
// with sliding-window attention): the uncached decoder.
torch::Tensor window_logits(GPT& gpt, const std::vector<int64_t>& tokens, size_t start, torch::Device device);

}  // namespace imagine
