// See vae.h. The layer plan mirrors bench/python/vae_reference.py exactly, so the speed
// comparison runs the identical network.
#include "models/vae.h"

#include <cmath>

#include "core/error.h"
#include "nn/upconv.h"

namespace imagine {

namespace F = torch::nn::functional;

torch::Tensor with_label_planes(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes) {
  if (classes == 0) return x;
  IMAGINE_CHECK(labels.defined(), "pass a class (--class)", "this model is class-conditional and needs labels");
  auto onehot = F::one_hot(labels, classes).to(x.dtype());
  return torch::cat({x, onehot.view({-1, classes, 1, 1}).expand({-1, classes, x.size(2), x.size(3)})}, 1);
}

torch::Tensor with_label_vector(const torch::Tensor& z, const torch::Tensor& labels, int64_t classes) {
  if (classes == 0) return z;
  IMAGINE_CHECK(labels.defined(), "pass a class (--class)", "this model is class-conditional and needs labels");
  return torch::cat({z, F::one_hot(labels, classes).to(z.dtype())}, 1);
}

VAEImpl::VAEImpl(const ImageArch& a) : arch(a) {
  arch.validate();
  const int64_t n = arch.stages(), b = arch.base();
  // Encoder: stride-2 4x4 convolutions, full resolution -> base.
  encoder = torch::nn::Sequential();
  int64_t in = arch.channels + arch.classes;
  for (int64_t i = 0; i < n; i++) {
    const int64_t out = arch.stage_channels(i);
    encoder->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 4).stride(2).padding(1)));
    encoder->push_back(torch::nn::ReLU());
    in = out;
  }
  const int64_t top = arch.stage_channels(n - 1);
  enc_out = register_module("enc_out", torch::nn::Linear(top * b * b, 2 * arch.latent_dim));
  register_module("encoder", encoder);
  // Decoder: the mirror image with transposed convolutions.
  dec_in = register_module("dec_in", torch::nn::Linear(arch.latent_dim + arch.classes, top * b * b));
  decoder = torch::nn::Sequential();
  decoder->push_back(torch::nn::ReLU());
  decoder->push_back(torch::nn::Unflatten(torch::nn::UnflattenOptions(1, {top, b, b})));
  for (int64_t i = n - 1; i >= 0; i--) {
    const int64_t cin = arch.stage_channels(i);
    const int64_t cout = i == 0 ? arch.channels : arch.stage_channels(i - 1);
    decoder->push_back(nn::UpConv2d(cin, cout, 4, 2, 1, true));
    if (i > 0) decoder->push_back(torch::nn::ReLU());
  }
  register_module("decoder", decoder);
  if (arch.likelihood == "gaussian") log_scale = register_parameter("log_scale", torch::full({arch.channels}, -2.0));
}

std::pair<torch::Tensor, torch::Tensor> VAEImpl::encode(const torch::Tensor& x, const torch::Tensor& labels) {
  auto h = encoder->forward(with_label_planes(x, labels, arch.classes)).flatten(1);
  auto stats = enc_out->forward(h);
  auto mu = stats.narrow(1, 0, arch.latent_dim);
  // Clamped so a bad step cannot overflow exp(): sigma in [e^-15, e^5].
  auto logvar = stats.narrow(1, arch.latent_dim, arch.latent_dim).clamp(-30.0, 10.0);
  return {mu, logvar};
}

torch::Tensor VAEImpl::decode_params(const torch::Tensor& z, const torch::Tensor& labels) {
  return decoder->forward(dec_in->forward(with_label_vector(z, labels, arch.classes)));
}

torch::Tensor VAEImpl::decode(const torch::Tensor& z, const torch::Tensor& labels) {
  auto p = decode_params(z, labels);
  return arch.likelihood == "bernoulli" ? torch::sigmoid(p) : p.clamp(0.0, 1.0);
}

torch::Tensor VAEImpl::nll(const torch::Tensor& params, const torch::Tensor& x) {
  const auto p = params.to(torch::kFloat32);
  if (arch.likelihood == "bernoulli")
    return F::binary_cross_entropy_with_logits(p, x, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kNone))
        .flatten(1)
        .sum(1);
  // Discretised Gaussian over the 256 levels k/255: mass of the bin [x - 1/510, x + 1/510],
  // the edge bins extended to -inf / +inf so the 256 masses sum to one.
  const double half = 0.5 / 255.0;
  auto scale = torch::exp(log_scale).view({1, -1, 1, 1});
  auto cdf = [&](const torch::Tensor& v) { return 0.5 * (1.0 + torch::erf((v - p) / (scale * std::sqrt(2.0)))); };
  auto upper = torch::where(x > 1.0 - half, torch::ones_like(x), cdf(x + half));
  auto lower = torch::where(x < half, torch::zeros_like(x), cdf(x - half));
  auto mass = (upper - lower).clamp_min(1e-12);
  return -torch::log(mass).flatten(1).sum(1);
}

VAEOutput VAEImpl::forward(const torch::Tensor& x, const torch::Tensor& labels) {
  auto [mu, logvar] = encode(x, labels);
  auto z = mu + torch::exp(0.5 * logvar) * torch::randn_like(mu);
  VAEOutput o;
  o.recon_nll = nll(decode_params(z, labels), x);
  o.kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1);
  o.mu = mu;
  o.logvar = logvar;
  return o;
}

torch::Tensor VAEImpl::iw_nll(const torch::Tensor& x, const torch::Tensor& labels, int64_t k) {
  auto [mu, logvar] = encode(x, labels);
  const double log2pi = std::log(2.0 * M_PI);
  std::vector<torch::Tensor> log_w;
  for (int64_t i = 0; i < k; i++) {
    auto eps = torch::randn_like(mu);
    auto z = mu + torch::exp(0.5 * logvar) * eps;
    auto log_px_z = -nll(decode_params(z, labels), x);
    auto log_pz = -0.5 * (z.pow(2) + log2pi).sum(1);
    auto log_qz = -0.5 * (eps.pow(2) + log2pi + logvar).sum(1);
    log_w.push_back(log_px_z + log_pz - log_qz);
  }
  return -(torch::logsumexp(torch::stack(log_w, 1), 1) - std::log(static_cast<double>(k)));
}

}  // namespace imagine
