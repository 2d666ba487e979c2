// Whole-step CUDA-graph capture (train --cuda-graph): one training step of a task with
// static shapes (zero the gradients, forward and backward of every micro-batch, gradient
// clipping, the fused AdamW update) is recorded once as a CUDA graph and replayed each
// step, so the step costs one launch instead of hundreds of kernel launches from the host.
//
// Needs a CUDA build of LibTorch 2.2 or later (the fused AdamW kernel that reads its
// learning rate from a device tensor, so the schedule can change it between replays). On
// any other build `supported()` says why not and the trainer refuses the flag.
//
// Shapes must not change between steps: the task stages each micro-batch into fixed device
// buffers (TrainTask::stage_micro_batch) before the replay. The first kWarmupSteps steps run
// eagerly on a side stream (the allocator and cuBLAS settle), the next one is captured.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "train/optim.h"

namespace imagine {

class TrainTask;

struct GraphStepResult {
  torch::Tensor loss;  // the step's mean micro-batch loss (device, 0-d); read with .item()
  torch::Tensor
      grad_norm;  // the global gradient norm before clipping (device, 0-d); undefined without clipping
};

class CudaGraphStep {
 public:
  static constexpr int kWarmupSteps = 3;
  // "" when this build can capture training steps, else the reason it cannot.
  static std::string unsupported_reason();

  CudaGraphStep(TrainTask& task, AdamW& opt, std::vector<torch::Tensor> params, int64_t grad_accum,
                double grad_clip, bool bf16, torch::Device device);
  ~CudaGraphStep();
  CudaGraphStep(const CudaGraphStep&) = delete;
  CudaGraphStep& operator=(const CudaGraphStep&) = delete;

  // One optimizer step at learning rate `lr`, drawing the micro-batches with `rng`.
  GraphStepResult step(Rng& rng, double lr);
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagine
