// See cuda_graph.h. Compiled in every build; the capture itself exists only where CMake
// found CUDA in LibTorch (IMAGINE_WITH_CUDA), and scripts/check-cuda-compile.sh compiles
// this file against LibTorch's CUDA headers on machines without a GPU.
#include "train/cuda_graph.h"

#include "core/compat.h"
#include "core/error.h"
#include "train/trainer.h"

#ifdef IMAGINE_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace imagine {

std::string CudaGraphStep::unsupported_reason() {
#ifndef IMAGINE_WITH_CUDA
  return "this imagine was built against a LibTorch without CUDA";
#else
  if (!compat::kHasFusedAdamWTensorLr)
    return "CUDA graphs need LibTorch 2.2 or later (a fused AdamW that reads its learning rate on the "
           "device)";
  return "";
#endif
}

struct CudaGraphStep::Impl {
  Impl(TrainTask& t, AdamW& o, std::vector<torch::Tensor> ps, int64_t k, double c, bool b, torch::Device d)
      : task(t), opt(o), params(std::move(ps)), accum(k), clip(c), bf16(b), device(d) {
    auto f = torch::TensorOptions(torch::kFloat).device(d);
    lr = torch::zeros({}, f);
    loss = torch::zeros({}, f);
    grad_norm = torch::zeros({}, f);
  }
  TrainTask& task;
  AdamW& opt;
  std::vector<torch::Tensor> params;
  int64_t accum;
  double clip;
  bool bf16;
  torch::Device device;
  int64_t eager_steps = 0;
  // Fixed device tensors the graph reads and writes: the learning rate in, the loss and the
  // gradient norm out.
  torch::Tensor lr, loss, grad_norm;
#ifdef IMAGINE_WITH_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif

  // The step on the staged buffers, eagerly or while being captured: no host reads, no
  // allocation that depends on values, nothing but device work.
  void body() {
    opt.zero_grad();
    loss.zero_();
    for (int64_t k = 0; k < accum; k++) {
      torch::Tensor l;
      {
        compat::AutocastBf16 autocast(device, bf16);
        l = task.staged_loss(0, k);
      }
      (l / static_cast<double>(accum)).backward();
      loss.add_(l.detach().to(torch::kFloat), 1.0 / static_cast<double>(accum));
    }
    if (clip > 0) grad_norm.copy_(clip_grad_norm(params, clip));
    opt.step(lr);
  }
};

CudaGraphStep::CudaGraphStep(TrainTask& task, AdamW& opt, std::vector<torch::Tensor> params,
                             int64_t grad_accum, double grad_clip, bool bf16, torch::Device device) {
  const std::string why = unsupported_reason();
  IMAGINE_CHECK(why.empty(), "train without --cuda-graph", why);
  IMAGINE_CHECK(device.is_cuda(), "pass --device cuda, or train without --cuda-graph",
                "--cuda-graph captures GPU work; this run trains on ", device.str());
  IMAGINE_CHECK(task.supports_staging(), "train without --cuda-graph",
                "this model family does not stage its batches in fixed buffers, which --cuda-graph needs");
  opt.set_kernel(AdamW::Kernel::kFused);
  impl_ = std::make_unique<Impl>(task, opt, std::move(params), grad_accum, grad_clip, bf16, device);
}

CudaGraphStep::~CudaGraphStep() = default;

bool CudaGraphStep::captured() const {
#ifdef IMAGINE_WITH_CUDA
  return impl_->graph != nullptr;
#else
  return false;
#endif
}

GraphStepResult CudaGraphStep::step(Rng& rng, double lr) {
  auto& s = *impl_;
  // Inputs first, on the current stream, in the buffers the graph reads.
  for (int64_t k = 0; k < s.accum; k++) s.task.stage_micro_batch(rng, 0, k);
  s.lr.fill_(lr);
#ifdef IMAGINE_WITH_CUDA
  if (s.graph) {
    s.graph->replay();
    s.opt.count_replayed_step();
  } else {
    // Warm-up steps and the capture run on a side stream (capture cannot use the default
    // one); the device is synchronised around them so the staged inputs are in place.
    auto side = c10::cuda::getStreamFromPool(false, s.device.index());
    torch::cuda::synchronize(s.device.index());
    const bool capture = s.eager_steps >= kWarmupSteps;
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      if (!capture) {
        s.body();
        s.eager_steps++;
      } else {
        // Autocast's cast cache would hand the graph tensors that live outside its pool.
        const bool cache = at::autocast::is_autocast_cache_enabled();
        at::autocast::set_autocast_cache_enabled(false);
        s.graph = std::make_unique<at::cuda::CUDAGraph>();
        s.graph->capture_begin();
        s.body();
        s.graph->capture_end();
        at::autocast::set_autocast_cache_enabled(cache);
      }
    }
    torch::cuda::synchronize(s.device.index());
    if (capture) s.graph->replay();  // capturing recorded the step; this runs it
  }
#else
  s.body();  // unreachable: the constructor refuses builds without CUDA
#endif
  return {s.loss, s.clip > 0 ? s.grad_norm : torch::Tensor()};
}

}  // namespace imagine
