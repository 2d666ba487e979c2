// See sweet.h.
#include "provenance/sweet.h"

#include <algorithm>

namespace imagine {

std::vector<double> next_token_entropies(TextModel& model, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  model.gpt->eval();
  std::vector<int64_t> full = model.tokenizer->encode(model.start_text);
  const int64_t lead = static_cast<int64_t>(full.size());
  full.insert(full.end(), tokens.begin(), tokens.end());
  const int64_t n = static_cast<int64_t>(full.size()), block = model.gpt->config.block_size;
  const int64_t half = std::max<int64_t>(1, block / 2);
  std::vector<double> out(tokens.size(), 0.0);
  // Window [s, s + len) predicts positions s+1 .. s+len. Each position takes the first
  // window that predicts it, which gives it the most context: at least block - half
  // tokens once past the first block.
  int64_t next = std::max<int64_t>(lead, 1);  // first position still without a value
  for (int64_t s = 0; next < n; s += half) {
    const int64_t len = std::min(block, n - s);
    if (s + len < next) continue;  // this window predicts nothing new
    auto x = torch::tensor(std::vector<int64_t>(full.begin() + s, full.begin() + s + len), torch::kLong);
    auto logits = model.gpt->forward(x.unsqueeze(0).to(model.device))[0].to(torch::kCPU, torch::kFloat);
    auto logp = torch::log_softmax(logits, -1);
    auto h = -(logp.exp() * logp).sum(-1);  // row k: entropy before position s + k + 1
    auto acc = h.accessor<float, 1>();
    for (; next < n && next <= s + len; next++) out[static_cast<size_t>(next - lead)] = acc[next - 1 - s];
  }
  // The very first token when there is no start text: predicted from nothing; leave 0.
  return out;
}

std::vector<bool> entropy_mask(const std::vector<double>& entropies, double threshold) {
  std::vector<bool> m(entropies.size());
  for (size_t i = 0; i < entropies.size(); i++) m[i] = entropies[i] >= threshold;
  return m;
}

}  // namespace imagine
