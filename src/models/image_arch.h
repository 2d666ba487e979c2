// The architecture record shared by the image families (VAE and GAN): image geometry,
// latent size, width, conditioning and the family's own switches. Stored in config.json.
//
// Both families are convolutional pyramids sized by the image: a 4x4 base (7x7 for 28-pixel
// images) doubled by one stride-2 layer per stage, so 28 -> 2 stages, 32 -> 3, 64 -> 4,
// 128 -> 5. Channel widths double per stage going down, capped at 8 x width.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine {

struct ImageArch {
  std::string family = "vae";      // "vae" or "gan"
  int64_t channels = 1;            // 1 (grey) or 3 (RGB)
  int64_t size = 28;               // 28, 32, 64 or 128
  int64_t latent_dim = 32;         // z
  int64_t width = 32;              // channels of the full-resolution layer
  int64_t classes = 0;             // > 0: class-conditional (one-hot label input)
  // VAE
  std::string likelihood = "bernoulli";  // "bernoulli" ([0,1] grey) or "gaussian" (discretised, 256 levels)
  // GAN
  std::string d_norm = "batch";    // discriminator normalisation: "batch" or "none"
  bool spectral_norm = false;      // spectral normalisation of the discriminator's layers

  int64_t base() const { return size == 28 ? 7 : 4; }  // spatial size of the smallest feature map
  int64_t stages() const;                               // stride-2 layers between base and size
  // Channels of the feature map at stage i (0 = full resolution / 2 ... stages-1 = base).
  int64_t stage_channels(int64_t i) const;

  nlohmann::json to_json() const;
  static ImageArch from_json(const nlohmann::json& j);  // validates
  void validate() const;                                // throws imagine::Error
};

}  // namespace imagine
