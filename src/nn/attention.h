// Multi-head causal self-attention with an optional KV cache, and the pre-LayerNorm
// Transformer block built on it. Shared by every Transformer family (text, music).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace imagine::nn {

// Keys and values of one layer for the tokens seen so far: (B, H, T, D) each.
struct LayerCache {
  torch::Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

// Keys and values of one layer for several sequences, preallocated to the whole context:
// (rows, H, block, D) each, zero-filled. Which positions of a row are filled is the
// owner's business (BatchCache in models/gpt.h keeps each row's length).
struct RowsCache {
  torch::Tensor k, v;
};

// One Linear layer as a decoding step multiplies by it, in the layout each case wants:
// several rows x (B, in) @ t with t transposed to (in, out) and contiguous, a plain GEMM
// (LibTorch's Linear multiplies by the transposed weight, which BLAS repacks on every call
// once B > 1); a single row of a large matrix on several threads as w (out, in) @ x, a
// GEMV, which BLAS spreads over the threads where a one-row GEMM runs on one (the step is
// bound by reading the weights: 1.6x faster on 2 threads for the 10.7M model). `t` is a
// copy made for the decoder; float32 `w` shares the module's storage. Bias undefined when
// the model has none.
struct StepLinear {
  torch::Tensor t, w, bias;
  static StepLinear of(const torch::Tensor& weight, const torch::Tensor& bias);
  // The matrices in `dtype` (bfloat16 inference weights; the bias stays float32).
  StepLinear to(torch::ScalarType dtype) const;
  // x (B, in) -> (B, out) in x's dtype; with other-precision weights the activations are
  // rounded to the weights' type and the result comes back as x's.
  torch::Tensor operator()(const torch::Tensor& x) const;
};

struct StepWeights {
  StepLinear attn, attn_proj, fc, proj;
  StepWeights to(torch::ScalarType dtype) const {
    return {attn.to(dtype), attn_proj.to(dtype), fc.to(dtype), proj.to(dtype)};
  }
};

// Where one decoding step of B sequences reads and writes a RowsCache: sequence b lives in
// row rows[b], its new token goes at position pos[b], and it attends over positions
// 0..pos[b]. Built once per step and shared by every layer.
struct RowsStep {
  torch::Tensor rows, pos;  // (B) long
  bool prefix = false;      // rows are 0..B-1: the cache is read through views, not gathered
  int64_t span = 0;         // max(pos) + 1: the positions read
  torch::Tensor mask;       // (B, 1, 1, span) additive, 0 / -inf; undefined when every pos is equal
};

// LayerNorm with an optional bias (LibTorch's always has one; `bias=false` drops it
// everywhere, as in nanoGPT).
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t n, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t n;
  torch::Tensor weight, bias;  // bias undefined when disabled
};
TORCH_MODULE(LayerNorm);

struct CausalSelfAttentionImpl : torch::nn::Module {
  CausalSelfAttentionImpl(int64_t n_embd, int64_t n_head, double dropout, bool bias);
  // x: (B, T, C). With a cache, x holds only the new tokens and the cache is extended.
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr);
  // One new token for each of B sequences held in a preallocated cache: qkv is (B, 3C), the
  // step's c_attn output; the keys and values are written into `cache` where `step` says,
  // and each row attends over its own positions only -> (B, C), before c_proj.
  torch::Tensor step_attention(const torch::Tensor& qkv, RowsCache& cache, const RowsStep& step) const;

  int64_t n_head, n_embd;
  double dropout;
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
  torch::nn::Dropout resid_drop{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

struct MLPImpl : torch::nn::Module {
  MLPImpl(int64_t n_embd, double dropout, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(MLP);

struct BlockImpl : torch::nn::Module {
  BlockImpl(int64_t n_embd, int64_t n_head, double dropout, bool bias);
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr);
  // A decoding step (evaluation only: no dropout): x (B, C), one token per row.
  torch::Tensor forward_step(const torch::Tensor& x, RowsCache& cache, const RowsStep& step,
                             const StepWeights& w);
  // Encodes one sequence x (T, C) from position 0, writing its keys and values into row
  // `row` of `cache` -> (T, C), or (1, C) for the last position alone when `last_only`.
  torch::Tensor forward_prefill(const torch::Tensor& x, RowsCache& cache, int64_t row, const StepWeights& w,
                                bool last_only);
  StepWeights step_weights() const;
  torch::Tensor step_tail(const torch::Tensor& x0, const torch::Tensor& att, const StepWeights& w);
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

}  // namespace imagine::nn
