// The one training loop. A family (text GPT today; VAE, GAN, music later) plugs in a
// TrainTask: how to compute the loss of one micro-batch and how to evaluate. The loop owns
// everything else: AdamW, warm-up + cosine schedule, gradient accumulation and clipping,
// evaluation cadence, best/latest checkpoints, exact resume, Ctrl-C, progress, metrics.jsonl.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/runtime.h"
#include "train/optim.h"

namespace imagine {

struct TrainRecipe {
  int64_t steps = 2000;        // optimizer steps in total
  int64_t batch_size = 12;     // sequences (or images) per micro-batch
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  double lr = 1e-3;            // peak learning rate
  double min_lr = 1e-4;        // learning rate at the end of the cosine decay
  int64_t warmup_steps = 100;  // linear warm-up
  int64_t decay_steps = 0;     // cosine decay ends here; 0 = at `steps`
  AdamWConfig adamw;           // betas, eps, weight decay
  double grad_clip = 1.0;      // max global gradient norm; 0 = off
  int64_t eval_every = 250;    // evaluate (and checkpoint) every N steps; 0 = only at the end
  int64_t eval_iters = 20;     // micro-batches per evaluation
  int64_t log_every = 10;      // metrics.jsonl / plain progress line cadence
  double stop_at_loss = 0;     // stop once validation loss <= this; 0 = off
  std::string precision = "fp32";  // "fp32" or "bf16" (autocast: bf16 matmuls, fp32 weights)

  nlohmann::json to_json() const;
  static TrainRecipe from_json(const nlohmann::json& j);
  int64_t decay_end() const { return decay_steps > 0 ? decay_steps : steps; }
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual torch::nn::Module& model() = 0;
  // Forward pass on one micro-batch drawn with `rng`; returns the mean loss (the trainer
  // calls backward on it).
  virtual torch::Tensor micro_batch_loss(Rng& rng) = 0;
  virtual int64_t units_per_micro_batch() const = 0;  // tokens (or images): for throughput
  virtual std::string unit() const { return "tok"; }
  // Validation metrics over `iters` micro-batches; must contain "val_loss". Deterministic.
  virtual std::map<std::string, double> evaluate(int64_t iters) = 0;
  // config.json content except the "training" record, which the trainer adds.
  virtual nlohmann::json model_config() const = 0;
  // Optional line for the log at each evaluation (e.g. a short generated sample).
  virtual std::string eval_sample() { return ""; }
};

struct TrainOutcome {
  int64_t step = 0;              // steps completed
  double best_val_loss = 0;
  int64_t best_step = 0;
  double last_val_loss = 0;
  double seconds = 0;            // wall time of this run (this process)
  double units_per_second = 0;   // training throughput, evaluation excluded
  bool interrupted = false;      // stopped by Ctrl-C / SIGTERM
  bool reached_target = false;   // stopped by stop_at_loss
};

class Trainer {
 public:
  // `run_info` is stored in config.json's training record (seed, device, threads, ...).
  Trainer(TrainTask& task, TrainRecipe recipe, std::string out_dir, uint64_t seed, nlohmann::json run_info,
          bool quiet);
  // Continues from out_dir/checkpoint-latest: weights, optimizer moments, step, RNG states.
  void resume();
  TrainOutcome run();
  // Called after every optimizer step (tests use it to simulate an interrupt).
  std::function<void(int64_t step, double loss)> on_step;

 private:
  void save_latest(int64_t step, double elapsed);
  void save_best(int64_t step, double val_loss);
  nlohmann::json training_record(int64_t step) const;
  void append_metrics(const nlohmann::json& j);

  TrainTask& task_;
  TrainRecipe recipe_;
  std::string out_;
  uint64_t seed_;
  nlohmann::json run_info_;
  bool quiet_;
  AdamW opt_;
  Rng data_rng_;
  int64_t start_step_ = 0;
  double best_val_ = std::numeric_limits<double>::infinity();
  int64_t best_step_ = 0;
  double prior_seconds_ = 0;  // training time before a resume
};

}  // namespace imagine
