// See weights.h.
#include "nn/weights.h"

#include "core/error.h"

namespace imagine {

std::map<std::string, torch::Tensor> module_weights(const torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

void load_module_weights(torch::nn::Module& m, const std::map<std::string, torch::Tensor>& w,
                         const std::string& what) {
  const std::string hint = "the weights do not belong to this architecture; the model directory may be damaged";
  torch::NoGradGuard no_grad;
  auto mine = module_weights(m);
  for (auto& [name, t] : w)
    IMAGINE_CHECK(mine.count(name), hint, what, " has an unexpected tensor '", name, "'");
  for (auto& [name, t] : mine) {
    auto it = w.find(name);
    IMAGINE_CHECK(it != w.end(), hint, what, " lacks the tensor '", name, "'");
    IMAGINE_CHECK(it->second.sizes() == t.sizes(), hint, what, ": tensor '", name, "' has shape ",
                  it->second.sizes(), ", expected ", t.sizes());
    IMAGINE_CHECK(it->second.scalar_type() == t.scalar_type(), hint, what, ": tensor '", name, "' has dtype ",
                  it->second.scalar_type(), ", expected ", t.scalar_type());
    t.copy_(it->second);
  }
}

}  // namespace imagine
