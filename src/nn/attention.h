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
  // One new token for each of B sequences, each with its own cache (of any length): x is
  // (B, 1, C) and row b attends over caches[b]. The projections run batched; B = 1 does
  // exactly what forward(x, caches[0]) does.
  torch::Tensor forward_rows(const torch::Tensor& x, const std::vector<LayerCache*>& caches);

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
  torch::Tensor forward_rows(const torch::Tensor& x, const std::vector<LayerCache*>& caches);
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);


}  // namespace imagine::nn
