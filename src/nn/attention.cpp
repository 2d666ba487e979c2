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

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {n}, weight, bias, 1e-5);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t n_embd_, int64_t n_head_, double dropout_, bool bias)
    : n_head(n_head_), n_embd(n_embd_), dropout(dropout_) {
  TORCH_CHECK(n_embd % n_head == 0, "n_embd must be divisible by n_head");
  c_attn =
      register_module("c_attn", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 3 * n_embd).bias(bias)));
  c_proj = register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_embd, n_embd).bias(bias)));
  resid_drop = register_module("resid_drop", torch::nn::Dropout(dropout));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, LayerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / n_head;
  auto qkv = c_attn(x).split(n_embd, 2);                     // 3 x (B, T, C)
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

torch::Tensor CausalSelfAttentionImpl::step_attention(const torch::Tensor& qkv, RowsCache& cache,
                                                      const RowsStep& step) const {
  using torch::indexing::Slice;
  const int64_t B = qkv.size(0), C = n_embd, hd = C / n_head;
  TORCH_CHECK(step.rows.size(0) == B, "step_attention: one token per row");
  auto q = qkv.narrow(1, 0, C).view({B, n_head, 1, hd});
  cache.k.index_put_({step.rows, Slice(), step.pos}, qkv.narrow(1, C, C).view({B, n_head, hd}));
  cache.v.index_put_({step.rows, Slice(), step.pos}, qkv.narrow(1, 2 * C, C).view({B, n_head, hd}));
  auto k = cache.k.narrow(2, 0, step.span), v = cache.v.narrow(2, 0, step.span);  // (rows, H, span, D)
  if (step.prefix) {
    k = k.narrow(0, 0, B);
    v = v.narrow(0, 0, B);
  } else {
    k = k.index_select(0, step.rows);
    v = v.index_select(0, step.rows);
  }
  return compat::attention_masked(q, k, v, step.mask).view({B, C});  // (B, H, 1, D) -> (B, C)
}

MLPImpl::MLPImpl(int64_t n_embd, double dropout, bool bias) {
  c_fc = register_module("c_fc", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 4 * n_embd).bias(bias)));
  c_proj =
      register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(4 * n_embd, n_embd).bias(bias)));
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

// x (B, in) @ w (in, out) [+ bias]: one GEMM.
static torch::Tensor linear_t(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  if (x.scalar_type() != w.scalar_type()) return bias.defined() ? step_mm(x, w) + bias : step_mm(x, w);
  return bias.defined() ? torch::addmm(bias, x, w) : torch::mm(x, w);
}

StepWeights StepWeights::to(torch::ScalarType dtype) const {
  auto c = [&](const torch::Tensor& t) { return t.to(dtype).contiguous(); };
  return {c(attn), attn_bias, c(attn_proj), attn_proj_bias, c(fc), fc_bias, c(proj), proj_bias};
}

// The rest of a block after attention, with step weights: x0 + proj(att), then the MLP.
torch::Tensor BlockImpl::step_tail(const torch::Tensor& x0, const torch::Tensor& att, const StepWeights& w) {
  auto x = x0 + linear_t(att, w.attn_proj, w.attn_proj_bias);
  return x + linear_t(torch::gelu(linear_t(ln_2(x), w.fc, w.fc_bias)), w.proj, w.proj_bias);
}

torch::Tensor BlockImpl::forward_step(const torch::Tensor& x0, RowsCache& cache, const RowsStep& step,
                                      const StepWeights& w) {
  return step_tail(x0, attn->step_attention(linear_t(ln_1(x0), w.attn, w.attn_bias), cache, step), w);
}

torch::Tensor BlockImpl::forward_prefill(const torch::Tensor& x0, RowsCache& cache, int64_t row,
                                         const StepWeights& w, bool last_only) {
  const int64_t T = x0.size(0), C = x0.size(1), H = attn->n_head, hd = C / H;
  auto qkv = linear_t(ln_1(x0), w.attn, w.attn_bias);  // (T, 3C)
  auto heads = [&](int64_t i) {
    return qkv.narrow(1, i * C, C).view({T, H, hd}).transpose(0, 1);
  };  // (H, T, D)
  auto k = heads(1), v = heads(2);
  cache.k[row].narrow(1, 0, T).copy_(k);
  cache.v[row].narrow(1, 0, T).copy_(v);
  auto y =
      compat::attention(heads(0).unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), /*causal=*/true, 0.0, false);
  y = y[0].transpose(0, 1).reshape({T, C});  // (T, C)
  if (last_only) return step_tail(x0.narrow(0, T - 1, 1), y.narrow(0, T - 1, 1), w);
  return step_tail(x0, y, w);
}

StepWeights BlockImpl::step_weights() const {
  torch::NoGradGuard no_grad;
  auto t = [](const torch::nn::Linear& l) { return l->weight.detach().t().contiguous(); };
  auto b = [](const torch::nn::Linear& l) { return l->bias.defined() ? l->bias.detach() : torch::Tensor(); };
  return {t(attn->c_attn), b(attn->c_attn), t(attn->c_proj), b(attn->c_proj),
          t(mlp->c_fc),    b(mlp->c_fc),    t(mlp->c_proj),  b(mlp->c_proj)};
}

}  // namespace imagine::nn
