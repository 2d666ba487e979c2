// See token_generate.h.
#include "generate/token_generate.h"

#include <limits>

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

std::vector<int64_t> sample_continuation(GPT& gpt, torch::Device device, std::vector<int64_t> ctx,
                                         const TokenSampling& opt, Rng& rng,
                                         const std::function<bool(int64_t)>& on_token) {
  torch::NoGradGuard no_grad;
  const int64_t block = gpt->config.block_size;
  std::vector<int64_t> out;
  KVCache cache;
  torch::Tensor logits;  // (vocab) for the next token
  auto prefill = [&](const std::vector<int64_t>& window) {
    cache = gpt->new_cache();
    auto idx = torch::tensor(window, torch::kLong).unsqueeze(0).to(device);
    logits = gpt->forward(idx, &cache).index({0, -1});
  };
  if (opt.kv_cache) prefill(ctx);
  for (int64_t i = 0; i < opt.max_tokens; i++) {
    if (!opt.kv_cache) logits = next_token_logits(gpt, ctx, device);
    std::vector<float> row = to_vector(logits);
    if (opt.logit_hook) opt.logit_hook(row, ctx);
    for (int64_t b : opt.banned)
      if (b >= 0 && b < static_cast<int64_t>(row.size())) row[b] = -std::numeric_limits<float>::infinity();
    const int64_t tok = sample_token(std::move(row), ctx, opt.sampling, rng);
    ctx.push_back(tok);
    out.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (opt.kv_cache && i + 1 < opt.max_tokens) {
      if (cache[0].length() >= block) {
        // Context full: keep the newest half and re-encode it at positions 0..
        std::vector<int64_t> window(ctx.end() - block / 2 - 1, ctx.end());
        prefill(window);
      } else {
        auto idx = torch::full({1, 1}, tok, torch::TensorOptions().dtype(torch::kLong).device(device));
        logits = gpt->forward(idx, &cache).index({0, -1});
      }
    }
  }
  return out;
}

}  // namespace imagine
