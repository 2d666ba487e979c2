// Loading image models and the latent operations. See image_model.h.
#include "models/image_model.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

nlohmann::json image_model_config(const ImageArch& arch, const std::vector<std::string>& classes,
                                  const nlohmann::json& dataset) {
  return {{"format", kModelFormat}, {"format_version", kModelFormatVersion}, {"family", kImageFamily},
          {"architecture", arch.to_json()}, {"classes", classes}, {"dataset", dataset}};
}

ImageModel load_image_model(const std::string& dir, torch::Device device, const std::string& which) {
  ImageModel m;
  m.dir = dir;
  m.device = device;
  m.config = read_model_config(dir, kImageFamily, "an image model");
  m.arch = ImageArch::from_json(json_field(m.config, "architecture", dir + "/config.json"));
  if (m.config.contains("classes") && m.config["classes"].is_array())
    for (auto& c : m.config["classes"]) m.classes.push_back(c.get<std::string>());
  const std::string weights = weights_file(dir, which);
  const auto tensors = load_safetensors(weights).tensors;
  if (m.arch.family == "vae") {
    m.vae = VAE(m.arch);
    load_module_weights(*m.vae, tensors, weights);
    m.vae->to(device);
    m.vae->eval();
  } else {
    m.gan = GAN(m.arch);
    load_module_weights(*m.gan, tensors, weights);
    m.gan->to(device);
    m.gan->eval();
  }
  return m;
}

torch::Tensor ImageModel::decode(const torch::Tensor& z, const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  auto zz = z.to(device);
  auto ll = labels.defined() ? labels.to(device) : labels;
  if (vae) return vae->decode(zz, ll).to(torch::kCPU, torch::kFloat32);
  return (gan->g_ema->forward(zz, ll).to(torch::kCPU, torch::kFloat32) + 1.0) * 0.5;
}

int64_t ImageModel::class_index(const std::string& name) const {
  if (!conditional())
    throw UsageError("this model is not class-conditional", "drop --class: this model was trained without labels");
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (size_t i = 0; i < classes.size(); i++)
    if (lower(classes[i]) == lower(name)) return static_cast<int64_t>(i);
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    const int64_t k = std::stoll(name.substr(0, 9));
    if (k >= 0 && k < arch.classes) return k;
  }
  std::string names;
  for (auto& c : classes) names += (names.empty() ? "" : ", ") + c;
  throw UsageError("unknown class '" + name + "'", "classes: " + names + " (or an index 0.." +
                                                        std::to_string(arch.classes - 1) + ")");
}

torch::Tensor seeded_latent(uint64_t seed, int64_t dim, double truncation) {
  Rng rng(seed ^ 0x1A7E27ULL);
  std::vector<float> v(dim);
  // Box-Muller on our own uniform generator: identical on every platform.
  auto normal = [&]() {
    double u1 = rng.uniform();
    while (u1 <= 0) u1 = rng.uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * rng.uniform());
  };
  for (auto& x : v) {
    double s = normal();
    for (int tries = 0; truncation > 0 && std::fabs(s) > truncation && tries < 1000; tries++) s = normal();
    if (truncation > 0 && std::fabs(s) > truncation) s = 0;
    x = static_cast<float>(s);
  }
  return torch::tensor(v);
}

Encoded encode_images(ImageModel& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t steps,
                      uint64_t seed, const std::function<void(const std::string&)>& log) {
  Encoded out;
  auto x = images.to(m.device);
  auto y = labels.defined() ? labels.to(m.device) : labels;
  auto finish = [&](const torch::Tensor& z) {
    out.z = z.detach().to(torch::kCPU);
    auto r = m.decode(out.z, labels);
    out.mse = (r - images.to(torch::kCPU)).pow(2).mean().item<double>();
    out.psnr = 10.0 * std::log10(1.0 / std::max(out.mse, 1e-12));
    return out;
  };
  if (m.vae) {
    torch::NoGradGuard no_grad;
    return finish(m.vae->encode(x, y).first);
  }
  // GAN inversion: the generator has no encoder, so search for the latent. A few random
  // starts guard against a poor local minimum; the prior term keeps z plausible.
  const int64_t n = x.size(0), dim = m.arch.latent_dim, starts = 4;
  auto target = (x * 2.0 - 1.0).repeat({starts, 1, 1, 1});
  auto yy = y.defined() ? y.repeat({starts}) : y;
  std::vector<torch::Tensor> init;
  for (int64_t s = 0; s < starts; s++)
    for (int64_t i = 0; i < n; i++) init.push_back(seeded_latent(seed + 7919 * s + i, dim));
  auto z = torch::stack(init).to(m.device).requires_grad_(true);
  torch::optim::Adam opt({z}, torch::optim::AdamOptions(0.05));
  auto& g = m.gan->g_ema;
  for (auto& p : g->parameters()) p.set_requires_grad(false);
  for (int64_t t = 0; t < steps; t++) {
    opt.zero_grad();
    auto per = (g->forward(z, yy) - target).pow(2).flatten(1).mean(1) + 1e-3 * z.pow(2).mean(1);
    per.sum().backward();
    opt.step();
    if (log && (t + 1) % 100 == 0) log(str("  latent search ", t + 1, "/", steps, ": mse ", per.mean().item<double>() / 4));
  }
  torch::NoGradGuard no_grad;
  auto err = (g->forward(z, yy) - target).pow(2).flatten(1).mean(1).view({starts, n});
  auto best = err.argmin(0);  // [n]
  auto zs = z.detach().view({starts, n, dim});
  std::vector<torch::Tensor> chosen;
  for (int64_t i = 0; i < n; i++) chosen.push_back(zs[best[i].item<int64_t>()][i]);
  return finish(torch::stack(chosen));
}

torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t) {
  auto na = a / a.norm().clamp_min(1e-12), nb = b / b.norm().clamp_min(1e-12);
  const double dot = std::clamp((na * nb).sum().item<double>(), -1.0, 1.0);
  const double omega = std::acos(dot);
  if (std::sin(omega) < 1e-6) return (1.0 - t) * a + t * b;
  return (std::sin((1.0 - t) * omega) * a + std::sin(t * omega) * b) / std::sin(omega);
}

}  // namespace imagine
