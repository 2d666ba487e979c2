// The image verbs as library functions: the latent-space maths of generate / vary / blend /
// interpolate, and the one way an image output is recorded (its manifest settings and PNG
// parameters). `imagine <verb> image` and the HTTP API both call these.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "image/image.h"
#include "models/image_model.h"
#include "provenance/output.h"
#include "serve/verbs.h"

namespace imagine {

// Labels for n outputs: `cls` for all of them, else (a conditional model) cycling through
// the classes; undefined for an unconditional model.
torch::Tensor output_labels(const ImageModel& m, int64_t n, const std::string& cls);
// Labels for n inputs to encode: a conditional model needs their class (UsageError naming them).
torch::Tensor input_labels(const ImageModel& m, int64_t n, const std::string& cls);

// Decoded images [C, S, S] in [0, 1] -> an image, enlarged `upscale` times (nearest neighbour).
Image output_image(const torch::Tensor& chw, int64_t upscale);
// The images of samples seed .. seed + n - 1 (decoded 256 at a time). With a copy check,
// one at a time: a flagged sample is redrawn from retry seeds; records[i] is sample i's.
std::vector<Image> sample_images(ImageModel& m, uint64_t seed, int64_t n, double truncation,
                                 const torch::Tensor& labels, int64_t upscale, const CopyCheck& check = {},
                                 std::vector<CheckRecord>* records = nullptr);

// A variation of latent z: sqrt(1 - s^2) z + s eps(seed), the prior's scale at every strength.
torch::Tensor vary_latent(const torch::Tensor& z, double strength, uint64_t seed);
// n variations of latent z (variation i: vary_latent(z, strength, seed + i)), decoded with
// labels y (one label or undefined): [n, C, S, S]. With a copy check, flagged ones are
// redrawn from retry seeds; records[i] is variation i's.
torch::Tensor vary_images(ImageModel& m, const torch::Tensor& z, double strength, uint64_t seed, int64_t n,
                          const torch::Tensor& y, const CopyCheck& check = {},
                          std::vector<CheckRecord>* records = nullptr);
// The weighted mean of latents zs [N, latent] (weights sum to 1).
torch::Tensor blend_latents(const torch::Tensor& zs, const std::vector<double>& weights);
// k latents from a to b, both included (spherical interpolation).
std::vector<torch::Tensor> interpolate_latents(const torch::Tensor& a, const torch::Tensor& b, int64_t k);

// What one image output records besides the image.
struct ImageOutput {
  std::string verb;         // generate, vary, blend, interpolate, reconstruct
  nlohmann::json settings;  // "detail" (in words), "seed" when one image has one, ...
  nlohmann::json copy_check, attribution;
};
// The PNG of an image verb: manifest settings + upscale (+ class), and the "parameters"
// chunk's Verb / Seed / Detail (Seed: settings.seed, else `seed`).
Artifact image_artifact(const OutputWriter& w, const ModelRecord& model, const Image& img,
                        const ImageOutput& out, int64_t upscale, const std::string& cls, uint64_t seed);

}  // namespace imagine
