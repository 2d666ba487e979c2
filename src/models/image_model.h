// An image model as stored in a model directory (VAE or GAN weights + config.json), and
// the latent-space operations every image command is built from: seeded latents, decoding,
// encoding an image back to a latent (VAE encoder; for a GAN, optimising a latent until the
// generator reproduces the image), and spherical interpolation.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "models/gan.h"
#include "models/image_arch.h"
#include "models/vae.h"

namespace imagine {

constexpr const char* kImageFamily = "image";

struct ImageModel {
  nlohmann::json config;             // the whole config.json
  ImageArch arch;
  VAE vae{nullptr};                  // family "vae"
  GAN gan{nullptr};                  // family "gan" (sampling uses gan->g_ema)
  std::vector<std::string> classes;  // label names of a conditional model
  torch::Device device = torch::kCPU;
  std::string dir;

  bool conditional() const { return arch.classes > 0; }
  // Images in [0, 1], [N, C, S, S], for latents [N, latent]; labels [N] or undefined.
  torch::Tensor decode(const torch::Tensor& z, const torch::Tensor& labels);
  // "3", "Sneaker" or "sneaker" -> label index; throws with the list of names otherwise.
  int64_t class_index(const std::string& name) const;
};

// which: "best" (model.safetensors) or "latest" (checkpoint-latest/model.safetensors).
ImageModel load_image_model(const std::string& dir, torch::Device device, const std::string& which = "best");
nlohmann::json image_model_config(const ImageArch& arch, const std::vector<std::string>& classes,
                                  const nlohmann::json& dataset);

// The latent of sample `seed`: N(0, I) from the project's own generator, so a seed names the
// same image on every machine and torch version. truncation > 0 redraws components beyond
// +-truncation (the truncation trick).
torch::Tensor seeded_latent(uint64_t seed, int64_t dim, double truncation = 0);

struct Encoded {
  torch::Tensor z;         // [N, latent]
  double mse = 0;          // mean squared error of decode(z) against the input, per pixel in [0, 1]
  double psnr = 0;         // the same as PSNR in dB
};
// VAE: the posterior mean. GAN: `steps` of Adam on z (several random starts, the best kept)
// minimising pixel MSE plus a small pull towards the prior. `log` gets progress lines.
Encoded encode_images(ImageModel& m, const torch::Tensor& images, const torch::Tensor& labels, int64_t steps = 300,
                      uint64_t seed = 0, const std::function<void(const std::string&)>& log = nullptr);

// Spherical linear interpolation between latents a and b (1-D), t in [0, 1]; falls back to
// linear when they are (anti)parallel.
torch::Tensor slerp(const torch::Tensor& a, const torch::Tensor& b, double t);

}  // namespace imagine
