// AdamW (Loshchilov & Hutter) with bias correction, as in torch.optim.AdamW, and the
// warm-up + cosine schedule.
#include "train/optim.h"

#include <algorithm>
#include <cmath>

#include "core/compat.h"
#include "core/error.h"

namespace imagine {

AdamW::AdamW(std::vector<std::pair<std::string, torch::Tensor>> params, AdamWConfig config)
    : config_(config) {
  for (auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    slots_.push_back({name, p, torch::zeros_like(p), torch::zeros_like(p), p.dim() >= 2});
  }
  if (!slots_.empty() && slots_[0].param.is_cuda())
    set_kernel(compat::kHasFusedAdamW ? Kernel::kFused : Kernel::kForEach);
}

void AdamW::set_kernel(Kernel k) {
  IMAGINE_CHECK(k != Kernel::kFused || compat::kHasFusedAdamW, "use the loop or multi-tensor AdamW",
                "this LibTorch has no fused AdamW kernel (it needs 2.1 or later)");
  kernel_ = k;
  step_counts_.clear();
  if (k == Kernel::kFused)
    for (auto& s : slots_)
      step_counts_.push_back(
          torch::full({}, static_cast<double>(step_), s.param.options().dtype(torch::kFloat)));
}

void AdamW::zero_grad() {
  for (auto& s : slots_) {
    if (s.param.grad().defined()) s.param.mutable_grad().zero_();
  }
}

void AdamW::step(double lr) {
  if (kernel_ == Kernel::kLoop)
    step_loop(lr);
  else
    step_multi(lr, torch::Tensor());
}

void AdamW::step(const torch::Tensor& lr) {
  IMAGINE_CHECK(kernel_ == Kernel::kFused && compat::kHasFusedAdamWTensorLr,
                "step with a plain learning rate",
                "a device learning rate needs the fused AdamW kernel of LibTorch 2.2 or later");
  step_multi(0.0, lr);
}

void AdamW::step_loop(double lr) {
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

// The same update over lists: decaying parameters and the rest are two lists, each
// updated by a few multi-tensor launches (or one fused kernel).
void AdamW::step_multi(double lr, const torch::Tensor& lr_tensor) {
  torch::NoGradGuard no_grad;
  step_++;
  for (const bool decay : {true, false}) {
    std::vector<torch::Tensor> p, g, m, v, counts;
    for (size_t i = 0; i < slots_.size(); i++) {
      auto& s = slots_[i];
      if (s.decay != decay || !s.param.grad().defined()) continue;
      p.push_back(s.param);
      g.push_back(s.param.grad());
      m.push_back(s.m);
      v.push_back(s.v);
      if (kernel_ == Kernel::kFused) counts.push_back(step_counts_[i]);
    }
    if (p.empty()) continue;
    const double wd = decay ? config_.weight_decay : 0.0;
    if (kernel_ == Kernel::kFused) {
      at::_foreach_add_(counts, 1);  // the kernel reads the step count; it does not advance it
      if (lr_tensor.defined())
        compat::fused_adamw(p, g, m, v, counts, lr_tensor, config_.beta1, config_.beta2, wd, config_.eps);
      else
        compat::fused_adamw(p, g, m, v, counts, lr, config_.beta1, config_.beta2, wd, config_.eps);
      continue;
    }
    const double bc1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(config_.beta2, static_cast<double>(step_)));
    if (wd != 0) at::_foreach_mul_(p, 1.0 - lr * wd);
    compat::foreach_lerp_(m, g, 1.0 - config_.beta1);
    at::_foreach_mul_(v, config_.beta2);
    at::_foreach_addcmul_(v, g, g, 1.0 - config_.beta2);
    auto denom = at::_foreach_sqrt(v);
    at::_foreach_div_(denom, bc2_sqrt);
    at::_foreach_add_(denom, config_.eps);
    at::_foreach_addcdiv_(p, m, denom, -lr / bc1);
  }
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  std::vector<torch::Tensor> norms;
  if (grads[0].is_cuda()) {
    norms = at::_foreach_norm(grads, 2);
  } else {
    for (const auto& g : grads) norms.push_back(g.norm(2));
  }
  auto total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  auto coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (auto& g : grads) g.mul_(coef);
  return total;
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
      IMAGINE_CHECK(it->second.sizes() == which->sizes(), hint, "optimizer state '", key,
                    "' has the wrong shape");
      which->copy_(it->second);
    }
  }
  step_ = step;
  for (auto& c : step_counts_) c.fill_(static_cast<double>(step));
}

torch::Tensor newton_schulz(const torch::Tensor& g, int steps) {
  TORCH_CHECK(g.dim() == 2 || g.dim() == 3, "newton_schulz: a matrix or a stack of matrices");
  const double a = 3.4445, b = -4.7750, c = 2.0315;
  auto x = g.dim() == 2 ? g.to(torch::kFloat).unsqueeze(0) : g.to(torch::kFloat);
  const bool tall = x.size(1) > x.size(2);
  if (tall) x = x.transpose(1, 2);  // iterate on the wide orientation: X X^T is the smaller Gram matrix
  x = x / (x.square().sum({1, 2}, /*keepdim=*/true).sqrt() + 1e-7);  // each matrix's Frobenius norm
  for (int i = 0; i < steps; i++) {
    auto A = torch::bmm(x, x.transpose(1, 2));
    auto B = torch::baddbmm(A, A, A, b, c);  // b A + c A^2
    x = torch::baddbmm(x, B, x, a, 1.0);     // a X + B X
  }
  if (tall) x = x.transpose(1, 2);
  return g.dim() == 2 ? x[0] : x;
}

Muon::Muon(std::vector<std::pair<std::string, torch::Tensor>> params, MuonConfig config) : config_(config) {
  for (auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    IMAGINE_CHECK(p.dim() == 2, "", "Muon takes matrices only; '", name, "' has ", p.dim(), " dimensions");
    auto same = std::find_if(groups_.begin(), groups_.end(), [&](const std::vector<size_t>& g) {
      return slots_[g[0]].param.sizes() == p.sizes() && slots_[g[0]].param.device() == p.device();
    });
    if (same == groups_.end()) same = groups_.insert(groups_.end(), std::vector<size_t>{});
    same->push_back(slots_.size());
    slots_.push_back({name, p, torch::zeros_like(p)});
  }
}

void Muon::zero_grad() {
  for (auto& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad().zero_();
}

void Muon::step(double lr) {
  torch::NoGradGuard no_grad;
  step_++;
  for (const auto& group : groups_) {
    // The matrices of one shape are orthogonalised together, one batched iteration.
    std::vector<size_t> live;
    std::vector<torch::Tensor> updates;
    for (size_t i : group) {
      Slot& s = slots_[i];
      const auto& g = s.param.grad();
      if (!g.defined()) continue;
      s.momentum.lerp_(g, 1.0 - config_.momentum);  // m = beta m + (1 - beta) g
      updates.push_back(config_.nesterov ? g.lerp(s.momentum, config_.momentum) : s.momentum);
      live.push_back(i);
    }
    if (live.empty()) continue;
    auto o = newton_schulz(torch::stack(updates), config_.ns_steps);
    for (size_t j = 0; j < live.size(); j++) {
      Slot& s = slots_[live[j]];
      const double scale = std::sqrt(
          std::max(1.0, static_cast<double>(s.param.size(0)) / static_cast<double>(s.param.size(1))));
      if (config_.weight_decay != 0) s.param.mul_(1.0 - lr * config_.weight_decay);
      s.param.add_(o[static_cast<int64_t>(j)].to(s.param.scalar_type()), -lr * scale);
    }
  }
}

std::map<std::string, torch::Tensor> Muon::state() const {
  std::map<std::string, torch::Tensor> out;
  for (auto& s : slots_) out["muon_momentum." + s.name] = s.momentum;
  return out;
}

void Muon::load_state(const std::map<std::string, torch::Tensor>& state, int64_t step) {
  const char* hint = "the trainer state does not match this model; start without --resume";
  torch::NoGradGuard no_grad;
  for (auto& s : slots_) {
    auto it = state.find("muon_momentum." + s.name);
    IMAGINE_CHECK(it != state.end(), hint, "optimizer state lacks 'muon_momentum.", s.name,
                  "' (was the run trained with --optimizer muon?)");
    IMAGINE_CHECK(it->second.sizes() == s.momentum.sizes(), hint, "Muon state of '", s.name,
                  "' has the wrong shape");
    s.momentum.copy_(it->second);
  }
  step_ = step;
}

bool muon_takes(const std::string& name, const torch::Tensor& p) {
  if (p.dim() != 2) return false;
  for (const char* prefix : {"wte.", "wpe.", "lm_head."})
    if (name.rfind(prefix, 0) == 0) return false;
  return true;
}

std::pair<NamedParams, NamedParams> split_for_muon(const NamedParams& params) {
  std::pair<NamedParams, NamedParams> out;
  for (const auto& [name, p] : params) (muon_takes(name, p) ? out.first : out.second).push_back({name, p});
  return out;
}

Schedule parse_schedule(const std::string& name) {
  if (name == "cosine") return Schedule::kCosine;
  if (name == "trapezoid") return Schedule::kTrapezoid;
  throw UsageError("unknown schedule '" + name + "'", "use --schedule cosine or trapezoid");
}

const char* schedule_name(Schedule s) { return s == Schedule::kCosine ? "cosine" : "trapezoid"; }

double lr_at(int64_t step, double lr, double min_lr, int64_t warmup, int64_t decay_steps, Schedule schedule,
             double cooldown) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup + 1);
  if (step >= decay_steps) return min_lr;
  if (schedule == Schedule::kTrapezoid) {
    const double start =
        std::max(static_cast<double>(warmup), (1.0 - cooldown) * static_cast<double>(decay_steps));
    if (static_cast<double>(step) < start) return lr;
    const double ratio =
        (static_cast<double>(step) - start) / std::max(1.0, static_cast<double>(decay_steps) - start);
    return lr + (min_lr - lr) * ratio;
  }
  const double ratio =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, decay_steps - warmup));
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return min_lr + coeff * (lr - min_lr);
}

}  // namespace imagine
