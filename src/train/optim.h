// AdamW and the learning-rate schedule. AdamW is written here (not torch::optim) so its
// state is plain named tensors that checkpoints store exactly and Python can read, and so
// decay / no-decay groups are explicit.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace imagine {

struct AdamWConfig {
  double beta1 = 0.9;          // first-moment decay
  double beta2 = 0.95;         // second-moment decay
  double eps = 1e-8;           // denominator guard
  double weight_decay = 0.1;   // decoupled, applied to matrices and embeddings only
};

class AdamW {
 public:
  // params: name -> tensor. Tensors with dim >= 2 get weight decay; biases and norms don't.
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWConfig config);
  void step(double lr);  // uses .grad() of every parameter; skips parameters without one
  void zero_grad();
  int64_t steps() const { return step_; }

  // Moments as named tensors ("exp_avg.<name>", "exp_avg_sq.<name>") plus the step count.
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& state, int64_t step);
  const AdamWConfig& config() const { return config_; }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, m, v;
    bool decay;
  };
  std::vector<Slot> slots_;
  AdamWConfig config_;
  int64_t step_ = 0;
};

// Linear warm-up from 0 to lr over `warmup` steps, then cosine decay to min_lr at
// `decay_steps`, then min_lr. `step` counts from 0.
double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t decay_steps);

}  // namespace imagine
