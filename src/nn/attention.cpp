// Attention and Transformer block. The attention kernel itself lives in core/compat.h
// because it is the one piece that differs between LibTorch 1.13 and 2.x.
#include "nn/attention.h"

#include "core/compat.h"

namespace imagine::nn {

namespace F = torch::nn::functional;

LayerNormImpl::LayerNormImpl(int64_t n_, bool with_bias) : n(n_) {
  weight = register_parameter("weight", torch::ones({n}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({n}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) { return torch::layer_norm(x, {n}, weight, bias, 1e-5); }

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t n_embd_, int64_t n_head_, double dropout_, bool bias)
    : n_head(n_head_), n_embd(n_embd_), dropout(dropout_) {
  TORCH_CHECK(n_embd % n_head == 0, "n_embd must be divisible by n_head");
  c_attn = register_module("c_attn", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 3 * n_embd).bias(bias)));
  c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_embd, n_embd).bias(bias)));
  resid_drop = register_module("resid_drop", torch::nn::Dropout(dropout));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, LayerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / n_head;
  auto qkv = c_attn(x).split(n_embd, 2);                       // 3 x (B, T, C)
  auto q = qkv[0].view({B, T, n_head, hd}).transpose(1, 2);  // (B, H, T, D)
  auto k = qkv[1].view({B, T, n_head, hd}).transpose(1, 2);
  auto v = qkv[2].view({B, T, n_head, hd}).transpose(1, 2);
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  auto y = compat::attention(q, k, v, /*causal=*/true, dropout, is_training());  // (B, H, T, D)
  y = y.transpose(1, 2).contiguous().view({B, T, C});
  return resid_drop(c_proj(y));
}

torch::Tensor CausalSelfAttentionImpl::forward_rows(const torch::Tensor& x, const std::vector<LayerCache*>& caches) {
  const int64_t B = x.size(0), C = x.size(2);
  TORCH_CHECK(x.size(1) == 1 && static_cast<int64_t>(caches.size()) == B, "forward_rows: one token and cache per row");
  if (B == 1) return forward(x, caches[0]);
  const int64_t hd = C / n_head;
  auto qkv = c_attn(x).split(n_embd, 2);  // 3 x (B, 1, C)
  std::vector<torch::Tensor> rows;
  rows.reserve(B);
  for (int64_t b = 0; b < B; b++) {
    auto q = qkv[0][b].view({1, 1, n_head, hd}).transpose(1, 2);  // (1, H, 1, D)
    auto k = qkv[1][b].view({1, 1, n_head, hd}).transpose(1, 2);
    auto v = qkv[2][b].view({1, 1, n_head, hd}).transpose(1, 2);
    LayerCache* c = caches[b];
    if (c->k.defined()) {
      k = torch::cat({c->k, k}, 2);
      v = torch::cat({c->v, v}, 2);
    }
    c->k = k;
    c->v = v;
    rows.push_back(compat::attention(q, k, v, /*causal=*/true, dropout, is_training()).transpose(1, 2).reshape({1, C}));
  }
  auto y = torch::stack(rows).view({B, 1, C});
  return resid_drop(c_proj(y));
}

MLPImpl::MLPImpl(int64_t n_embd, double dropout, bool bias) {
  c_fc = register_module("c_fc", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 4 * n_embd).bias(bias)));
  c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(4 * n_embd, n_embd).bias(bias)));
  drop = register_module("drop", torch::nn::Dropout(dropout));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) { return drop(c_proj(torch::gelu(c_fc(x)))); }

BlockImpl::BlockImpl(int64_t n_embd, int64_t n_head, double dropout, bool bias) {
  ln_1 = register_module("ln_1", LayerNorm(n_embd, bias));
  attn = register_module("attn", CausalSelfAttention(n_embd, n_head, dropout, bias));
  ln_2 = register_module("ln_2", LayerNorm(n_embd, bias));
  mlp = register_module("mlp", MLP(n_embd, dropout, bias));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x0, LayerCache* cache) {
  auto x = x0 + attn(ln_1(x0), cache);
  return x + mlp(ln_2(x));
}

torch::Tensor BlockImpl::forward_rows(const torch::Tensor& x0, const std::vector<LayerCache*>& caches) {
  auto x = x0 + attn->forward_rows(ln_1(x0), caches);
  return x + mlp(ln_2(x));
}

}  // namespace imagine::nn
