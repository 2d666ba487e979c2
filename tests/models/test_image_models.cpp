// Tests for the image families' networks: shapes at every size, the likelihoods, the GAN
// losses, spectral normalisation, the weight average, seeded latents and slerp.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "core/error.h"
#include "models/gan.h"
#include "models/image_model.h"
#include "models/vae.h"

namespace {

using imagine::ImageArch;

ImageArch arch(const std::string& family, int64_t size, int64_t channels, int64_t classes = 0) {
  ImageArch a;
  a.family = family;
  a.size = size;
  a.channels = channels;
  a.width = 4;
  a.latent_dim = 6;
  a.classes = classes;
  a.likelihood = channels == 1 ? "bernoulli" : "gaussian";
  return a;
}

TEST(ImageArch, StagesFollowTheImageSize) {
  for (auto [size, stages] : std::vector<std::pair<int64_t, int64_t>>{{28, 2}, {32, 3}, {64, 4}, {128, 5}}) {
    ImageArch a = arch("vae", size, 1);
    EXPECT_EQ(a.stages(), stages) << size;
    EXPECT_EQ(a.base() << a.stages(), size) << size;
  }
  ImageArch a = arch("vae", 128, 1);
  EXPECT_EQ(a.stage_channels(0), 4);
  EXPECT_EQ(a.stage_channels(4), 32);  // capped at 8 x width
}

TEST(ImageArch, RejectsBadValuesAndRoundTripsThroughJson) {
  ImageArch a = arch("gan", 64, 3, 5);
  a.spectral_norm = true;
  a.d_norm = "none";
  ImageArch b = ImageArch::from_json(a.to_json());
  EXPECT_EQ(b.to_json(), a.to_json());
  a.size = 30;
  EXPECT_THROW(a.validate(), imagine::Error);
  a.size = 28;
  a.channels = 2;
  EXPECT_THROW(a.validate(), imagine::Error);
  EXPECT_THROW(ImageArch::from_json({{"family", "vae"}}), imagine::Error);
}

TEST(Vae, ShapesAtEverySizeAndChannelCount) {
  torch::manual_seed(0);
  for (int64_t size : {28, 32, 64, 128}) {
    for (int64_t c : {1, 3}) {
      imagine::VAE vae(arch("vae", size, c));
      auto x = torch::rand({2, c, size, size});
      auto o = vae->forward(x, {});
      EXPECT_EQ(o.mu.sizes(), (std::vector<int64_t>{2, 6}));
      EXPECT_EQ(o.recon_nll.sizes(), (std::vector<int64_t>{2}));
      EXPECT_TRUE(torch::isfinite(o.recon_nll).all().item<bool>());
      EXPECT_TRUE((o.kl >= 0).all().item<bool>());
      auto img = vae->decode(torch::randn({3, 6}), {});
      EXPECT_EQ(img.sizes(), (std::vector<int64_t>{3, c, size, size}));
      EXPECT_GE(img.min().item<double>(), 0.0);
      EXPECT_LE(img.max().item<double>(), 1.0);
    }
  }
}

TEST(Vae, ConditionalModelNeedsLabels) {
  imagine::VAE vae(arch("vae", 28, 1, 10));
  auto x = torch::rand({4, 1, 28, 28});
  auto y = torch::tensor({0, 3, 9, 1}, torch::kInt64);
  EXPECT_EQ(vae->forward(x, y).mu.size(0), 4);
  EXPECT_THROW(vae->forward(x, {}), imagine::Error);
}

TEST(Vae, DiscretisedGaussianIsANormalisedDistributionOverTheLevels) {
  imagine::VAE vae(arch("vae", 28, 3));
  // One pixel position, every one of the 256 levels: the probabilities must sum to 1.
  auto mean = torch::full({256, 3, 28, 28}, 0.3);
  auto levels = torch::arange(256, torch::kFloat32).div(255.0).view({256, 1, 1, 1}).expand({256, 3, 28, 28});
  // nll sums over pixels; compare per-pixel masses through the whole-image sum of 3*28*28
  // identical pixels: log p(image) = 2352 * log p(level).
  auto nll = vae->nll(mean, levels.contiguous()) / (3.0 * 28 * 28);
  const double total = torch::exp(-nll).sum().item<double>();
  EXPECT_NEAR(total, 1.0, 1e-3);
}

TEST(Vae, ImportanceWeightedBoundIsTighterThanTheElbo) {
  torch::manual_seed(1);
  imagine::VAE vae(arch("vae", 28, 1));
  torch::NoGradGuard no_grad;
  auto x = (torch::rand({16, 1, 28, 28}) > 0.5).to(torch::kFloat32);
  double elbo = 0;
  for (int i = 0; i < 20; i++) {
    auto o = vae->forward(x, {});
    elbo += (o.recon_nll + o.kl).mean().item<double>() / 20;
  }
  const double iw = vae->iw_nll(x, {}, 50).mean().item<double>();
  EXPECT_LT(iw, elbo);
  EXPECT_GT(iw, 0.0);
}

TEST(Gan, ShapesAtEverySizeAndChannelCount) {
  torch::manual_seed(0);
  for (int64_t size : {28, 32, 64, 128}) {
    for (int64_t c : {1, 3}) {
      imagine::GAN gan(arch("gan", size, c));
      auto img = gan->g->forward(torch::randn({2, 6}), {});
      EXPECT_EQ(img.sizes(), (std::vector<int64_t>{2, c, size, size}));
      EXPECT_LE(img.abs().max().item<double>(), 1.0);
      EXPECT_EQ(gan->d->forward(img, {}).sizes(), (std::vector<int64_t>{2}));
    }
  }
  ImageArch a = arch("gan", 32, 3, 4);
  a.spectral_norm = true;
  a.d_norm = "none";
  imagine::GAN gan(a);
  auto y = torch::tensor({1, 3}, torch::kInt64);
  EXPECT_EQ(gan->d->forward(gan->g->forward(torch::randn({2, 6}), y), y).sizes(), (std::vector<int64_t>{2}));
}

TEST(Gan, LossesHaveTheirTextbookValues) {
  auto real = torch::tensor({2.0, -1.0}), fake = torch::tensor({0.5, -3.0});
  auto sp = [](double v) { return std::log1p(std::exp(v)); };
  EXPECT_NEAR(imagine::gan_d_loss("ns", real, fake).item<double>(),
              (sp(-2.0) + sp(1.0)) / 2 + (sp(0.5) + sp(-3.0)) / 2, 1e-6);
  EXPECT_NEAR(imagine::gan_g_loss("ns", fake).item<double>(), (sp(-0.5) + sp(3.0)) / 2, 1e-6);
  EXPECT_NEAR(imagine::gan_d_loss("hinge", real, fake).item<double>(), (0 + 2.0) / 2 + (1.5 + 0) / 2, 1e-6);
  EXPECT_NEAR(imagine::gan_g_loss("hinge", fake).item<double>(), 1.25, 1e-6);
  EXPECT_NEAR(imagine::gan_d_loss("wgan-gp", real, fake).item<double>(), -1.25 - 0.5, 1e-6);
  EXPECT_THROW(imagine::gan_d_loss("lsgan", real, fake), imagine::Error);
}

TEST(Gan, GradientPenaltyIsFiniteAndDifferentiable) {
  ImageArch a = arch("gan", 28, 1);
  a.d_norm = "none";
  imagine::Discriminator d(a);
  auto real = torch::rand({4, 1, 28, 28}) * 2 - 1, fake = torch::rand({4, 1, 28, 28}) * 2 - 1;
  auto gp = imagine::gradient_penalty(d, real, fake, {});
  EXPECT_TRUE(std::isfinite(gp.item<double>()));
  EXPECT_GE(gp.item<double>(), 0.0);
  gp.backward();  // differentiable with respect to the critic (double backward)
  bool any = false;
  for (auto& p : d->parameters()) any = any || (p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
  EXPECT_TRUE(any);
}

TEST(Gan, SpectralNormalisationBoundsTheLargestSingularValue) {
  torch::manual_seed(3);
  imagine::SNConv2d conv(8, 16, 4, 2, 1, true);
  {
    torch::NoGradGuard no_grad;
    conv->weight.mul_(10.0);
  }
  conv->train();
  for (int i = 0; i < 50; i++) conv->normalised_weight();  // power iterations converge
  auto w = conv->normalised_weight().detach().flatten(1);
  auto sigma = std::get<1>(torch::svd(w))[0].item<double>();
  EXPECT_NEAR(sigma, 1.0, 1e-3);
}

TEST(Gan, WeightAverageFollowsTheGenerator) {
  imagine::GAN gan(arch("gan", 28, 1));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : gan->g->parameters()) p.add_(1.0);
  }
  auto ema0 = gan->g_ema->parameters()[0].clone();
  gan->update_ema(1.0);
  EXPECT_TRUE(torch::equal(gan->g_ema->parameters()[0], ema0));
  gan->update_ema(0.0);
  EXPECT_TRUE(torch::allclose(gan->g_ema->parameters()[0], gan->g->parameters()[0]));
  for (auto& p : gan->g_ema->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(Gan, StandingStatisticsAreDeterministic) {
  torch::manual_seed(0);
  imagine::GAN gan(arch("gan", 28, 1));
  gan->refresh_ema_statistics(2, 16, 7);
  auto a = gan->g_ema->named_buffers()["net.1.running_mean"].clone();
  gan->refresh_ema_statistics(2, 16, 7);
  EXPECT_TRUE(torch::equal(a, gan->g_ema->named_buffers()["net.1.running_mean"]));
  EXPECT_GT(a.abs().sum().item<double>(), 0.0);
}

TEST(Latents, SeededLatentsAreReproducibleAndStandardNormal) {
  auto a = imagine::seeded_latent(42, 64), b = imagine::seeded_latent(42, 64), c = imagine::seeded_latent(43, 64);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  std::vector<torch::Tensor> many;
  for (uint64_t s = 0; s < 200; s++) many.push_back(imagine::seeded_latent(s, 64));
  auto all = torch::stack(many);
  EXPECT_NEAR(all.mean().item<double>(), 0.0, 0.05);
  EXPECT_NEAR(all.std().item<double>(), 1.0, 0.05);
  auto t = imagine::seeded_latent(5, 1000, 0.5);
  EXPECT_LE(t.abs().max().item<double>(), 0.5);
}

TEST(Latents, SlerpHitsBothEndpointsExactly) {
  auto a = imagine::seeded_latent(1, 32), b = imagine::seeded_latent(2, 32);
  EXPECT_TRUE(torch::allclose(imagine::slerp(a, b, 0.0), a, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(imagine::slerp(a, b, 1.0), b, 1e-6, 1e-6));
  auto mid = imagine::slerp(a, b, 0.5);
  // Spherical: the midpoint keeps a norm between the endpoints' (linear would shrink it).
  EXPECT_GT(mid.norm().item<double>(), 0.9 * std::min(a.norm().item<double>(), b.norm().item<double>()));
  EXPECT_TRUE(torch::allclose(imagine::slerp(a, a, 0.3), a, 1e-5, 1e-5));
}

}  // namespace
