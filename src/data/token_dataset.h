// A token stream split into train and validation parts, sampled as (input, target) windows
// at random offsets (nanoGPT's get_batch). Leaves out: document boundaries, shuffling epochs.
#pragma once
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "core/runtime.h"

namespace imagine {

class TokenDataset {
 public:
  TokenDataset(const std::vector<int64_t>& tokens, torch::Device device);
  int64_t size() const { return tokens_.size(0); }
  // (x, y), each (batch, block): y is x shifted by one token.
  std::pair<torch::Tensor, torch::Tensor> batch(Rng& rng, int64_t batch, int64_t block) const;

 private:
  torch::Tensor tokens_;  // (N,) int64 on CPU
  torch::Device device_;
};

}  // namespace imagine
