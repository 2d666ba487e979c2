// Multi-head causal self-attention with an optional KV cache, and the pre-norm Transformer
// block built on it, with the options of BlockOptions (RMSNorm, QK-norm, RoPE, ReLU²).
// Shared by every Transformer family (text, music).
#pragma once
#include <torch/torch.h>

#include <utility>
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

// Rotary position embeddings: the cos and sin of position x frequency, (..., D/2) for the
// positions `pos` (any shape, long). Computed in double, returned as float32.
struct RopeAngles {
  torch::Tensor cos, sin;
  bool defined() const { return cos.defined(); }
};
RopeAngles rope_angles(const torch::Tensor& pos, int64_t head_dim, double base);
// Rotates the last dimension of x (..., D) in two halves by angles broadcastable to
// (..., D/2): (x1, x2) -> (x1 cos - x2 sin, x1 sin + x2 cos). Attention scores between a
// rotated query at position p and key at q then depend on p - q only.
torch::Tensor rope_rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
// x / rms(x) over the last dimension, in float32, returned in x's dtype (QK-norm).
torch::Tensor rms_normalize(const torch::Tensor& x, double eps = 1e-6);

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
// row rows[b], its new token is at position pos[b] (what RoPE rotates by) and goes into
// cache slot slot[b], and it attends over the slots before mask says stop. Learned
// positions: slot = pos and the row attends over 0..pos. RoPE rows may run past the
// context: the cache is a ring (slot = pos mod block_size) that overwrites its oldest
// entry, which attention over rotated keys allows because scores depend only on relative
// positions. Built once per step and shared by every layer.
struct RowsStep {
  torch::Tensor rows, pos, slot;  // (B) long
  RopeAngles rope;                // the angles of pos, (B, D/2), for RoPE models
  bool prefix = false;            // rows are 0..B-1: the cache is read through views, not gathered
  int64_t span = 0;               // the slots read: max over rows of min(pos + 1, block_size)
  torch::Tensor mask;             // (B, 1, 1, span) additive, 0 / -inf; undefined when every row reads all
};

// What a Transformer block is made of. The defaults are GPT-2's (and every model directory
// written before these options existed): LayerNorm, learned positions (added by the model,
// not the block), GELU MLP.
struct BlockOptions {
  int64_t n_embd = 128, n_head = 4;
  double dropout = 0.0;
  bool bias = true;
  bool rms_norm = false;     // RMSNorm (a learned scale, no mean, no bias) instead of LayerNorm
  bool qk_norm = false;      // queries and keys RMS-normalised per head before attention
  bool rope = false;         // rotary position embeddings on queries and keys
  double rope_base = 10000;  // RoPE's frequency base
  bool relu2 = false;        // MLP activation relu(x)^2 instead of GELU
};

// LayerNorm with an optional bias (LibTorch's always has one; `bias=false` drops it
// everywhere, as in nanoGPT), or RMSNorm (`rms`: a learned scale only).
struct LayerNormImpl : torch::nn::Module {
  LayerNormImpl(int64_t n, bool bias, bool rms = false);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t n;
  bool rms;
  torch::Tensor weight, bias;  // bias undefined when disabled (always with rms)
};
TORCH_MODULE(LayerNorm);

// Causal attention limited to the last `window` positions, as an additive (T, T) mask: query
// i sees keys i - window < j <= i. What a RoPE model's ring cache computes past its context.
torch::Tensor sliding_window_mask(int64_t T, int64_t window, const torch::TensorOptions& options);

struct CausalSelfAttentionImpl : torch::nn::Module {
  explicit CausalSelfAttentionImpl(const BlockOptions& o);
  // x: (B, T, C). With a cache, x holds only the new tokens and the cache is extended.
  // `rope`: the angles of x's positions, (T, D/2); needed (only) with o.rope. `band`: an
  // additive (T, T) mask replacing the causal one (sliding-window attention over a sequence
  // longer than the context; see sliding_window_mask), without a cache.
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr, const RopeAngles& rope = {},
                        const torch::Tensor& band = {});
  // One new token for each of B sequences held in a preallocated cache: qkv is (B, 3C), the
  // step's c_attn output; the keys and values are written into `cache` where `step` says,
  // and each row attends over its own positions only -> (B, C), before c_proj.
  torch::Tensor step_attention(const torch::Tensor& qkv, RowsCache& cache, const RowsStep& step) const;
  // QK-norm and RoPE on queries or keys (or both side by side), (..., D) with angles
  // broadcastable to (..., D/2).
  torch::Tensor place(torch::Tensor x, const RopeAngles& rope) const;
  // place() on q and k, (..., T, D) with angles broadcastable to (..., T, D/2).
  std::pair<torch::Tensor, torch::Tensor> position(torch::Tensor q, torch::Tensor k,
                                                   const RopeAngles& rope) const;

  int64_t n_head, n_embd;
  double dropout;
  bool qk_norm, rope;
  torch::nn::Linear c_attn{nullptr}, c_proj{nullptr};
  torch::nn::Dropout resid_drop{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

struct MLPImpl : torch::nn::Module {
  explicit MLPImpl(const BlockOptions& o);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor act(const torch::Tensor& x) const;  // GELU, or relu(x)^2
  bool relu2;
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
  torch::nn::Dropout drop{nullptr};
};
TORCH_MODULE(MLP);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(const BlockOptions& o);
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr, const RopeAngles& rope = {},
                        const torch::Tensor& band = {});
  // A decoding step (evaluation only: no dropout): x (B, C), one token per row.
  torch::Tensor forward_step(const torch::Tensor& x, RowsCache& cache, const RowsStep& step,
                             const StepWeights& w);
  // Encodes one sequence x (T, C) from position 0, writing its keys and values into row
  // `row` of `cache` -> (T, C), or (1, C) for the last position alone when `last_only`.
  torch::Tensor forward_prefill(const torch::Tensor& x, RowsCache& cache, int64_t row, const StepWeights& w,
                                bool last_only, const RopeAngles& rope = {});
  StepWeights step_weights() const;
  torch::Tensor step_tail(const torch::Tensor& x0, const torch::Tensor& att, const StepWeights& w);
  LayerNorm ln_1{nullptr}, ln_2{nullptr};
  CausalSelfAttention attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(Block);

}  // namespace imagine::nn
