// Evaluating an image model against held-out data: sample quality in the feature space of
// the project's own classifier (Fréchet and kernel distances, precision / recall), the
// likelihood of a VAE (ELBO and an importance-weighted NLL), and how close each sample is to
// its nearest training image (the copy audit builds on it). Used by `imagine eval` and by
// training's periodic evaluations. Deterministic for a seed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/image_dataset.h"
#include "eval/feature_net.h"
#include "models/image_model.h"

namespace imagine {

struct ImageEvalOptions {
  int64_t samples = 1000;      // generated images for the distribution metrics
  int64_t real = 0;            // held-out images compared against (0 = all)
  int64_t iw_samples = 0;      // VAE: k of the importance-weighted NLL (0 = skip)
  int64_t iw_images = 1000;    // VAE: held-out images the IW-NLL averages over
  bool nearest = false;        // nearest-training-image distance per sample
  bool floor = false;          // also score real training images as if generated (the floor)
  uint64_t seed = 0;           // first sample seed; sample i uses seed + i
  int64_t batch = 250;
};

struct ImageEvalReport {
  std::map<std::string, double> metrics;   // fid, kid, kid_std, precision, recall, elbo_nll, ...
  std::vector<double> nearest_distance;    // per sample: RMS pixel distance to the nearest training image
  std::vector<int64_t> nearest_index;      // and that image's index in the training set
  nlohmann::json to_json() const;
};

// Generated samples for seeds seed .. seed+n-1, images in [0, 1] (labels cycle through the
// classes for a conditional model).
torch::Tensor generate_images(ImageModel& m, int64_t n, uint64_t seed, double truncation = 0, int64_t batch = 250,
                              torch::Tensor* labels_out = nullptr);

// `real_features` are the held-out set's features (computed once by the caller).
ImageEvalReport evaluate_image_model(ImageModel& m, const ImageData& data, FeatureNet& net,
                                     const torch::Tensor& real_features, const ImageEvalOptions& opt);

// Where feature networks are cached: `flag` when given, else $IMAGINE_CACHE, else
// $XDG_CACHE_HOME/imagine, else ~/.cache/imagine, else a folder in /tmp.
std::string feature_cache_dir(const std::string& flag);

// The feature network for `data` (cached; trained on its labels the first time) and the
// features of its held-out images.
struct FeatureSpace {
  FeatureNet net{nullptr};
  FeatureNetInfo info;
  torch::Tensor real_features;  // of data.test
};
FeatureSpace prepare_feature_space(const ImageData& data, const std::string& cache_dir,
                                   const std::function<void(const std::string&)>& log);

// Negative ELBO (beta = 1), reconstruction and KL in nats per image over a held-out set.
std::map<std::string, double> vae_elbo(VAE& vae, const ImageSet& set, int64_t limit, uint64_t seed,
                                       int64_t batch = 500);

}  // namespace imagine
