// Text generation: prompt -> streamed continuation, with stop strings, on the shared token
// sampling loop (generate/token_generate.h: KV cache, sliding window).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate/sampler.h"
#include "generate/token_generate.h"
#include "models/text_model.h"

namespace imagine {

struct TextRequest {
  std::string prompt;             // may be empty: generation then starts from model.start_text
  int64_t max_tokens = 256;       // new tokens at most
  std::vector<std::string> stop;  // stop before the first occurrence of any of these
  SamplingParams sampling;
  uint64_t seed = 0;
  bool kv_cache = true;  // false: recompute the whole window for every token
  // The cached decoding step multiplies by bfloat16 copies of the weights (faster where the
  // CPU has bf16 matmuls and the model is wide; the text differs from float32's).
  bool bf16_weights = false;
  LogitHook logit_hook;  // e.g. the watermark's bias (see TokenSampling)
};

struct TextResult {
  std::string text;           // generated text (prompt excluded, stop string excluded)
  int64_t tokens = 0;         // new tokens sampled
  int64_t prompt_tokens = 0;  // after cropping
  bool prompt_cropped = false;
  std::string stop_reason;              // "max_tokens" or "stop"
  double seconds = 0;                   // generation time, prompt processing included
  std::vector<int64_t> context_tokens;  // the (cropped) prompt's tokens
  std::vector<int64_t> new_tokens;      // sampled tokens (those of a stop string included)
};

// The text side of one generation: crops the prompt to the model's context, turns sampled
// tokens into text, stops at stop strings, and passes on what is final. Text is held back
// while it could be the start of a stop string or ends inside a UTF-8 character, so a
// stream never splits one. generate_text runs one stream; the server decodes many side by
// side (their slots in one BatchDecoder).
class TextStream {
 public:
  TextStream(TextModel& model, const TextRequest& req,
             std::function<void(const std::string&)> on_text = nullptr);
  TextStream(const TextStream&) = delete;
  TextStream& operator=(const TextStream&) = delete;

  // The decoding slot for this stream (its on_token feeds this object, which must outlive it).
  DecodeSlot slot();
  // After the slot is done (or abandoned: `reason` then replaces the stop reason, e.g.
  // "cancelled"): flushes held-back text and returns the result.
  TextResult finish(const DecodeSlot& slot, const std::string& reason = "");

 private:
  bool on_token(int64_t tok);
  TextModel& model_;
  const TextRequest& req_;
  std::function<void(const std::string&)> on_text_;
  TextResult res_;
  std::string out_;     // generated text so far
  size_t emitted_ = 0;  // bytes of out_ already passed to on_text
  std::chrono::steady_clock::time_point t0_;
};

// `on_text` receives the output as it becomes final (see TextStream).
// `stop()` (optional) is asked before every token: true ends the sample there (stop reason
// "interrupted").
TextResult generate_text(TextModel& model, const TextRequest& req,
                         const std::function<void(const std::string&)>& on_text = nullptr,
                         const std::function<bool()>& stop = nullptr);

// `count` samples of one request decoded together in one BatchDecoder (sample i: seed
// req.seed + i, each its own random stream), so they cost little more than one. Each gives
// what generate_text gives for its seed, up to float rounding of the batched products (a
// near tie can sample another token). on_text(i, piece) receives sample i's text as it
// becomes final, the samples interleaved; `stop()` (optional) is asked after every round
// and ends the samples not yet done (stop reason "interrupted").
std::vector<TextResult> generate_texts(
    TextModel& model, const TextRequest& req, int64_t count,
    const std::function<void(int64_t, const std::string&)>& on_text = nullptr,
    const std::function<bool()>& stop = nullptr);

}  // namespace imagine
