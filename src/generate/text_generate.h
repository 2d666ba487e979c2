// Text generation: prompt -> streamed continuation, with stop strings, on the shared token
// sampling loop (generate/token_generate.h: KV cache, sliding window).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate/sampler.h"
#include "generate/token_generate.h"
#include "models/text_model.h"

namespace imagine {

struct TextRequest {
  std::string prompt;               // may be empty: generation then starts from model.start_text
  int64_t max_tokens = 256;         // new tokens at most
  std::vector<std::string> stop;    // stop before the first occurrence of any of these
  SamplingParams sampling;
  uint64_t seed = 0;
  bool kv_cache = true;             // false: recompute the whole window for every token
  LogitHook logit_hook;             // e.g. the watermark's bias (see TokenSampling)
};

struct TextResult {
  std::string text;                 // generated text (prompt excluded, stop string excluded)
  int64_t tokens = 0;               // new tokens sampled
  int64_t prompt_tokens = 0;        // after cropping
  bool prompt_cropped = false;
  std::string stop_reason;          // "max_tokens" or "stop"
  double seconds = 0;               // generation time, prompt processing included
  std::vector<int64_t> context_tokens;  // the (cropped) prompt's tokens
  std::vector<int64_t> new_tokens;      // sampled tokens (those of a stop string included)
};

// `on_text` receives the output as it becomes final (held back only while it could be the
// start of a stop string).
TextResult generate_text(TextModel& model, const TextRequest& req,
                         const std::function<void(const std::string&)>& on_text = nullptr);

}  // namespace imagine
