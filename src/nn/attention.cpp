// Attention and Transformer block. The attention kernel itself lives in core/compat.h
// because it is the one piece that differs between LibTorch 1.13 and 2.x.
#include "nn/attention.h"

#include <limits>
#include <tuple>

#include "core/compat.h"

namespace imagine::nn {

namespace F = torch::nn::functional;

RopeAngles rope_angles(const torch::Tensor& pos, int64_t head_dim, double base) {
  TORCH_CHECK(head_dim % 2 == 0, "RoPE needs an even head size");
  const auto dbl = torch::TensorOptions().dtype(torch::kDouble).device(pos.device());
  // frequency i = base^(-2i / D), i = 0 .. D/2 - 1
  auto inv_freq = torch::pow(base, torch::arange(0, head_dim, 2, dbl) / -static_cast<double>(head_dim));
  auto angles = pos.to(torch::kDouble).unsqueeze(-1) * inv_freq;  // (..., D/2)
  return {torch::cos(angles).to(torch::kFloat), torch::sin(angles).to(torch::kFloat)};
}

torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t h = x.size(-1) / 2;
  auto c = cos.to(x.scalar_type()), s = sin.to(x.scalar_type());
  auto x1 = x.narrow(-1, 0, h), x2 = x.narrow(-1, h, h);
  return torch::cat({x1 * c - x2 * s, x1 * s + x2 * c}, -1);
}

torch::Tensor rms_normalize(const torch::Tensor& x, double eps) {
  auto f = x.to(torch::kFloat);
  return (f * torch::rsqrt(f.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

LayerNormImpl::LayerNormImpl(int64_t n_, bool with_bias, bool rms_) : n(n_), rms(rms_) {
  weight = register_parameter("weight", torch::ones({n}));
  if (with_bias && !rms) bias = register_parameter("bias", torch::zeros({n}));
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  if (rms) return rms_normalize(x) * weight;
  return torch::layer_norm(x, {n}, weight, bias, 1e-5);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const BlockOptions& o)
    : n_head(o.n_head), n_embd(o.n_embd), dropout(o.dropout), qk_norm(o.qk_norm), rope(o.rope) {
  TORCH_CHECK(n_embd % n_head == 0, "n_embd must be divisible by n_head");
  c_attn =
      register_module("c_attn", torch::nn::Linear(torch::nn::LinearOptions(n_embd, 3 * n_embd).bias(o.bias)));
  c_proj =
      register_module("c_proj", torch::nn::Linear(torch::nn::LinearOptions(n_embd, n_embd).bias(o.bias)));
  resid_drop = register_module("resid_drop", torch::nn::Dropout(dropout));
}

torch::Tensor CausalSelfAttentionImpl::place(torch::Tensor x, const RopeAngles& angles) const {
  if (qk_norm) x = rms_normalize(x);
  if (rope) {
    TORCH_CHECK(angles.defined(), "a RoPE model's attention needs the positions' angles");
    x = rope_rotate(x, angles.cos, angles.sin);
  }
  return x;
}

std::pair<torch::Tensor, torch::Tensor> CausalSelfAttentionImpl::position(torch::Tensor q, torch::Tensor k,
                                                                          const RopeAngles& angles) const {
  return {place(std::move(q), angles), place(std::move(k), angles)};
}

torch::Tensor sliding_window_mask(int64_t T, int64_t window, const torch::TensorOptions& options) {
  auto i = torch::arange(T, torch::kLong).unsqueeze(1), j = torch::arange(T, torch::kLong).unsqueeze(0);
  auto seen = (j <= i).logical_and(j > i - window);
  return torch::zeros({T, T}, options)
      .masked_fill(seen.logical_not().to(options.device()), -std::numeric_limits<float>::infinity());
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, LayerCache* cache,
                                               const RopeAngles& angles, const torch::Tensor& band) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), hd = C / n_head;
  auto qkv = c_attn(x);  // (B, T, 3C)
  auto heads = [&](const torch::Tensor& t) {
    return t.view({B, T, -1, hd}).transpose(1, 2);
  };  // (B, H', T, D)
  auto v = heads(qkv.narrow(2, 2 * C, C));
  // q and k side by side, (B, T, 2H, D): one normalisation and one rotation for both (half the
  // kernels of doing each on its own; the same numbers).
  // The angles (T, D/2) become (T, 1, D/2): one row of angles for all 2H heads.
  const RopeAngles over_heads =
      angles.defined() ? RopeAngles{angles.cos.unsqueeze(-2), angles.sin.unsqueeze(-2)} : angles;
  auto qk = place(qkv.narrow(2, 0, 2 * C).view({B, T, 2 * n_head, hd}), over_heads);
  auto q = heads(qk.narrow(2, 0, n_head)), k = heads(qk.narrow(2, n_head, n_head));
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  TORCH_CHECK(!band.defined() || !cache, "a sliding-window mask is for a whole sequence, not a cache");
  auto y = band.defined()
               ? compat::attention_masked(q, k, v, band.view({1, 1, T, T}))
               : compat::attention(q, k, v, /*causal=*/true, dropout, is_training());  // (B, H, T, D)
  y = y.transpose(1, 2).contiguous().view({B, T, C});
  return resid_drop(c_proj(y));
}

torch::Tensor CausalSelfAttentionImpl::step_attention(const torch::Tensor& qkv, RowsCache& cache,
                                                      const RowsStep& step) const {
  using torch::indexing::Slice;
  const int64_t B = qkv.size(0), C = n_embd, hd = C / n_head;
  TORCH_CHECK(step.rows.size(0) == B, "step_attention: one token per row");
  auto q = qkv.narrow(1, 0, C).view({B, n_head, 1, hd});
  auto k_new = qkv.narrow(1, C, C).view({B, n_head, 1, hd});
  RopeAngles a;
  if (rope) a = {step.rope.cos.view({B, 1, 1, hd / 2}), step.rope.sin.view({B, 1, 1, hd / 2})};
  std::tie(q, k_new) = position(q, k_new, a);
  cache.k.index_put_({step.rows, Slice(), step.slot}, k_new.view({B, n_head, hd}));
  cache.v.index_put_({step.rows, Slice(), step.slot}, qkv.narrow(1, 2 * C, C).view({B, n_head, hd}));
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

MLPImpl::MLPImpl(const BlockOptions& o) : relu2(o.relu2) {
  c_fc = register_module("c_fc",
                         torch::nn::Linear(torch::nn::LinearOptions(o.n_embd, 4 * o.n_embd).bias(o.bias)));
  c_proj = register_module("c_proj",
                           torch::nn::Linear(torch::nn::LinearOptions(4 * o.n_embd, o.n_embd).bias(o.bias)));
  drop = register_module("drop", torch::nn::Dropout(o.dropout));
}

torch::Tensor MLPImpl::act(const torch::Tensor& x) const {
  return relu2 ? torch::relu(x).square() : torch::gelu(x);
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x) { return drop(c_proj(act(c_fc(x)))); }

BlockImpl::BlockImpl(const BlockOptions& o) {
  ln_1 = register_module("ln_1", LayerNorm(o.n_embd, o.bias, o.rms_norm));
  attn = register_module("attn", CausalSelfAttention(o));
  ln_2 = register_module("ln_2", LayerNorm(o.n_embd, o.bias, o.rms_norm));
  mlp = register_module("mlp", MLP(o));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x0, LayerCache* cache, const RopeAngles& rope,
                                 const torch::Tensor& band) {
  auto x = x0 + attn->forward(ln_1(x0), cache, rope, band);
  return x + mlp(ln_2(x));
}

StepLinear StepLinear::of(const torch::Tensor& weight, const torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  return {weight.detach().t().contiguous(), weight.detach(),
          bias.defined() ? bias.detach() : torch::Tensor()};
}

StepLinear StepLinear::to(torch::ScalarType dtype) const {
  return {t.to(dtype).contiguous(), w.to(dtype).contiguous(), bias};
}

torch::Tensor StepLinear::operator()(const torch::Tensor& x) const {
  const bool same = x.scalar_type() == t.scalar_type();
  const torch::Tensor xin = same ? x : x.to(t.scalar_type());
  torch::Tensor y;
  // One row of a large matrix: the GEMV, which BLAS threads (a one-row GEMM runs on one
  // thread). At our small widths, or on one thread, the GEMM is as fast or faster.
  if (xin.size(0) == 1 && w.numel() >= (int64_t{1} << 17) && at::get_num_threads() > 1) {
    y = torch::mv(w, xin[0]).unsqueeze(0);
  } else if (same && bias.defined()) {
    return torch::addmm(bias, xin, t);
  } else {
    y = torch::mm(xin, t);
  }
  if (!same) y = y.to(x.scalar_type());
  return bias.defined() ? y + bias : y;
}

// The rest of a block after attention, with step weights: x0 + proj(att), then the MLP.
torch::Tensor BlockImpl::step_tail(const torch::Tensor& x0, const torch::Tensor& att, const StepWeights& w) {
  auto x = x0 + w.attn_proj(att);
  return x + w.proj(mlp->act(w.fc(ln_2(x))));
}

torch::Tensor BlockImpl::forward_step(const torch::Tensor& x0, RowsCache& cache, const RowsStep& step,
                                      const StepWeights& w) {
  return step_tail(x0, attn->step_attention(w.attn(ln_1(x0)), cache, step), w);
}

torch::Tensor BlockImpl::forward_prefill(const torch::Tensor& x0, RowsCache& cache, int64_t row,
                                         const StepWeights& w, bool last_only, const RopeAngles& rope) {
  const int64_t T = x0.size(0), C = x0.size(1), H = attn->n_head, hd = C / H;
  auto qkv = w.attn(ln_1(x0));  // (T, 3C)
  auto heads = [&](int64_t i) {
    return qkv.narrow(1, i * C, C).view({T, H, hd}).transpose(0, 1);
  };  // (H, T, D)
  auto q = heads(0), k = heads(1), v = heads(2);
  std::tie(q, k) = attn->position(q, k, rope);
  cache.k[row].narrow(1, 0, T).copy_(k);
  cache.v[row].narrow(1, 0, T).copy_(v);
  auto y = compat::attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), /*causal=*/true, 0.0, false);
  y = y[0].transpose(0, 1).reshape({T, C});  // (T, C)
  if (last_only) return step_tail(x0.narrow(0, T - 1, 1), y.narrow(0, T - 1, 1), w);
  return step_tail(x0, y, w);
}

StepWeights BlockImpl::step_weights() const {
  auto s = [](const torch::nn::Linear& l) { return StepLinear::of(l->weight, l->bias); };
  return {s(attn->c_attn), s(attn->c_proj), s(mlp->c_fc), s(mlp->c_proj)};
}

}  // namespace imagine::nn
