// Data-parallel training on torch's own distributed engine (c10d): a TCPStore for the
// rendezvous and ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA builds) for collectives.
//
// A run of W ranks: every rank holds the whole model and draws its own share of each global
// batch; after the backward pass the gradients are averaged across ranks in buckets (before
// clipping, so the clip sees the global gradient), every rank takes the same optimizer step,
// and rank 0 alone writes checkpoints, metrics and progress. Decisions that depend on a
// rank's clock or signals (time limit, Ctrl-C) are agreed on by all ranks every step.
//
// Ranks come from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR, MASTER_PORT), or from `--nproc N`, which spawns N local ranks of the same
// command (launch_local_ranks) and sets those variables for them.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace imagine {

struct DistConfig {
  int rank = 0;
  int world = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string backend = "gloo";  // "gloo" or "nccl"
  double timeout_s = 60;         // a collective that waits longer fails (a rank died or hung)
  // The store is served by someone else (the --nproc launcher); otherwise rank 0 serves it.
  bool store_is_external = false;

  // The torchrun variables when RANK is set; nullopt-like (world 1) otherwise.
  static DistConfig from_environment(const std::string& backend, double timeout_s);
  bool in_environment = false;  // RANK was set
};

class Distributed {
 public:
  // Rendezvous with the other ranks (blocks up to the timeout).
  explicit Distributed(const DistConfig& cfg);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return cfg_.rank; }
  int world() const { return cfg_.world; }
  bool is_main() const { return cfg_.rank == 0; }
  const DistConfig& config() const { return cfg_; }

  // Copies rank 0's tensors into every rank's (in place).
  void broadcast(const std::vector<torch::Tensor>& tensors, const char* what);
  // Averages floating-point tensors in place (batch-norm running statistics).
  void average(const std::vector<torch::Tensor>& tensors, const char* what);
  // Element-wise maximum over ranks: flags (any rank interrupted / out of time) and clocks.
  std::vector<double> max(const std::vector<double>& values, const char* what);
  bool any(bool flag, const char* what) { return max({flag ? 1.0 : 0.0}, what)[0] > 0; }
  // Rank 0 receives every rank's `mine` (in rank order); other ranks get an empty vector.
  std::vector<std::string> gather_to_main(const std::string& key, const std::string& mine);

  int64_t bytes_all_reduced() const { return bytes_reduced_; }  // gradient bytes sent into all-reduces
  size_t bucket_bytes = 25u << 20;                              // as PyTorch's DDP

 private:
  friend class GradientSync;
  // Starts a sum all-reduce of `flat` in place (asynchronous); wait_started() completes all.
  void start_sum(const torch::Tensor& flat, const char* what);
  void wait_started(const char* what);

  struct Impl;  // the c10d objects (their headers stay out of everyone else's build)
  [[noreturn]] void fail(const char* what, const std::exception& e) const;
  void all_reduce(torch::Tensor& t, bool max, const char* what);

  DistConfig cfg_;
  std::unique_ptr<Impl> impl_;
  int64_t bytes_reduced_ = 0;
  int64_t gathers_ = 0;
};

// Averages one optimizer group's gradients across ranks while the backward pass runs, as
// PyTorch's DDP does: a hook on each parameter copies its finished gradient into its bucket
// (parameters in reverse order, as backward produces them), and a full bucket's all-reduce
// starts at once, in bucket order on every rank. finish() waits for the rest, averages and
// writes the gradients back, so clipping and the optimizer see the global gradient.
class GradientSync {
 public:
  GradientSync(Distributed& dist, std::vector<torch::Tensor> params, size_t bucket_bytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward pass is the step's last (with gradient accumulation, the earlier ones
  // only accumulate locally): its gradients are synchronised as they appear.
  void arm();
  // Completes the all-reduce; `local_loss` rides along, the mean over ranks is returned.
  double finish(double local_loss);
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor flat;
    size_t pending = 0;
  };
  void on_grad(size_t param, const torch::Tensor& grad);
  void launch_ready();

  Distributed& dist_;
  std::vector<torch::Tensor> params_;
  std::vector<unsigned> hooks_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;
  std::vector<bool> seen_;
  size_t next_launch_ = 0;
  bool armed_ = false;
};

// `--nproc N` on one machine: serves the store, runs `argv` N times with the torchrun
// variables set (threads per rank = cores / N unless the command says otherwise), forwards
// SIGTERM, and waits. When a rank fails, the others get `timeout_s` to notice and exit
// before they are killed. Returns the exit status for the command: 0, or the first failing
// rank's, after printing an error line naming that rank.
int launch_local_ranks(int nproc, const std::vector<std::string>& argv, double timeout_s);

// Whether this build has c10d's NCCL backend (PyTorch's CUDA LibTorch; Debian's has not).
bool nccl_available();
// Error with a hint unless `backend` is "gloo", or "nccl" in a build that has it.
void require_backend(const std::string& backend);

// The number of local ranks `--nproc auto` means on this machine for this family.
int auto_nproc();

}  // namespace imagine
