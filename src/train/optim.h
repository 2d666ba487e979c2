// AdamW, Muon and the learning-rate schedules. AdamW is written here (not torch::optim) so its
// state is plain named tensors that checkpoints store exactly and Python can read, and so
// decay / no-decay groups are explicit.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace imagine {

struct AdamWConfig {
  double beta1 = 0.9;         // first-moment decay
  double beta2 = 0.95;        // second-moment decay
  double eps = 1e-8;          // denominator guard
  double weight_decay = 0.1;  // decoupled, applied to matrices and embeddings only
};

class AdamW {
 public:
  // How a step runs. kLoop: a few kernels per parameter (the CPU default: on a CPU the
  // multi-tensor ops are the same kernels in a loop). kForEach: torch's multi-tensor
  // `_foreach_` ops, a handful of launches for all parameters (the GPU default on LibTorch
  // 1.13). kFused: ATen's `_fused_adamw_`, one kernel per group (the GPU default on 2.1+).
  // All three compute the same update; they differ in rounding only.
  enum class Kernel { kLoop, kForEach, kFused };

  // params: name -> tensor. Tensors with dim >= 2 get weight decay; biases and norms don't.
  AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWConfig config);
  void step(double lr);  // uses .grad() of every parameter; skips parameters without one
  // The fused step with the learning rate in a 0-d device tensor: what a captured CUDA graph
  // replays (train/cuda_graph.h). A replay advances the device's step counts itself;
  // count_replayed_step() keeps steps() in line with it.
  void step(const torch::Tensor& lr);
  void count_replayed_step() { step_++; }
  Kernel kernel() const { return kernel_; }
  void set_kernel(Kernel k);  // kFused where compat::kHasFusedAdamW only
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
  void step_loop(double lr);
  void step_multi(double lr, const torch::Tensor& lr_tensor);  // kForEach and kFused

  std::vector<Slot> slots_;
  AdamWConfig config_;
  int64_t step_ = 0;
  Kernel kernel_ = Kernel::kLoop;
  std::vector<torch::Tensor> step_counts_;  // kFused: one float step count per slot, on its device
};

// Scales the gradients of `params` so that their global L2 norm is at most max_norm, as
// torch.nn.utils.clip_grad_norm_ does, and returns the norm before clipping as a 0-d tensor
// on the gradients' device: no device-to-host copy, so a GPU step never waits on it (read
// it with .item() only when logging). Multi-tensor norms on a GPU.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

// Muon (Jordan et al., the nanoGPT speedrun's optimizer) for 2-D hidden weights: SGD momentum
// whose update is orthogonalised by a Newton–Schulz iteration (the nearest semi-orthogonal
// matrix, all singular values ~1), scaled by sqrt(max(1, rows / cols)). Embeddings, the head,
// norms and biases stay with AdamW (trainer.h splits a group). State: one momentum buffer per
// matrix ("muon_momentum.<name>") and the step count.
struct MuonConfig {
  double lr = 0.02;           // peak learning rate (follows the schedule's shape)
  double momentum = 0.95;     // momentum decay
  bool nesterov = true;       // Nesterov momentum
  int ns_steps = 5;           // Newton–Schulz iterations
  double weight_decay = 0.0;  // decoupled, lr-scaled
};

// The quintic Newton–Schulz iteration of the speedrun (coefficients 3.4445, -4.7750, 2.0315)
// on g / ||g||_F: maps a matrix to approximately U V^T of its SVD, with singular values in
// about [0.7, 1.2] rather than exactly 1 (it trades exactness for speed). float32. g is one
// matrix (rows, cols) or a stack of them (n, rows, cols), each orthogonalised on its own.
torch::Tensor newton_schulz(const torch::Tensor& g, int steps = 5);

class Muon {
 public:
  Muon(std::vector<std::pair<std::string, torch::Tensor>> params, MuonConfig config);
  void step(double lr);  // lr: this step's Muon learning rate
  void zero_grad();
  int64_t steps() const { return step_; }
  std::map<std::string, torch::Tensor> state() const;
  void load_state(const std::map<std::string, torch::Tensor>& state, int64_t step);
  const MuonConfig& config() const { return config_; }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, momentum;
  };
  std::vector<Slot> slots_;
  std::vector<std::vector<size_t>> groups_;  // slots of one shape: orthogonalised in one batch
  MuonConfig config_;
  int64_t step_ = 0;
};

// Which parameters Muon takes: 2-D matrices inside the network, not the token embedding, the
// position embedding or the output head (names wte., wpe., lm_head.).
bool muon_takes(const std::string& name, const torch::Tensor& p);
using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;
// (Muon's matrices, AdamW's rest): every parameter in exactly one, order kept.
std::pair<NamedParams, NamedParams> split_for_muon(const NamedParams& params);

// The learning-rate schedule's shape after warm-up. kCosine: cosine decay from lr to min_lr
// at decay_steps. kTrapezoid (warm-up / stable / decay): lr until the last `cooldown`
// fraction of decay_steps, then linear to min_lr at decay_steps.
enum class Schedule { kCosine, kTrapezoid };
Schedule parse_schedule(const std::string& name);  // "cosine" | "trapezoid"; Error otherwise
const char* schedule_name(Schedule s);

// Linear warm-up from 0 to lr over `warmup` steps, then the schedule's decay to min_lr at
// `decay_steps`, then min_lr. `step` counts from 0.
double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t decay_steps,
             Schedule schedule = Schedule::kCosine, double cooldown = 0.2);

}  // namespace imagine
