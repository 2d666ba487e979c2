// Named tensors of a module (parameters and buffers) for checkpoints, and the checked
// reverse operation. Every family saves and loads its weights through these two.
#pragma once
#include <map>
#include <string>

#include <torch/torch.h>

namespace imagine {

std::map<std::string, torch::Tensor> module_weights(const torch::nn::Module& m);
// Copies `w` into the module. Every name must be present with the same shape and dtype,
// and no extra names may appear; otherwise imagine::Error naming `what`.
void load_module_weights(torch::nn::Module& m, const std::map<std::string, torch::Tensor>& w,
                         const std::string& what);

}  // namespace imagine
