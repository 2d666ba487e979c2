// See gan.h. The layer plan mirrors bench/python/dcgan_reference.py exactly, so the speed
// comparison runs the identical networks.
#include "models/gan.h"

#include "core/error.h"
#include "models/vae.h"
#include "nn/upconv.h"

namespace imagine {

namespace F = torch::nn::functional;

SNConv2dImpl::SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t padding_, bool spectral_)
    : stride(stride_), padding(padding_), spectral(spectral_) {
  // PyTorch's default Conv2d initialisation (kaiming uniform, a = sqrt(5)); DCGAN's N(0, 0.02)
  // is applied by the owner.
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel));
  weight = register_parameter("weight", conv->weight.detach().clone());
  bias = register_parameter("bias", conv->bias.detach().clone());
  if (spectral) u = register_buffer("u", F::normalize(torch::randn({out}), F::NormalizeFuncOptions().dim(0)));
}

torch::Tensor SNConv2dImpl::normalised_weight() {
  if (!spectral) return weight;
  auto w = weight.flatten(1);  // [out, in * k * k]
  torch::Tensor v, u_used;
  {
    torch::NoGradGuard no_grad;
    v = F::normalize(torch::mv(w.t(), u), F::NormalizeFuncOptions().dim(0).eps(1e-12));
    u_used = F::normalize(torch::mv(w, v), F::NormalizeFuncOptions().dim(0).eps(1e-12));
    if (is_training()) u.copy_(u_used);
    else u_used = u.clone();
  }
  // sigma uses a private copy of u: the buffer changes in place at the next forward pass,
  // while autograd may still need this pass's value.
  auto sigma = torch::dot(u_used, torch::mv(w, v));
  return weight / sigma;
}

torch::Tensor SNConv2dImpl::forward(const torch::Tensor& x) {
  return F::conv2d(x, normalised_weight(), F::Conv2dFuncOptions().bias(bias).stride(stride).padding(padding));
}

GeneratorImpl::GeneratorImpl(const ImageArch& a) : arch(a) {
  const int64_t n = arch.stages();
  net = torch::nn::Sequential();
  const int64_t top = arch.stage_channels(n - 1);
  net->push_back(nn::UpConv2d(arch.latent_dim + arch.classes, top, arch.base(), 1, 0, false));
  net->push_back(torch::nn::BatchNorm2d(top));
  net->push_back(torch::nn::ReLU());
  for (int64_t i = n - 1; i >= 0; i--) {
    const int64_t cin = arch.stage_channels(i);
    const bool last = i == 0;
    const int64_t cout = last ? arch.channels : arch.stage_channels(i - 1);
    net->push_back(nn::UpConv2d(cin, cout, 4, 2, 1, last));
    if (last) {
      net->push_back(torch::nn::Tanh());
    } else {
      net->push_back(torch::nn::BatchNorm2d(cout));
      net->push_back(torch::nn::ReLU());
    }
  }
  register_module("net", net);
}

torch::Tensor GeneratorImpl::forward(const torch::Tensor& z, const torch::Tensor& labels) {
  auto in = with_label_vector(z, labels, arch.classes);
  return net->forward(in.view({in.size(0), in.size(1), 1, 1}));
}

DiscriminatorImpl::DiscriminatorImpl(const ImageArch& a) : arch(a) {
  const int64_t n = arch.stages();
  net = torch::nn::Sequential();
  int64_t in = arch.channels + arch.classes;
  for (int64_t i = 0; i < n; i++) {
    const int64_t out = arch.stage_channels(i);
    net->push_back(SNConv2d(in, out, 4, 2, 1, arch.spectral_norm));
    // DCGAN: no normalisation on the first layer; none at all for WGAN-GP / spectral norm.
    if (i > 0 && arch.d_norm == "batch") net->push_back(torch::nn::BatchNorm2d(out));
    net->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(0.2)));
    in = out;
  }
  net->push_back(SNConv2d(in, 1, arch.base(), 1, 0, arch.spectral_norm));
  register_module("net", net);
}

torch::Tensor DiscriminatorImpl::forward(const torch::Tensor& x, const torch::Tensor& labels) {
  return net->forward(with_label_planes(x, labels, arch.classes)).view({-1});
}

// DCGAN initialisation: convolution weights N(0, 0.02), batch-norm scales N(1, 0.02).
static void dcgan_init(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    const bool is_bn = name.find("weight") != std::string::npos && t.dim() == 1;
    if (t.dim() == 4) t.normal_(0.0, 0.02);
    else if (is_bn) t.normal_(1.0, 0.02);
    else if (name.find("bias") != std::string::npos) t.zero_();
  }
}

GANImpl::GANImpl(const ImageArch& a) : arch(a) {
  arch.validate();
  g = register_module("g", Generator(arch));
  d = register_module("d", Discriminator(arch));
  dcgan_init(*g);
  dcgan_init(*d);
  g_ema = register_module("g_ema", Generator(arch));
  torch::NoGradGuard no_grad;
  auto src = g->named_parameters();
  for (auto& p : g_ema->named_parameters()) {
    p.value().copy_(src[p.key()]);
    p.value().set_requires_grad(false);
  }
}

void GANImpl::update_ema(double decay) {
  torch::NoGradGuard no_grad;
  auto src = g->named_parameters();
  for (auto& p : g_ema->named_parameters()) p.value().lerp_(src[p.key()], 1.0 - decay);
  auto bufs = g->named_buffers();
  for (auto& b : g_ema->named_buffers()) b.value().copy_(bufs[b.key()]);
}

void GANImpl::refresh_ema_statistics(int64_t batches, int64_t batch_size, uint64_t seed) {
  torch::NoGradGuard no_grad;
  std::vector<torch::nn::BatchNorm2d> bns;
  for (auto& m : g_ema->modules(false))
    if (auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(m)) bns.push_back(torch::nn::BatchNorm2d(bn));
  if (bns.empty()) return;
  std::vector<c10::optional<double>> momenta;
  for (auto& bn : bns) {
    momenta.push_back(bn->options.momentum());
    bn->reset_running_stats();
    bn->options.momentum(c10::nullopt);  // cumulative average over the batches below
  }
  const bool was_training = g_ema->is_training();
  g_ema->train();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto device = g_ema->parameters()[0].device();
  for (int64_t i = 0; i < batches; i++) {
    auto z = torch::randn({batch_size, arch.latent_dim}, gen).to(device);
    torch::Tensor labels;
    if (arch.classes > 0) labels = torch::randint(arch.classes, {batch_size}, gen, torch::kInt64).to(device);
    g_ema->forward(z, labels);
  }
  g_ema->train(was_training);
  for (size_t i = 0; i < bns.size(); i++) bns[i]->options.momentum(momenta[i]);
}

torch::Tensor gan_d_loss(const std::string& loss, const torch::Tensor& real, const torch::Tensor& fake) {
  if (loss == "ns") return F::softplus(-real).mean() + F::softplus(fake).mean();
  if (loss == "hinge") return torch::relu(1.0 - real).mean() + torch::relu(1.0 + fake).mean();
  if (loss == "wgan-gp") return fake.mean() - real.mean();
  throw Error("unknown GAN loss '" + loss + "'", "use --loss ns, hinge or wgan-gp");
}

torch::Tensor gan_g_loss(const std::string& loss, const torch::Tensor& fake) {
  if (loss == "ns") return F::softplus(-fake).mean();
  if (loss == "hinge" || loss == "wgan-gp") return -fake.mean();
  throw Error("unknown GAN loss '" + loss + "'", "use --loss ns, hinge or wgan-gp");
}

torch::Tensor gradient_penalty(Discriminator& d, const torch::Tensor& real, const torch::Tensor& fake,
                               const torch::Tensor& labels) {
  auto alpha = torch::rand({real.size(0), 1, 1, 1}, real.options());
  auto x_hat = (alpha * real + (1.0 - alpha) * fake.detach()).requires_grad_(true);
  auto out = d->forward(x_hat, labels);
  auto grad = torch::autograd::grad({out.sum()}, {x_hat}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  return (grad.flatten(1).norm(2, 1) - 1.0).pow(2).mean();
}

}  // namespace imagine
