// The one place where LibTorch 1.13 (Debian, CPU) and 2.x (PyTorch's CMake package, CUDA)
// differ for us. Everything else in the tree is written against the common API.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

namespace imagine::compat {

#if TORCH_VERSION_MAJOR >= 2
constexpr bool kHasSdpa = true;
#else
constexpr bool kHasSdpa = false;
#endif

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
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto att = torch::matmul(q, k.transpose(-2, -1)) * scale;  // (B, H, Tq, Tk)
  if (causal && tq > 1) {
    // query i (absolute position tk - tq + i) may see keys 0..tk - tq + i
    auto mask = torch::ones({tq, tk}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                    .triu(tk - tq + 1);
    att = att.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  att = torch::softmax(att, -1);
  if (training && dropout_p > 0) att = torch::dropout(att, dropout_p, true);
  return torch::matmul(att, v);  // (B, H, Tq, D)
}

}  // namespace imagine::compat
