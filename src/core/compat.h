// The one place where LibTorch 1.13 (Debian, CPU) and 2.x (PyTorch's CMake package, CUDA)
// differ for us. Everything else in the tree is written against the common API.
#pragma once
#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <map>
#include <tuple>

namespace imagine::compat {

#if TORCH_VERSION_MAJOR >= 2
constexpr bool kHasSdpa = true;
#else
constexpr bool kHasSdpa = false;
#endif

// ATen's fused AdamW kernel (`_fused_adamw_`, PyTorch 2.1+): one launch updates a list of
// parameters. Decoupled weight decay, bias correction from the float step counts in
// `steps` (which the caller advances). Not in 1.13: callers check kHasFusedAdamW.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
constexpr bool kHasFusedAdamW = true;
#else
constexpr bool kHasFusedAdamW = false;
#endif
inline void fused_adamw(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                        at::TensorList exp_avg_sqs, at::TensorList steps, double lr, double beta1,
                        double beta2, double weight_decay, double eps) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/at::TensorList(), steps, lr,
                    beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  TORCH_CHECK(false, "fused AdamW needs LibTorch 2.1 or later");
#endif
}

// The same kernel reading the learning rate from a 0-d device tensor (2.2+), so a captured
// CUDA graph can replay it with a new rate each step.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
constexpr bool kHasFusedAdamWTensorLr = true;
#else
constexpr bool kHasFusedAdamWTensorLr = false;
#endif
inline void fused_adamw(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                        at::TensorList exp_avg_sqs, at::TensorList steps, const at::Tensor& lr, double beta1,
                        double beta2, double weight_decay, double eps) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/at::TensorList(), steps, lr,
                    beta1, beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  TORCH_CHECK(false, "fused AdamW with a tensor learning rate needs LibTorch 2.2 or later");
#endif
}

// self = self + w * (end - self) over lists: `_foreach_lerp_` on 2.x; 1.13 has none, so
// there it is (1 - w) * self + w * end in two multi-tensor launches (rounding may differ).
inline void foreach_lerp_(at::TensorList self, at::TensorList end, double w) {
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_lerp_(self, end, w);
#else
  at::_foreach_mul_(self, 1.0 - w);
  at::_foreach_add_(self, end, w);
#endif
}

// Additive causal mask (Tq, Tk): 0 where query i (absolute position tk - tq + i) may see
// the key, -inf after it. Cached per thread, shape, dtype and device; the cache is bounded
// (a server sees every prompt length: it starts afresh past kMaxCachedMasks shapes).
constexpr size_t kMaxCachedMasks = 64;
inline torch::Tensor causal_mask(int64_t tq, int64_t tk, const torch::TensorOptions& opts) {
  thread_local std::map<std::tuple<int64_t, int64_t, int, int>, torch::Tensor> cache;
  const auto key = std::make_tuple(tq, tk, static_cast<int>(opts.dtype().toScalarType()),
                                   opts.device().is_cpu() ? -1 : static_cast<int>(opts.device().index()));
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  auto mask = torch::full({tq, tk}, -std::numeric_limits<float>::infinity(), opts).triu(tk - tq + 1);
  if (cache.size() >= kMaxCachedMasks) cache.clear();
  cache.emplace(key, mask);
  return mask;
}

// Scaled dot-product attention over (B, H, T, D) tensors. `causal` masks each query from
// keys after it, aligned so the last query sees every key (queries may be fewer than keys
// when a KV cache holds the past). 2.x uses the fused kernel; 1.13 computes it by hand.
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               bool causal, double dropout_p, bool training) {
  const int64_t tq = q.size(-2), tk = k.size(-2);
#if TORCH_VERSION_MAJOR >= 2
  if (!causal || tq == tk) {
    return at::scaled_dot_product_attention(q, k, v, {}, training ? dropout_p : 0.0, causal && tq > 1);
  }
#endif
  // One baddbmm computes scale * q k^T + mask, the additive causal mask (0 / -inf) cached
  // per shape: fewer kernels than matmul, mul and masked_fill.
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto q3 = q.reshape({B * H, tq, D}), k3 = k.reshape({B * H, tk, D}), v3 = v.reshape({B * H, tk, D});
  torch::Tensor att;
  if (causal && tq > 1) {
    att = torch::baddbmm(causal_mask(tq, tk, q.options()), q3, k3.transpose(1, 2), 1.0, scale);
  } else {
    att = torch::bmm(q3, k3.transpose(1, 2)) * scale;
  }
  att = torch::softmax(att, -1);  // (B*H, Tq, Tk)
  if (training && dropout_p > 0) att = torch::dropout(att, dropout_p, true);
  return torch::bmm(att, v3).view({B, H, tq, D});
}

// Attention of one new query per sequence over keys that may be views into a preallocated
// cache: q (B, H, 1, D), k and v (B, H, T, D); `mask` (B, 1, 1, T) is additive (0 / -inf,
// hiding positions a row has not filled) or undefined when every row sees all T keys.
// Small CPU shapes multiply and sum instead of running B*H tiny matrix products (bmm calls
// BLAS once per matrix: at 8 rows x 4 heads x 64 x 32 that is twice the time); measured
// crossover on 2-core Xeon/EPYC VMs about 2^17 elements.
constexpr int64_t kSmallStepAttention = int64_t{1} << 17;
inline torch::Tensor attention_masked(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& mask) {
  const int64_t B = q.size(0), H = q.size(1), tq = q.size(2), D = q.size(3), tk = k.size(2);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  if (tq == 1 && q.device().is_cpu() && B * H * tk * D <= kSmallStepAttention) {
    auto att = (q * k).sum(-1);  // (B, H, T)
    att = mask.defined() ? torch::add(mask.view({B, 1, tk}), att, scale) : att * scale;
    return (torch::softmax(att, -1).unsqueeze(-1) * v).sum(-2).view({B, H, 1, D});
  }
#if TORCH_VERSION_MAJOR >= 2
  if (mask.defined()) return at::scaled_dot_product_attention(q, k, v, mask);
  return at::scaled_dot_product_attention(q, k, v);
#else
  auto q3 = q.reshape({B * H, tq, D}), k3 = k.reshape({B * H, tk, D}), v3 = v.reshape({B * H, tk, D});
  auto att = torch::bmm(q3, k3.transpose(1, 2));  // (B*H, tq, tk)
  if (mask.defined())
    att = torch::add(mask, att.view({B, H, tq, tk}), scale).view({B * H, tq, tk});
  else
    att = att * scale;
  return torch::bmm(torch::softmax(att, -1), v3).view({B, H, tq, D});
#endif
}

// Mixed precision: while alive, matmuls and convolutions run in bfloat16 with float32
// weights and accumulation-sensitive ops kept in float32 (torch's autocast lists).
class AutocastBf16 {
 public:
  AutocastBf16(torch::Device device, bool enabled) : type_(device.type()), enabled_(enabled) {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    was_ = at::autocast::is_autocast_enabled(type_);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
    at::autocast::set_autocast_enabled(type_, true);
#else
    if (type_ == torch::kCPU) {
      was_ = at::autocast::is_cpu_enabled();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    } else {
      was_ = at::autocast::is_enabled();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    }
#endif
  }
  ~AutocastBf16() {
    if (!enabled_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(type_, was_);
#else
    if (type_ == torch::kCPU)
      at::autocast::set_cpu_enabled(was_);
    else
      at::autocast::set_enabled(was_);
#endif
    at::autocast::clear_cache();
  }
  AutocastBf16(const AutocastBf16&) = delete;
  AutocastBf16& operator=(const AutocastBf16&) = delete;

 private:
  torch::DeviceType type_;
  bool enabled_;
  bool was_ = false;
};

}  // namespace imagine::compat
