// See text_generate.h.
#include "generate/text_generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace imagine {

// Length of the longest suffix of `text` that is a proper prefix of some stop string.
static size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (auto& s : stops) {
    for (size_t len = std::min(s.size() - 1, text.size()); len > hold; len--) {
      if (text.compare(text.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  return hold;
}

TextResult generate_text(TextModel& model, const TextRequest& req,
                         const std::function<void(const std::string&)>& on_text) {
  torch::NoGradGuard no_grad;
  IMAGINE_CHECK(req.max_tokens >= 0, "pass --max-tokens 1 or more", "max_tokens must not be negative");
  for (auto& s : req.stop) IMAGINE_CHECK(!s.empty(), "remove the empty --stop", "a stop string is empty");
  const auto t0 = std::chrono::steady_clock::now();
  TextResult res;
  GPT& gpt = model.gpt;
  const int64_t block = gpt->config.block_size;
  std::vector<int64_t> ctx = model.tokenizer->encode(req.prompt.empty() ? model.start_text : req.prompt);
  if (static_cast<int64_t>(ctx.size()) > block) {
    ctx.erase(ctx.begin(), ctx.end() - block);
    res.prompt_cropped = true;
  }
  res.prompt_tokens = static_cast<int64_t>(ctx.size());
  Rng rng(req.seed);

  std::string out;      // generated text so far
  size_t emitted = 0;   // bytes of `out` already passed to on_text
  res.stop_reason = "max_tokens";
  TokenSampling opt;
  opt.max_tokens = req.max_tokens;
  opt.sampling = req.sampling;
  opt.kv_cache = req.kv_cache;
  opt.logit_hook = req.logit_hook;
  res.context_tokens = ctx;
  const auto tokens = sample_continuation(model.gpt, model.device, ctx, opt, rng, [&](int64_t tok) {
    out += model.tokenizer->token_bytes(tok);
    size_t stop_at = std::string::npos;
    for (auto& s : req.stop) {
      // Only the new bytes (plus an overlap) can complete a stop string.
      const size_t from = emitted > s.size() ? emitted - s.size() : 0;
      const size_t pos = out.find(s, from);
      if (pos != std::string::npos) stop_at = std::min(stop_at, pos);
    }
    if (stop_at != std::string::npos) {
      out.resize(stop_at);
      res.stop_reason = "stop";
      return false;
    }
    const size_t safe = out.size() - held_back(out, req.stop);
    if (on_text && safe > emitted) on_text(out.substr(emitted, safe - emitted));
    emitted = std::max(emitted, safe);
    return true;
  });
  res.tokens = static_cast<int64_t>(tokens.size());
  res.new_tokens = tokens;
  if (on_text && out.size() > emitted) on_text(out.substr(emitted));
  res.text = out;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace imagine
