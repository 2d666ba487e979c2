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

DecodeSlot::DecodeSlot(std::vector<int64_t> context, TokenSampling o, Rng r, std::function<bool(int64_t)> on)
    : ctx(std::move(context)), opt(std::move(o)), rng(r), on_token(std::move(on)) {}

static void encode_window(GPT& gpt, torch::Device device, DecodeSlot& s, const std::vector<int64_t>& window) {
  s.cache = gpt->new_cache();
  auto idx = torch::tensor(window, torch::kLong).unsqueeze(0).to(device);
  s.logits = gpt->forward(idx, &s.cache).index({0, -1});
}

void prefill(GPT& gpt, torch::Device device, DecodeSlot& s) {
  torch::NoGradGuard no_grad;
  s.done = s.opt.max_tokens <= 0;
  if (s.done) return;
  if (s.opt.kv_cache)
    encode_window(gpt, device, s, s.ctx);
  else
    s.logits = next_token_logits(gpt, s.ctx, device);
}

void decode_round(GPT& gpt, torch::Device device, const std::vector<DecodeSlot*>& slots) {
  torch::NoGradGuard no_grad;
  const int64_t block = gpt->config.block_size;
  std::vector<DecodeSlot*> step;  // slots whose next logits come from the batched forward
  std::vector<int64_t> tokens;
  std::vector<KVCache*> caches;
  for (DecodeSlot* s : slots) {
    if (s->done) continue;
    std::vector<float> row = to_vector(s->logits);
    if (s->opt.logit_hook) s->opt.logit_hook(row, s->ctx);
    for (int64_t b : s->opt.banned)
      if (b >= 0 && b < static_cast<int64_t>(row.size())) row[b] = -std::numeric_limits<float>::infinity();
    const int64_t tok = sample_token(std::move(row), s->ctx, s->opt.sampling, s->rng);
    s->ctx.push_back(tok);
    s->out.push_back(tok);
    if ((s->on_token && !s->on_token(tok)) || static_cast<int64_t>(s->out.size()) >= s->opt.max_tokens) {
      s->done = true;
      s->logits = torch::Tensor();
      continue;
    }
    if (!s->opt.kv_cache) {
      s->logits = next_token_logits(gpt, s->ctx, device);
    } else if (s->cache[0].length() >= block) {
      // Context full: keep the newest half and re-encode it at positions 0..
      encode_window(gpt, device, *s, std::vector<int64_t>(s->ctx.end() - block / 2 - 1, s->ctx.end()));
    } else {
      step.push_back(s);
      tokens.push_back(tok);
      caches.push_back(&s->cache);
    }
  }
  if (step.empty()) return;
  const torch::Tensor logits = gpt->forward_rows(tokens, caches);  // (B, vocab)
  for (size_t b = 0; b < step.size(); b++) step[b]->logits = logits[static_cast<int64_t>(b)];
}

void decode(GPT& gpt, torch::Device device, DecodeSlot& slot) {
  prefill(gpt, device, slot);
  while (!slot.done) decode_round(gpt, device, {&slot});
}

std::vector<int64_t> sample_continuation(GPT& gpt, torch::Device device, std::vector<int64_t> ctx,
                                         const TokenSampling& opt, Rng& rng,
                                         const std::function<bool(int64_t)>& on_token) {
  DecodeSlot slot(std::move(ctx), opt, rng, on_token);
  decode(gpt, device, slot);
  rng = slot.rng;
  return slot.out;
}

}  // namespace imagine
