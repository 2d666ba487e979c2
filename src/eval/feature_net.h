// The feature network behind the FID/KID-style scores: a small CNN the project trains
// itself on the dataset's labels (an Inception network cannot be downloaded here). Its
// penultimate layer (128 values) is the feature space. Training is deterministic for a
// seed and is cached on disk, so every model evaluated on the same data is measured with
// the same network. Without labels, a fixed-seed untrained network is used (documented).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <torch/torch.h>

namespace imagine {

struct FeatureNetImpl : torch::nn::Module {
  FeatureNetImpl(int64_t channels, int64_t size, int64_t classes);
  torch::Tensor features(const torch::Tensor& x);  // x: [N, C, S, S] in [0, 1] -> [N, 128]
  torch::Tensor forward(const torch::Tensor& x);   // logits [N, classes]
  int64_t channels, size, classes;
  torch::nn::Sequential body{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(FeatureNet);

struct FeatureNetInfo {
  std::string path;         // safetensors file holding the weights
  double test_accuracy = 0; // on the held-out labelled images; 0 when untrained
  bool trained = false;     // false: no labels, fixed random network
};

// Loads the cached network for this data (keyed by `data_fingerprint`, channels, size) from
// `cache_dir`, or trains one (a few epochs; progress through `log`) and caches it
// atomically. images: [N, C, S, S] float in [0, 1]; labels: [N] int64 or undefined.
// held_out_* are used to report accuracy (may be undefined).
// Recipe: seed 1234, Adam (lr 1e-3, betas 0.9/0.999), batch 128, 2 epochs clamped to
// 64..960 steps (~120k samples at most), so 60k images train in one bounded run. Without
// held-out data, a fixed tenth of the labelled images is held back to measure accuracy.
// Labels undefined or classes < 2: the fixed-seed untrained network, cached under a key
// that ignores the data. A cache file that cannot be used (damaged, another version or
// shape) is rebuilt with a log line rather than reported: it is derived data. `log` may
// be empty. The network is returned in eval mode on `images`' device.
FeatureNet load_or_train_feature_net(const std::string& cache_dir, const std::string& data_fingerprint,
                                     const torch::Tensor& images, const torch::Tensor& labels,
                                     const torch::Tensor& held_out_images, const torch::Tensor& held_out_labels,
                                     int64_t classes, FeatureNetInfo* info,
                                     const std::function<void(const std::string&)>& log);

// Features of many images in batches, in eval mode without gradients: [N, 128] float.
torch::Tensor extract_features(FeatureNet& net, const torch::Tensor& images, int64_t batch = 500);

}  // namespace imagine
