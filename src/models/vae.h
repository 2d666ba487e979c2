// A convolutional Variational Autoencoder (Kingma & Welling): encoder q(z|x) = N(mu, sigma²),
// prior N(0, I), decoder p(x|z) Bernoulli (grey data in [0, 1]) or a discretised Gaussian
// with a learned scale per channel (256 levels, for colour). beta weighs the KL term
// (beta-VAE); with beta = 1 the loss is the negative ELBO in nats per image. Optional
// class-conditioning: one-hot label planes into the encoder, one-hot label into the decoder.
#pragma once
#include <torch/torch.h>

#include "models/image_arch.h"

namespace imagine {

struct VAEOutput {
  torch::Tensor recon_nll;  // [N] -log p(x|z), nats per image
  torch::Tensor kl;         // [N] KL(q(z|x) || p(z)), nats per image
  torch::Tensor mu, logvar; // [N, latent]
};

struct VAEImpl : torch::nn::Module {
  explicit VAEImpl(const ImageArch& arch);

  // x: [N, C, S, S] in [0, 1]; labels: [N] int64 (conditional models) or undefined.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x, const torch::Tensor& labels);
  // Decoder output parameters: logits (Bernoulli) or means (Gaussian), [N, C, S, S].
  torch::Tensor decode_params(const torch::Tensor& z, const torch::Tensor& labels);
  // The image a latent stands for: the Bernoulli mean / Gaussian mean, in [0, 1].
  torch::Tensor decode(const torch::Tensor& z, const torch::Tensor& labels);
  // -log p(x | decoder params), summed over pixels: [N].
  torch::Tensor nll(const torch::Tensor& params, const torch::Tensor& x);
  // One reparameterised pass (uses torch's RNG for epsilon).
  VAEOutput forward(const torch::Tensor& x, const torch::Tensor& labels);
  // Importance-weighted estimate of -log p(x) with k samples (Burda et al.), nats per image: [N].
  torch::Tensor iw_nll(const torch::Tensor& x, const torch::Tensor& labels, int64_t k);

  ImageArch arch;
  torch::nn::Sequential encoder{nullptr};
  torch::nn::Linear enc_out{nullptr};   // -> [mu, logvar]
  torch::nn::Linear dec_in{nullptr};
  torch::nn::Sequential decoder{nullptr};
  torch::Tensor log_scale;              // [C] Gaussian likelihood only
};
TORCH_MODULE(VAE);

// One-hot label planes appended to images ([N, C + classes, S, S]) or vectors.
torch::Tensor with_label_planes(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes);
torch::Tensor with_label_vector(const torch::Tensor& z, const torch::Tensor& labels, int64_t classes);

}  // namespace imagine
