// GPT: a decoder-only Transformer. By default GPT-2's: pre-LayerNorm, learned positions,
// GELU MLP, output head tied to the token embedding, dropout. Options (config.json, each
// independent): rotary positions, RMSNorm, QK-norm, ReLU² MLP, an untied output head,
// zero-initialised output projections, logit soft-capping. One implementation serves text
// and music tokens. Leaves out: grouped-query attention.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/attention.h"

namespace imagine {

struct GPTConfig {
  int64_t vocab_size = 256;  // tokens in the tokenizer
  int64_t block_size = 64;   // context length in tokens
  int64_t n_layer = 4;       // Transformer blocks
  int64_t n_head = 4;        // attention heads per block
  int64_t n_embd = 128;      // embedding width; divisible by n_head
  double dropout = 0.0;      // on embeddings, attention output and MLP output while training
  bool bias = true;          // biases in Linear and LayerNorm layers
  // Options; a config.json without them (written before they existed) gets these defaults.
  std::string pos = "learned";     // "learned" (wpe) or "rope" (rotary, no position weights)
  double rope_base = 10000;        // RoPE's frequency base
  std::string norm = "layernorm";  // "layernorm" or "rmsnorm"
  bool qk_norm = false;            // RMS-normalise queries and keys per head
  std::string mlp = "gelu";        // "gelu" or "relu2"
  bool tied_head = true;           // output head = the token embedding; false: its own matrix
  bool zero_init = false;          // output projections (c_proj, an untied head) start at zero
  double logit_softcap = 0;        // logits -> cap * tanh(logits / cap); 0 = off

  // Rotary positions: no position weights, and a context that can slide (the KV cache is a
  // ring holding the newest block_size positions).
  bool rotary() const { return pos == "rope"; }

  nn::BlockOptions block_options() const;
  // The options in words ("learned positions, LayerNorm, GELU MLP, tied head"), for `info`.
  std::string describe_options() const;
  nlohmann::json to_json() const;
  static GPTConfig from_json(const nlohmann::json& j);  // validates
  void validate() const;                                // throws imagine::Error
};

// One LayerCache per block: the KV cache of one sequence, grown as it is encoded (prefill).
using KVCache = std::vector<nn::LayerCache>;

// The decoding cache: keys and values of up to rows() sequences, preallocated per block to
// the whole context ((rows, H, block_size, D) each), so a decoding step writes in place and
// allocates no cache per token. length[r] is how many positions row r has encoded (a RoPE
// row may go past block_size: its cache is a ring holding the newest). It also holds
// the weights in the layout the step multiplies by (copies made with the cache: make a new
// cache after training further).
struct BatchCache {
  std::vector<nn::RowsCache> layers;
  std::vector<nn::StepWeights> weights;  // per block
  nn::StepLinear head;                   // the output head (vocab, C) and its transpose
  std::vector<int64_t> length;
  int64_t rows() const { return static_cast<int64_t>(length.size()); }
  // Row `to` takes over row `from` (which keeps its stale values: it is free now).
  void move(int64_t from, int64_t to);
};

struct GPTImpl : torch::nn::Module {
  explicit GPTImpl(const GPTConfig& config);

  // idx: (B, T) token ids -> logits (B, T, vocab). With a cache, idx holds only new tokens,
  // positions continue from the cache, and the cache is extended. Positions must stay below
  // block_size (the generator slides the window), except for a RoPE model without a cache:
  // a longer sequence is read with sliding-window attention (each position sees the last
  // block_size), which is what its ring cache computes when decoding past the context.
  torch::Tensor forward(const torch::Tensor& idx, KVCache* cache = nullptr);
  // One decoding step for B sequences at once: tokens[b] is appended to row rows[b] of
  // `cache` at that row's own position -> next-token logits (B, vocab). The batched decode
  // of the server's slots. A learned-position row must have room (length < block_size); a RoPE
  // row overwrites its oldest entry when full (see nn::RowsStep).
  torch::Tensor forward_step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& rows,
                             BatchCache& cache);
  // Encodes a sequence (at most block_size tokens, from position 0) into row `row` of
  // `cache`, replacing what it held -> the next-token logits (vocab). How a decoding slot
  // starts, and how its window slides.
  torch::Tensor prefill_row(const std::vector<int64_t>& tokens, int64_t row, BatchCache& cache);
  // Mean cross-entropy (nats/token) of predicting targets (B, T) from idx (B, T).
  torch::Tensor loss(const torch::Tensor& idx, const torch::Tensor& targets);

  KVCache new_cache() const { return KVCache(config.n_layer); }
  // `weights`: the decoding step's matrices in float32 (exact) or bfloat16 (half the bytes
  // read per token; fast where the CPU has AVX512-BF16 / AMX).
  BatchCache new_batch_cache(int64_t rows, torch::ScalarType weights = torch::kFloat) const;
  int64_t num_parameters(bool exclude_positions = true) const;

  // The output head's matrix (vocab, C): wte's, or lm_head's when untied.
  const torch::Tensor& head_weight() const { return config.tied_head ? wte->weight : lm_head->weight; }
  // Logit soft-capping (identity when off): float32 logits.
  torch::Tensor cap(const torch::Tensor& logits) const;

  GPTConfig config;
  torch::nn::Embedding wte{nullptr}, wpe{nullptr};  // wpe: learned positions only
  torch::nn::Linear lm_head{nullptr};               // untied head only
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList h{nullptr};
  std::vector<nn::Block> blocks;  // the same modules as h, typed
  nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(GPT);

// A GPT with `config`, weights loaded (and checked) from a safetensors file, on `device`, in
// evaluation mode: how every GPT family loads its model directory.
GPT load_gpt(const GPTConfig& config, const std::string& weights_path, torch::Device device);

}  // namespace imagine
