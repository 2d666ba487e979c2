// The Trainer plug-in of every GPT family (text, music): next-token loss on random windows
// of a training token stream, validation loss on fixed windows of a held-out stream.
#pragma once
#include <functional>
#include <map>
#include <string>

#include "data/token_dataset.h"
#include "models/gpt.h"
#include "train/trainer.h"

namespace imagine {

// The GPT's architecture options beyond its size (--pos, --norm, --qk-norm, --mlp,
// --untied-head, --zero-init, --logit-softcap, --rope-base): added to a family's table, read
// into a config, and never changed on --resume (kGptOptionKeys joins the arch keys).
void add_gpt_options(OptionTable& t);
// GPT-2's and nanoGPT's choices (learned positions, LayerNorm, GELU, no caps, AdamW, cosine):
// what the comparison presets (shakespeare-cpu, chorales-classic, ...) pin, since the
// defaults are the modern recipe. classic(p) is preset p with those keys added (p's win).
const std::map<std::string, std::string>& classic_gpt_recipe();
std::map<std::string, std::string> classic(std::map<std::string, std::string> preset);
void read_gpt_options(const Options& o, GPTConfig& arch);
extern const std::vector<std::string> kGptOptionKeys;
// `keys` and kGptOptionKeys: a GPT family's architecture keys for start_run.
std::vector<std::string> with_gpt_keys(std::vector<std::string> keys);

class TokenStreamTask : public TrainTask {
 public:
  // extra_metrics(val_loss) adds family-specific numbers (bits per byte, ...); sample()
  // returns a line shown at each evaluation ("" = none). Either may be empty.
  TokenStreamTask(GPT& gpt, TokenDataset train, TokenDataset val, int64_t batch, uint64_t seed,
                  nlohmann::json config, std::function<std::map<std::string, double>(double)> extra_metrics,
                  std::function<std::string()> sample, std::string unit = "tok");

  torch::nn::Module& model() override { return *gpt_; }
  int64_t units_per_micro_batch() const override { return train_batch_ * gpt_->config.block_size; }
  // Data-parallel ranks train on their share of the batch; evaluation keeps the whole one,
  // so every rank (and a single process) reports the same numbers.
  void set_train_batch(int64_t per_rank) { train_batch_ = per_rank; }
  std::string unit() const override { return unit_; }
  nlohmann::json model_config() const override { return config_; }
  torch::Tensor micro_batch_loss(Rng& rng, size_t) override;
  bool supports_staging() const override { return true; }
  void stage_micro_batch(Rng& rng, size_t, int64_t slot) override;
  torch::Tensor staged_loss(size_t, int64_t slot) override;
  std::map<std::string, double> evaluate(int64_t iters) override;
  std::string eval_sample() override { return sample_ ? sample_() : ""; }

 private:
  GPT& gpt_;
  TokenDataset train_, val_;
  int64_t batch_;
  int64_t train_batch_;
  uint64_t seed_;
  nlohmann::json config_;
  std::function<std::map<std::string, double>(double)> extra_;
  std::function<std::string()> sample_;
  std::string unit_;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> staged_;  // (x, y) per micro-batch slot
};

}  // namespace imagine
