// AdamW (Loshchilov & Hutter) with bias correction, as in torch.optim.AdamW, and the
// warm-up + cosine schedule.
#include "train/optim.h"

#include <cmath>

#include "core/error.h"

namespace imagine {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWConfig config) : config_(config) {
  for (auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    slots_.push_back({name, p, torch::zeros_like(p), torch::zeros_like(p), p.dim() >= 2});
  }
}

void AdamW::zero_grad() {
  for (auto& s : slots_) {
    if (s.param.grad().defined()) s.param.mutable_grad().zero_();
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  step_++;
  const double bc1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  const double step_size = lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (auto& s : slots_) {
    const auto& g = s.param.grad();
    if (!g.defined()) continue;
    if (s.decay && config_.weight_decay != 0) s.param.mul_(1.0 - lr * config_.weight_decay);
    s.m.lerp_(g, 1.0 - config_.beta1);
    s.v.mul_(config_.beta2).addcmul_(g, g, 1.0 - config_.beta2);
    auto denom = (s.v.sqrt() / bc2_sqrt).add_(config_.eps);
    s.param.addcdiv_(s.m, denom, -step_size);
  }
}

std::map<std::string, torch::Tensor> AdamW::state() const {
  std::map<std::string, torch::Tensor> out;
  for (auto& s : slots_) {
    out["exp_avg." + s.name] = s.m;
    out["exp_avg_sq." + s.name] = s.v;
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state, int64_t step) {
  const char* hint = "the trainer state does not match this model; start without --resume";
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    for (auto* which : {&s.m, &s.v}) {
      const std::string key = (which == &s.m ? "exp_avg." : "exp_avg_sq.") + s.name;
      auto it = state.find(key);
      IMAGINE_CHECK(it != state.end(), hint, "optimizer state lacks '", key, "'");
      IMAGINE_CHECK(it->second.sizes() == which->sizes(), hint, "optimizer state '", key, "' has the wrong shape");
      which->copy_(it->second);
    }
  }
  step_ = step;
}

double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t decay_steps) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  if (step >= decay_steps) return min_lr;
  const double ratio = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, decay_steps - warmup));
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return min_lr + coeff * (lr - min_lr);
}

}  // namespace imagine
