// See text_generate.h.
#include "generate/text_generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace imagine {

static std::vector<float> to_vector(const torch::Tensor& row) {
  auto r = row.to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

torch::Tensor next_token_logits(GPT& gpt, const std::vector<int64_t>& tokens, torch::Device device) {
  torch::NoGradGuard no_grad;
  const int64_t block = gpt->config.block_size;
  const size_t start = tokens.size() > static_cast<size_t>(block) ? tokens.size() - block : 0;
  std::vector<int64_t> window(tokens.begin() + start, tokens.end());
  auto idx = torch::tensor(window, torch::kLong).unsqueeze(0).to(device);
  return gpt->forward(idx).index({0, -1});  // (vocab)
}

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

  KVCache cache;
  torch::Tensor logits;  // (vocab) for the next token
  auto prefill = [&](const std::vector<int64_t>& window) {
    cache = gpt->new_cache();
    auto idx = torch::tensor(window, torch::kLong).unsqueeze(0).to(model.device);
    logits = gpt->forward(idx, &cache).index({0, -1});
  };
  if (req.kv_cache) prefill(ctx);

  std::string out;      // generated text so far
  size_t emitted = 0;   // bytes of `out` already passed to on_text
  res.stop_reason = "max_tokens";
  for (int64_t i = 0; i < req.max_tokens; i++) {
    if (!req.kv_cache) logits = next_token_logits(gpt, ctx, model.device);
    const int64_t tok = sample_token(to_vector(logits), ctx, req.sampling, rng);
    ctx.push_back(tok);
    res.tokens++;
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
      break;
    }
    const size_t safe = out.size() - held_back(out, req.stop);
    if (on_text && safe > emitted) on_text(out.substr(emitted, safe - emitted));
    emitted = std::max(emitted, safe);

    if (req.kv_cache && i + 1 < req.max_tokens) {
      if (cache[0].length() >= block) {
        // Context full: keep the newest half and re-encode it at positions 0..
        std::vector<int64_t> window(ctx.end() - block / 2 - 1, ctx.end());
        prefill(window);
      } else {
        auto idx = torch::full({1, 1}, tok, torch::TensorOptions().dtype(torch::kLong).device(model.device));
        logits = gpt->forward(idx, &cache).index({0, -1});
      }
    }
  }
  if (on_text && out.size() > emitted) on_text(out.substr(emitted));
  res.text = out;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace imagine
