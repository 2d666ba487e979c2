// The one training loop. A family (text GPT, VAE, GAN, music) plugs in a TrainTask: how to
// compute the loss of one micro-batch and how to evaluate. The loop owns everything else:
// AdamW, warm-up + cosine schedule, gradient accumulation and clipping, evaluation cadence,
// best/latest checkpoints, exact resume, Ctrl-C, progress, metrics.jsonl. Families with
// adversaries (a GAN) declare several optimizer groups, stepped in order each step.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/options.h"
#include "core/runtime.h"
#include "train/distributed.h"
#include "train/optim.h"

namespace imagine {

struct TrainRecipe {
  int64_t steps = 2000;             // optimizer steps in total
  int64_t batch_size = 12;          // sequences (or images) per micro-batch
  int64_t grad_accum = 1;           // micro-batches per optimizer step
  double lr = 1e-3;                 // peak learning rate
  double min_lr = 1e-4;             // learning rate at the end of the cosine decay
  int64_t warmup_steps = 100;       // linear warm-up
  int64_t decay_steps = 0;          // cosine decay ends here; 0 = at `steps`
  AdamWConfig adamw;                // betas, eps, weight decay
  std::string optimizer = "adamw";  // "adamw", or "muon": Muon for hidden matrices, AdamW for the rest
  MuonConfig muon;                  // Muon's settings (its lr follows the schedule's shape)
  std::string schedule = "cosine";  // "cosine" or "trapezoid" (warm-up / stable / linear decay)
  double cooldown = 0.2;            // trapezoid: the decaying fraction of the schedule
  double grad_clip = 1.0;           // max global gradient norm; 0 = off
  int64_t eval_every = 250;         // evaluate (and checkpoint) every N steps; 0 = only at the end
  int64_t eval_iters = 20;          // micro-batches per evaluation
  int64_t log_every = 10;           // metrics.jsonl / plain progress line cadence
  double stop_at_loss = 0;          // stop once validation loss <= this; 0 = off
  std::string precision = "fp32";   // "fp32" or "bf16" (autocast: bf16 matmuls, fp32 weights)
  bool cuda_graph = false;          // capture the whole step as a CUDA graph (train/cuda_graph.h)
  // Wall-time budget in seconds (0 = off; resumed runs count their earlier time): the
  // schedule (warm-up, cosine decay) is laid over the budget instead of the steps, which
  // become a cap; training stops in time for a final evaluation and checkpoint.
  double time_limit = 0;

  nlohmann::json to_json() const;
  static TrainRecipe from_json(const nlohmann::json& j);
  int64_t decay_end() const { return decay_steps > 0 ? decay_steps : steps; }
  double lr_at_step(int64_t step) const;  // the schedule's learning rate at (schedule) step
};

// Parameters stepped by one optimizer. Single-network families have one unnamed group; a
// GAN has "d" (the discriminator, stepped first) and "g" (the generator).
struct OptimizerGroup {
  std::string name;  // "" for the only group; prefixes the group's checkpoint state and logs
  std::vector<std::pair<std::string, torch::Tensor>> params;
  AdamWConfig adamw;
  double lr_scale = 1.0;  // times the schedule's learning rate
  int64_t repeats = 1;    // optimizer steps of this group per training step (WGAN critic steps)
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual torch::nn::Module& model() = 0;
  // Default: one group holding every parameter of model(), with the recipe's AdamW settings.
  virtual std::vector<OptimizerGroup> optimizer_groups(const AdamWConfig& recipe_adamw);
  // Forward pass on one micro-batch drawn with `rng` for optimizer group `group`; returns the
  // mean loss (the trainer calls backward on it and steps that group's optimizer).
  virtual torch::Tensor micro_batch_loss(Rng& rng, size_t group) = 0;
  // Whole-step CUDA-graph capture (train/cuda_graph.h) needs each micro-batch in fixed
  // device buffers. A task that supports it draws micro-batch `slot` of the next step with
  // `rng` into its buffers (stage_micro_batch: the same draws micro_batch_loss makes) and
  // computes the loss from them (staged_loss), with no host reads in between.
  virtual bool supports_staging() const { return false; }
  virtual void stage_micro_batch(Rng& rng, size_t group, int64_t slot);
  virtual torch::Tensor staged_loss(size_t group, int64_t slot);
  // After every training step (all groups stepped): EMA updates, periodic sample grids.
  virtual void after_step(int64_t step) {}
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
  int64_t step = 0;  // steps completed
  double best_val_loss = 0;
  int64_t best_step = 0;
  double last_val_loss = 0;
  double seconds = 0;           // wall time of this run (this process)
  double units_per_second = 0;  // training throughput, evaluation excluded
  bool interrupted = false;     // stopped by Ctrl-C / SIGTERM
  bool reached_target = false;  // stopped by stop_at_loss
  bool out_of_time = false;     // stopped by the recipe's time_limit
};

// --time-limit's help, the same for every family.
inline constexpr const char* kTimeLimitHelp =
    "wall-time budget (90s, 5m, 1h30m; earlier runs count on --resume): the schedule runs over it, --steps "
    "is a "
    "cap; stops with a final evaluation and checkpoint";
// "90s", "5m", "1h30m", "2.5m", "300" (seconds) -> seconds; Error with a hint otherwise.
double parse_duration(const std::string& text);

class Trainer {
 public:
  // `run_info` is stored in config.json's training record (seed, device, threads, ...).
  // With `dist` (world > 1) the task's micro-batches are this rank's share of the global
  // batch: gradients are averaged across ranks and rank 0 alone writes (distributed.h).
  Trainer(TrainTask& task, TrainRecipe recipe, std::string out_dir, uint64_t seed, nlohmann::json run_info,
          bool quiet, std::shared_ptr<Distributed> dist = nullptr);
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
  int world() const { return dist_ ? dist_->world() : 1; }
  bool is_main() const { return !dist_ || dist_->is_main(); }

  TrainTask& task_;
  TrainRecipe recipe_;
  std::string out_;
  uint64_t seed_;
  nlohmann::json run_info_;
  nlohmann::json config_json(int64_t step) const;  // config.json: the task's model config + training record
  bool quiet_;
  std::vector<OptimizerGroup> groups_;
  std::vector<AdamW> opts_;  // one per group
  std::vector<std::unique_ptr<Muon>>
      muons_;  // per group: its hidden matrices with --optimizer muon, else null
  Rng data_rng_;
  int64_t start_step_ = 0;
  double best_val_ = std::numeric_limits<double>::infinity();
  int64_t best_step_ = 0;
  double prior_seconds_ = 0;           // training time before a resume
  std::shared_ptr<Distributed> dist_;  // null or world 1: a single process
};

// The data stream of `rank` (rank 0's is the single-process stream, so --nproc 1 runs are
// unchanged). `step` > 0 starts a fresh stream for a rank a resumed checkpoint did not have.
uint64_t rank_data_seed(uint64_t seed, int rank, int64_t step = 0);

// Options of a resumed run: the options recorded in `previous` (config.json) fill in what
// was not given now; flags given now override the recipe (e.g. more --steps), never the
// architecture (`arch_keys`: an error if they differ).
Options resume_options(const Options& given, const nlohmann::json& previous,
                       const std::vector<std::string>& arch_keys);

// What every `imagine train <family>` does before and around its own pipeline.
struct RunSetup {
  Options options;          // effective options (recorded ones restored on --resume)
  nlohmann::json previous;  // config.json of the run being resumed; null otherwise
  std::string out;          // the model directory
  bool resume = false;
  int threads = 0;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;                  // the seed in effect (the recorded one on --resume)
  nlohmann::json data_license;        // --data-license resolved (train/model_card.h), or the recorded one
  std::shared_ptr<Distributed> dist;  // set when this process is one rank of several
  int rank() const { return dist ? dist->rank() : 0; }
  int world() const { return dist ? dist->world() : 1; }
  // This rank's share of the global --batch-size (an error unless the ranks divide it).
  int64_t rank_batch(int64_t global_batch) const;
};

// --nproc, --dist-backend, --dist-timeout: the same for every family's table.
void add_distributed_options(OptionTable& t);
// What `--nproc N` (N > 1, no RANK in the environment) checks before it starts the ranks,
// so a refusal is printed once: --out, and that N divides the batch (the recorded one on
// --resume). Returns N; 1 = run in this process.
int local_ranks_to_launch(const Options& given);

// Checks --out, refuses to overwrite an existing model unless --resume (which restores the
// recorded options, see resume_options, and the recorded seed), sets threads, device, seed.
RunSetup start_run(const Options& given, const std::vector<std::string>& arch_keys);

// Trains `task` with the recipe, continuing from the checkpoint when setup.resume; the run
// record (device, threads, options) goes into config.json.
TrainOutcome run_trainer(TrainTask& task, const TrainRecipe& recipe, const RunSetup& setup,
                         const std::function<void(const std::string&)>& log);

// The recipe from the options every training table shares (steps, batch-size, grad-accum,
// lr, min-lr, warmup-steps, decay-steps, beta1, beta2, weight-decay, grad-clip, eval-every,
// eval-iters, log-every, stop-at-loss); keys a table lacks keep the recipe defaults.
TrainRecipe recipe_from_options(const Options& o);

}  // namespace imagine
