// See token_generate.h.
#include "generate/token_generate.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace imagine {

static std::vector<float> to_vector(const torch::Tensor& row) {
  auto r = row.to(torch::kCPU, torch::kFloat).contiguous();
  return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
}

torch::Tensor next_token_logits(GPT& gpt, const std::vector<int64_t>& tokens, torch::Device device) {
  const int64_t block = gpt->config.block_size;
  return window_logits(gpt, tokens, tokens.size() > static_cast<size_t>(block) ? tokens.size() - block : 0,
                       device);
}

torch::Tensor window_logits(GPT& gpt, const std::vector<int64_t>& tokens, size_t start,
                            torch::Device device) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> window(tokens.begin() + static_cast<int64_t>(start), tokens.end());
  auto idx = torch::tensor(window, torch::kLong).unsqueeze(0).to(device);
  return gpt->forward(idx).index({0, -1});  // (vocab)
}

DecodeSlot::DecodeSlot(std::vector<int64_t> context, TokenSampling o, Rng r, std::function<bool(int64_t)> on)
    : ctx(std::move(context)), opt(std::move(o)), rng(r), on_token(std::move(on)) {}

BatchDecoder::BatchDecoder(GPT& gpt, torch::Device device, int64_t rows, torch::ScalarType weights)
    : gpt_(gpt), device_(device), cache_(gpt->new_batch_cache(rows, weights)) {}

void BatchDecoder::encode(DecodeSlot& s, const std::vector<int64_t>& window) {
  s.logits = to_vector(gpt_->prefill_row(window, s.row, cache_));
}

void BatchDecoder::add(DecodeSlot& s) {
  torch::NoGradGuard no_grad;
  s.done = s.opt.max_tokens <= 0;
  if (s.done) return;
  IMAGINE_CHECK(!full(), "wait for a slot to finish", "all ", cache_.rows(), " decoding rows are taken");
  s.row = static_cast<int64_t>(slots_.size());
  const size_t block = static_cast<size_t>(gpt_->config.block_size);
  s.start = s.ctx.size() > block ? s.ctx.size() - block : 0;
  if (s.opt.kv_cache)
    encode(s, std::vector<int64_t>(s.ctx.begin() + static_cast<int64_t>(s.start), s.ctx.end()));
  else
    s.logits = to_vector(window_logits(gpt_, s.ctx, s.start, device_));
  slots_.push_back(&s);
}

void BatchDecoder::release(size_t row) {
  const size_t last = slots_.size() - 1;
  slots_[row]->row = -1;
  if (row != last) {
    cache_.move(static_cast<int64_t>(last), static_cast<int64_t>(row));
    slots_[row] = slots_[last];
    slots_[row]->row = static_cast<int64_t>(row);
  }
  cache_.length[last] = 0;
  slots_.pop_back();
}

void BatchDecoder::remove(DecodeSlot& s) {
  if (s.row >= 0 && static_cast<size_t>(s.row) < slots_.size() && slots_[static_cast<size_t>(s.row)] == &s)
    release(static_cast<size_t>(s.row));
}

void BatchDecoder::clear() {
  for (DecodeSlot* s : slots_) s->row = -1;
  slots_.clear();
  std::fill(cache_.length.begin(), cache_.length.end(), 0);
}

void BatchDecoder::round() {
  torch::NoGradGuard no_grad;
  const int64_t block = gpt_->config.block_size;
  const bool ring = gpt_->config.rotary();
  const size_t reach = static_cast<size_t>(gpt_->config.n_layer * (block - 1) + 1);
  std::vector<DecodeSlot*> step;  // slots whose next logits come from the batched forward
  std::vector<int64_t> tokens, rows;
  for (DecodeSlot* s : slots_) {
    std::vector<float> row = std::move(s->logits);
    if (s->opt.logit_hook) s->opt.logit_hook(row, s->ctx);
    for (int64_t b : s->opt.banned)
      if (b >= 0 && b < static_cast<int64_t>(row.size())) row[b] = -std::numeric_limits<float>::infinity();
    const int64_t tok = sample_token(std::move(row), s->ctx, s->opt.sampling, s->rng);
    s->ctx.push_back(tok);
    s->out.push_back(tok);
    s->logits.clear();
    // Learned positions: when the window before this token is full it slides to the newest
    // half, re-encoded at positions 0.. (both paths at the same steps). RoPE: nothing is
    // re-encoded; the ring cache keeps every layer's last block_size keys, so the logits
    // depend on at most the last n_layer * (block_size - 1) + 1 tokens (none before where
    // the slot began), which the uncached path reads with sliding-window attention.
    bool full = false;
    if (ring) {
      if (s->ctx.size() > reach) s->start = std::max(s->start, s->ctx.size() - reach);
    } else {
      full = static_cast<int64_t>(s->ctx.size() - 1 - s->start) >= block;
      if (full) s->start = s->ctx.size() - static_cast<size_t>(block / 2 + 1);
    }
    if ((s->on_token && !s->on_token(tok)) || static_cast<int64_t>(s->out.size()) >= s->opt.max_tokens) {
      s->done = true;
    } else if (!s->opt.kv_cache) {
      s->logits = to_vector(window_logits(gpt_, s->ctx, s->start, device_));
    } else if (full) {
      // Context full: keep the newest half and re-encode it at positions 0..
      encode(*s, std::vector<int64_t>(s->ctx.begin() + static_cast<int64_t>(s->start), s->ctx.end()));
    } else {
      step.push_back(s);
      tokens.push_back(tok);
      rows.push_back(s->row);
    }
  }
  if (!step.empty()) {
    auto logits =
        gpt_->forward_step(tokens, rows, cache_).to(torch::kCPU, torch::kFloat).contiguous();  // (B, vocab)
    const int64_t V = logits.size(1);
    const float* p = logits.data_ptr<float>();
    for (size_t b = 0; b < step.size(); b++) {
      const float* first = p + static_cast<int64_t>(b) * V;
      step[b]->logits.assign(first, first + V);
    }
  }
  for (size_t r = slots_.size(); r-- > 0;)
    if (slots_[r]->done) release(r);
}

void decode(GPT& gpt, torch::Device device, DecodeSlot& slot) {
  BatchDecoder decoder(gpt, device, 1);
  decoder.add(slot);
  while (!slot.done) decoder.round();
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
