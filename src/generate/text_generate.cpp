// See text_generate.h.
#include "generate/text_generate.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "core/error.h"
#include "core/utf8.h"

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

TextStream::TextStream(TextModel& model, const TextRequest& req,
                       std::function<void(const std::string&)> on_text)
    : model_(model), req_(req), on_text_(std::move(on_text)), t0_(std::chrono::steady_clock::now()) {
  IMAGINE_CHECK(req.max_tokens >= 0, "pass --max-tokens 1 or more", "max_tokens must not be negative");
  for (auto& s : req.stop) IMAGINE_CHECK(!s.empty(), "remove the empty --stop", "a stop string is empty");
  const int64_t block = model.gpt->config.block_size;
  std::vector<int64_t> ctx = model.tokenizer->encode(req.prompt.empty() ? model.start_text : req.prompt);
  if (static_cast<int64_t>(ctx.size()) > block) {
    ctx.erase(ctx.begin(), ctx.end() - block);
    res_.prompt_cropped = true;
  }
  res_.prompt_tokens = static_cast<int64_t>(ctx.size());
  res_.context_tokens = std::move(ctx);
  res_.stop_reason = "max_tokens";
}

DecodeSlot TextStream::slot() {
  TokenSampling opt;
  opt.max_tokens = req_.max_tokens;
  opt.sampling = req_.sampling;
  opt.kv_cache = req_.kv_cache;
  opt.logit_hook = req_.logit_hook;
  return DecodeSlot(res_.context_tokens, opt, Rng(req_.seed), [this](int64_t tok) { return on_token(tok); });
}

bool TextStream::on_token(int64_t tok) {
  out_ += model_.tokenizer->token_bytes(tok);
  size_t stop_at = std::string::npos;
  for (auto& s : req_.stop) {
    // Only the new bytes (plus an overlap) can complete a stop string.
    const size_t from = emitted_ > s.size() ? emitted_ - s.size() : 0;
    const size_t pos = out_.find(s, from);
    if (pos != std::string::npos) stop_at = std::min(stop_at, pos);
  }
  if (stop_at != std::string::npos) {
    out_.resize(stop_at);
    res_.stop_reason = "stop";
    return false;
  }
  size_t safe = out_.size() - held_back(out_, req_.stop);
  safe -= utf8_unfinished_tail(std::string_view(out_).substr(0, safe));
  if (on_text_ && safe > emitted_) on_text_(out_.substr(emitted_, safe - emitted_));
  emitted_ = std::max(emitted_, safe);
  return true;
}

TextResult TextStream::finish(const DecodeSlot& slot, const std::string& reason) {
  if (!reason.empty()) res_.stop_reason = reason;
  res_.tokens = static_cast<int64_t>(slot.out.size());
  res_.new_tokens = slot.out;
  if (on_text_ && out_.size() > emitted_) on_text_(out_.substr(emitted_));
  emitted_ = out_.size();
  res_.text = out_;
  res_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  return res_;
}

TextResult generate_text(TextModel& model, const TextRequest& req,
                         const std::function<void(const std::string&)>& on_text,
                         const std::function<bool()>& stop) {
  std::function<void(int64_t, const std::string&)> piece;
  if (on_text) piece = [&on_text](int64_t, const std::string& p) { on_text(p); };
  return generate_texts(model, req, 1, piece, stop)[0];
}

std::vector<TextResult> generate_texts(TextModel& model, const TextRequest& req, int64_t count,
                                       const std::function<void(int64_t, const std::string&)>& on_text,
                                       const std::function<bool()>& stop) {
  IMAGINE_CHECK(count >= 1 && count <= 4096, "pass --count between 1 and 4096", "count ", count,
                " out of range");
  std::vector<TextRequest> reqs(static_cast<size_t>(count), req);
  std::vector<std::unique_ptr<TextStream>> streams;
  std::vector<std::unique_ptr<DecodeSlot>> slots;
  BatchDecoder decoder(model.gpt, model.device, count, req.bf16_weights ? torch::kBFloat16 : torch::kFloat);
  for (int64_t i = 0; i < count; i++) {
    reqs[static_cast<size_t>(i)].seed = req.seed + static_cast<uint64_t>(i);
    std::function<void(const std::string&)> piece;
    if (on_text) piece = [&on_text, i](const std::string& p) { on_text(i, p); };
    streams.push_back(std::make_unique<TextStream>(model, reqs[static_cast<size_t>(i)], piece));
    slots.push_back(std::make_unique<DecodeSlot>(streams.back()->slot()));
    decoder.add(*slots.back());
  }
  bool stopped = false;
  while (decoder.live() > 0) {
    if (stop && stop()) {
      stopped = true;
      break;
    }
    decoder.round();
  }
  std::vector<TextResult> out;
  for (int64_t i = 0; i < count; i++) {
    const DecodeSlot& s = *slots[static_cast<size_t>(i)];
    out.push_back(streams[static_cast<size_t>(i)]->finish(s, stopped && !s.done ? "interrupted" : ""));
  }
  return out;
}

}  // namespace imagine
