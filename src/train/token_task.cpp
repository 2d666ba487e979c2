// See token_task.h.
#include "train/token_task.h"

#include "core/error.h"

namespace imagine {

const std::vector<std::string> kGptOptionKeys = {"pos", "rope-base",   "norm",      "qk-norm",
                                                 "mlp", "untied-head", "zero-init", "logit-softcap"};

std::vector<std::string> with_gpt_keys(std::vector<std::string> keys) {
  keys.insert(keys.end(), kGptOptionKeys.begin(), kGptOptionKeys.end());
  return keys;
}

void add_gpt_options(OptionTable& t) {
  // The defaults are the measured recipe (docs/benchmarks.md, "Time to quality"); a model
  // directory written without these keys loads with GPT-2's choices (GPTConfig::from_json).
  t.choice("pos", "rope", {"learned", "rope"}, "positions: learned embeddings, or rotary (RoPE)")
      .real("rope-base", 10000, 2, 1e9, "RoPE frequency base")
      .choice("norm", "rmsnorm", {"layernorm", "rmsnorm"}, "normalisation layers")
      .flag("qk-norm", true, "RMS-normalise queries and keys per head")
      .choice("mlp", "relu2", {"gelu", "relu2"}, "MLP activation: GELU or relu(x)^2")
      .flag("untied-head", false, "an output head of its own instead of the token embedding")
      .flag("zero-init", false, "output projections (and an untied head) start at zero")
      .real("logit-softcap", 15, 0, 1e4, "soft-cap logits at c * tanh(x / c) (0 = off)");
}

const std::map<std::string, std::string>& classic_gpt_recipe() {
  static const std::map<std::string, std::string> m = {
      {"pos", "learned"}, {"norm", "layernorm"},    {"qk-norm", "false"},      {"mlp", "gelu"},
      {"untied-head", "false"}, {"zero-init", "false"}, {"logit-softcap", "0"}, {"optimizer", "adamw"},
      {"schedule", "cosine"}};
  return m;
}

std::map<std::string, std::string> classic(std::map<std::string, std::string> preset) {
  for (const auto& [k, v] : classic_gpt_recipe()) preset.emplace(k, v);
  return preset;
}

void read_gpt_options(const Options& o, GPTConfig& arch) {
  arch.pos = o.s("pos");
  arch.rope_base = o.f("rope-base");
  arch.norm = o.s("norm");
  arch.qk_norm = o.b("qk-norm");
  arch.mlp = o.s("mlp");
  arch.tied_head = !o.b("untied-head");
  arch.zero_init = o.b("zero-init");
  arch.logit_softcap = o.f("logit-softcap");
}

TokenStreamTask::TokenStreamTask(GPT& gpt, TokenDataset train, TokenDataset val, int64_t batch, uint64_t seed,
                                 nlohmann::json config,
                                 std::function<std::map<std::string, double>(double)> extra,
                                 std::function<std::string()> sample, std::string unit)
    : gpt_(gpt),
      train_(std::move(train)),
      val_(std::move(val)),
      batch_(batch),
      train_batch_(batch),
      seed_(seed),
      config_(std::move(config)),
      extra_(std::move(extra)),
      sample_(std::move(sample)),
      unit_(std::move(unit)) {}

torch::Tensor TokenStreamTask::micro_batch_loss(Rng& rng, size_t) {
  auto [x, y] = train_.batch(rng, train_batch_, gpt_->config.block_size);
  return gpt_->loss(x, y);
}

void TokenStreamTask::stage_micro_batch(Rng& rng, size_t, int64_t slot) {
  auto [x, y] = train_.batch(rng, train_batch_, gpt_->config.block_size);
  if (slot >= static_cast<int64_t>(staged_.size())) {
    staged_.resize(static_cast<size_t>(slot) + 1);
    staged_[slot] = {x.clone(), y.clone()};
  } else {
    staged_[slot].first.copy_(x, /*non_blocking=*/true);
    staged_[slot].second.copy_(y, true);
  }
}

torch::Tensor TokenStreamTask::staged_loss(size_t, int64_t slot) {
  IMAGINE_CHECK(slot < static_cast<int64_t>(staged_.size()), "", "micro-batch ", slot, " was not staged");
  return gpt_->loss(staged_[slot].first, staged_[slot].second);
}

std::map<std::string, double> TokenStreamTask::evaluate(int64_t iters) {
  torch::NoGradGuard no_grad;
  // Fixed batches: every evaluation of a run sees the same data, and the training RNG
  // is untouched, so evaluating never changes the training trajectory.
  auto mean_loss = [&](const TokenDataset& d, uint64_t salt) {
    Rng rng(seed_ ^ salt);
    double sum = 0;
    for (int64_t i = 0; i < iters; i++) {
      auto [x, y] = d.batch(rng, batch_, std::min<int64_t>(gpt_->config.block_size, d.size() - 1));
      sum += gpt_->loss(x, y).item<double>();
    }
    return sum / iters;
  };
  const double val = mean_loss(val_, 0xE7A1);
  std::map<std::string, double> out = {{"val_loss", val}, {"train_loss", mean_loss(train_, 0x7A1E)}};
  if (extra_)
    for (auto& [k, v] : extra_(val)) out[k] = v;
  return out;
}

}  // namespace imagine
