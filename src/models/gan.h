// A DCGAN (Radford et al.) scaled by image size: the generator maps z (plus a one-hot class
// for conditional models) through a base-size transposed convolution and stride-2 stages to
// a tanh image; the discriminator mirrors it with strided convolutions and LeakyReLU, batch
// normalisation optional, spectral normalisation optional (one power iteration per step,
// as Miyato et al.). Losses: non-saturating ("ns"), hinge, and WGAN-GP. The module also
// holds an exponential moving average of the generator, which is what sampling uses.
#pragma once
#include <string>

#include <torch/torch.h>

#include "models/image_arch.h"

namespace imagine {

// A 2-D convolution whose weight may be spectrally normalised: W / sigma(W), sigma estimated
// by power iteration with a persistent vector u (a buffer, so checkpoints keep it).
struct SNConv2dImpl : torch::nn::Module {
  SNConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool spectral);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor normalised_weight();
  torch::Tensor weight, bias, u;
  int64_t stride, padding;
  bool spectral;
};
TORCH_MODULE(SNConv2d);

struct GeneratorImpl : torch::nn::Module {
  explicit GeneratorImpl(const ImageArch& arch);
  // z: [N, latent]; labels [N] or undefined -> images in [-1, 1], [N, C, S, S].
  torch::Tensor forward(const torch::Tensor& z, const torch::Tensor& labels);
  ImageArch arch;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(Generator);

struct DiscriminatorImpl : torch::nn::Module {
  explicit DiscriminatorImpl(const ImageArch& arch);
  // x in [-1, 1] -> one logit / critic value per image, [N].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& labels);
  ImageArch arch;
  torch::nn::Sequential net{nullptr};
};
TORCH_MODULE(Discriminator);

struct GANImpl : torch::nn::Module {
  explicit GANImpl(const ImageArch& arch);
  ImageArch arch;
  Generator g{nullptr};
  Discriminator d{nullptr};
  Generator g_ema{nullptr};  // sampling weights; no gradients

  // g_ema <- decay * g_ema + (1 - decay) * g; buffers copied.
  void update_ema(double decay);
  // Recomputes g_ema's batch-norm statistics from `batches` batches of its own samples
  // ("standing statistics"): the averaged weights need their own statistics, not g's.
  void refresh_ema_statistics(int64_t batches, int64_t batch_size, uint64_t seed);
};
TORCH_MODULE(GAN);

// Losses. real/fake: discriminator outputs [N].
torch::Tensor gan_d_loss(const std::string& loss, const torch::Tensor& real, const torch::Tensor& fake);
torch::Tensor gan_g_loss(const std::string& loss, const torch::Tensor& fake);
// WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake.
torch::Tensor gradient_penalty(Discriminator& d, const torch::Tensor& real, const torch::Tensor& fake,
                               const torch::Tensor& labels);

}  // namespace imagine
