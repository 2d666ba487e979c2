// The project's own feature network and its on-disk cache. See feature_net.h. Leaves out
// data augmentation and learning-rate schedules: the network only has to separate the
// dataset's classes well enough for its features to be meaningful, and it has to train
// in well under a minute on two CPU cores.
#include "eval/feature_net.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

namespace {

// Bump when the architecture or the training recipe changes: it is part of the cache key,
// so networks trained by an older recipe are never mistaken for the current one.
const char* const kFormat = "imagine.feature_net";
const char* const kVersion = "1";

constexpr int64_t kFeatureDim = 128;
constexpr uint64_t kInitSeed = 1234;     // weights of both trained and untrained networks
constexpr uint64_t kShuffleSeed = 4321;  // batch order and the held-out split
constexpr int64_t kBatch = 128;
constexpr double kLearningRate = 1e-3;
constexpr double kAdamBeta1 = 0.9;
constexpr double kAdamBeta2 = 0.999;
constexpr int64_t kEpochs = 2;
// Two epochs of 60k images is 938 steps; larger sets stop at the cap so training time
// stays bounded, and tiny sets get at least the floor so the network learns something.
constexpr int64_t kMinSteps = 64;
constexpr int64_t kMaxSteps = 960;  // ~120k samples
constexpr int64_t kEvalBatch = 500;

// Inputs larger than this are average-pooled down first: the convolutions then cost the
// same at 64 or 128 px as at 32 px, at the price of fine detail the scores do not see.
constexpr int64_t kWorkingSize = 32;

std::string format_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.17g", v);  // round-trips exactly
  return buf;
}

FeatureNet fresh_net(int64_t channels, int64_t size, int64_t classes) {
  ScopedTorchSeed seed(kInitSeed);
  return FeatureNet(channels, size, classes);
}

std::vector<int64_t> shuffled(Rng& rng, int64_t n) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int64_t i = n - 1; i > 0; i--) std::swap(perm[i], perm[rng.below(static_cast<uint64_t>(i + 1))]);
  return perm;
}

torch::Tensor index_tensor(const std::vector<int64_t>& v, int64_t begin, int64_t end, torch::Device device) {
  return torch::tensor(std::vector<int64_t>(v.begin() + begin, v.begin() + end), torch::kLong).to(device);
}

double accuracy(FeatureNet& net, const torch::Tensor& images, const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  net->eval();
  const auto device = net->parameters().front().device();
  int64_t correct = 0;
  const int64_t n = images.size(0);
  for (int64_t start = 0; start < n; start += kEvalBatch) {
    const int64_t end = std::min(n, start + kEvalBatch);
    auto pred = net->forward(images.slice(0, start, end).to(device, torch::kFloat32)).argmax(1);
    correct += pred.eq(labels.slice(0, start, end).to(device)).sum().item<int64_t>();
  }
  return n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0.0;
}

void check_images(const torch::Tensor& images, const char* what) {
  const char* hint = "pass images as a [N, C, S, S] float tensor in [0, 1] with C = 1 or 3";
  IMAGINE_CHECK(images.defined(), hint, "feature net: ", what, " are missing");
  IMAGINE_CHECK(images.dim() == 4 && images.size(2) == images.size(3), hint, "feature net: ", what,
                " must be [N, C, S, S], got shape ", images.sizes());
}

void check_labels(const torch::Tensor& images, const torch::Tensor& labels, int64_t classes,
                  const char* what) {
  const char* hint = "labels must be a [N] integer tensor with values in [0, classes)";
  IMAGINE_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), hint, "feature net: ", what,
                " labels have shape ", labels.sizes(), " for ", images.size(0), " images");
  IMAGINE_CHECK(!labels.is_floating_point() && !labels.is_complex(), hint, "feature net: ", what,
                " labels must be integers, got ", labels.scalar_type());
  if (labels.numel() == 0) return;
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  IMAGINE_CHECK(lo >= 0 && hi < classes, hint, "feature net: ", what, " labels span [", lo, ", ", hi,
                "] but classes = ", classes);
}

// Tries the cache file; any problem (missing, damaged, another shape) means "retrain".
bool try_load(const std::string& path, FeatureNet& net, FeatureNetInfo& info, bool trained,
              const std::function<void(const std::string&)>& log) {
  if (!path_exists(path)) return false;
  try {
    auto file = load_safetensors(path);
    auto meta = [&](const std::string& key) {
      auto it = file.metadata.find(key);
      IMAGINE_CHECK(it != file.metadata.end(), "", "metadata lacks '", key, "'");
      return it->second;
    };
    IMAGINE_CHECK(meta("format") == kFormat && meta("version") == kVersion, "", "not a version ", kVersion,
                  " feature net");
    IMAGINE_CHECK(meta("channels") == std::to_string(net->channels) &&
                      meta("size") == std::to_string(net->size) &&
                      meta("classes") == std::to_string(net->classes),
                  "", "network shape does not match the data");
    IMAGINE_CHECK(meta("trained") == (trained ? "true" : "false"), "", "trained flag does not match");
    load_module_weights(*net, file.tensors, "feature net cache " + path);
    info.test_accuracy = std::stod(meta("accuracy"));
    info.trained = trained;
    return true;
  } catch (const std::exception& e) {
    // The cache is derived data, so a damaged file is replaced rather than reported:
    // the caller still gets a network, at the cost of one training run.
    if (log) log("feature net: ignoring unusable cache " + path + " (" + e.what() + "); rebuilding it");
    return false;
  }
}

void save(const std::string& path, FeatureNet& net, const FeatureNetInfo& info,
          const std::string& fingerprint) {
  std::map<std::string, std::string> meta = {
      {"format", kFormat},
      {"version", kVersion},
      {"accuracy", format_double(info.test_accuracy)},
      {"trained", info.trained ? "true" : "false"},
      {"channels", std::to_string(net->channels)},
      {"size", std::to_string(net->size)},
      {"classes", std::to_string(net->classes)},
      {"data_fingerprint", fingerprint},
  };
  save_safetensors(path, module_weights(*net), meta);  // atomic: temp file + rename
}

}  // namespace

FeatureNetImpl::FeatureNetImpl(int64_t channels_, int64_t size_, int64_t classes_)
    : channels(channels_), size(size_), classes(classes_) {
  IMAGINE_CHECK(channels >= 1, "images need at least one channel", "feature net: channels must be >= 1, got ",
                channels);
  IMAGINE_CHECK(size >= 8, "images must be at least 8x8 pixels", "feature net: size must be >= 8, got ",
                size);
  IMAGINE_CHECK(classes >= 1, "", "feature net: classes must be >= 1, got ", classes);
  using namespace torch::nn;
  body = Sequential();
  const int64_t pool = size / kWorkingSize;
  if (pool >= 2) body->push_back(AvgPool2d(AvgPool2dOptions(pool)));
  body->push_back(Conv2d(Conv2dOptions(channels, 16, 3).padding(1)));
  body->push_back(ReLU());
  body->push_back(MaxPool2d(MaxPool2dOptions(2)));  // (N, 16, S/2, S/2)
  body->push_back(Conv2d(Conv2dOptions(16, 32, 3).padding(1)));
  body->push_back(ReLU());
  body->push_back(MaxPool2d(MaxPool2dOptions(2)));  // (N, 32, S/4, S/4)
  body->push_back(Conv2d(Conv2dOptions(32, 64, 3).padding(1)));
  body->push_back(ReLU());
  // A fixed 4x4 grid makes the feature layer the same size for every image size.
  body->push_back(AdaptiveAvgPool2d(AdaptiveAvgPool2dOptions({4, 4})));  // (N, 64, 4, 4)
  body->push_back(Flatten());
  body->push_back(Linear(64 * 4 * 4, kFeatureDim));
  body->push_back(ReLU());  // (N, 128): the feature space
  register_module("body", body);
  head = register_module("head", Linear(kFeatureDim, classes));
}

torch::Tensor FeatureNetImpl::features(const torch::Tensor& x) {
  IMAGINE_CHECK(x.dim() == 4 && x.size(1) == channels && x.size(2) == size && x.size(3) == size,
                "resize the images to the size the feature network was built for", "feature net expects [N, ",
                channels, ", ", size, ", ", size, "] images, got ", x.sizes());
  // Centred inputs train faster; doing it here means callers pass plain [0, 1] images.
  return body->forward((x - 0.5) / 0.5);
}

torch::Tensor FeatureNetImpl::forward(const torch::Tensor& x) { return head->forward(features(x)); }

FeatureNet load_or_train_feature_net(const std::string& cache_dir, const std::string& data_fingerprint,
                                     const torch::Tensor& images, const torch::Tensor& labels,
                                     const torch::Tensor& held_out_images,
                                     const torch::Tensor& held_out_labels, int64_t classes,
                                     FeatureNetInfo* info,
                                     const std::function<void(const std::string&)>& log) {
  check_images(images, "images");
  const int64_t channels = images.size(1), size = images.size(2);
  const bool trainable = labels.defined() && classes >= 2;
  if (trainable) check_labels(images, labels, classes, "training");
  const int64_t net_classes = std::max<int64_t>(classes, 1);

  // The untrained network depends on nothing but its shape, so its key leaves the data out.
  const std::string key_text = std::string(kFormat) + "|v" + kVersion + "|" +
                               (trainable ? "trained|" + data_fingerprint : "untrained") + "|c" +
                               std::to_string(channels) + "|s" + std::to_string(size) + "|k" +
                               std::to_string(net_classes);
  make_dirs(cache_dir);
  const std::string path =
      join_path(cache_dir, "features-" + sha256_hex(key_text).substr(0, 16) + ".safetensors");

  FeatureNetInfo result;
  result.path = path;
  FeatureNet net = fresh_net(channels, size, net_classes);
  const auto device = images.device();

  if (try_load(path, net, result, trainable, log)) {
    if (log) {
      char acc[64];
      std::snprintf(acc, sizeof(acc), " (held-out accuracy %.4f)", result.test_accuracy);
      log("feature net: loaded " + path + (result.trained ? acc : " (untrained)"));
    }
  } else if (!trainable) {
    if (log)
      log("feature net: no labels; using a fixed-seed untrained network (scores comparable only under it)");
    result.trained = false;
    result.test_accuracy = 0;
    save(path, net, result, data_fingerprint);
  } else {
    // Held-out set: the caller's if given, else a fixed tenth of the labelled images that
    // are then left out of training.
    Rng rng(kShuffleSeed);
    auto x_all = images.to(torch::kFloat32);
    auto y_all = labels.to(torch::kLong);
    torch::Tensor x_train = x_all, y_train = y_all, x_test, y_test;
    if (held_out_images.defined() && held_out_labels.defined()) {
      check_images(held_out_images, "held-out images");
      IMAGINE_CHECK(held_out_images.size(1) == channels && held_out_images.size(2) == size,
                    "held-out images must have the training images' shape",
                    "feature net: held-out images have shape ", held_out_images.sizes(), ", training images ",
                    images.sizes());
      check_labels(held_out_images, held_out_labels, classes, "held-out");
      x_test = held_out_images.to(torch::kFloat32);
      y_test = held_out_labels.to(torch::kLong);
    } else {
      const int64_t n = images.size(0);
      IMAGINE_CHECK(n >= 2, "provide more labelled images",
                    "feature net: need at least 2 labelled images, got ", n);
      const int64_t n_test = std::max<int64_t>(1, n / 10);
      auto perm = shuffled(rng, n);
      auto test_idx = index_tensor(perm, 0, n_test, device),
           train_idx = index_tensor(perm, n_test, n, device);
      x_test = x_all.index_select(0, test_idx);
      y_test = y_all.index_select(0, test_idx);
      x_train = x_all.index_select(0, train_idx);
      y_train = y_all.index_select(0, train_idx);
    }
    IMAGINE_CHECK(x_train.size(0) >= 1, "provide more labelled images",
                  "feature net: no training images left");

    net->to(device);
    net->train();
    torch::optim::Adam opt(
        net->parameters(),
        torch::optim::AdamOptions(kLearningRate).betas({kAdamBeta1, kAdamBeta2}).eps(1e-8).weight_decay(0));
    const int64_t n = x_train.size(0);
    const int64_t epoch_steps = (n + kBatch - 1) / kBatch;
    const int64_t total_steps = std::clamp<int64_t>(kEpochs * epoch_steps, kMinSteps, kMaxSteps);
    const int64_t passes = (total_steps + epoch_steps - 1) / epoch_steps;
    const auto t0 = std::chrono::steady_clock::now();
    int64_t step = 0;
    for (int64_t pass = 1; step < total_steps; pass++) {
      auto perm = shuffled(rng, n);
      double loss_sum = 0;
      int64_t seen = 0, correct = 0;
      for (int64_t start = 0; start < n && step < total_steps; start += kBatch, step++) {
        auto idx = index_tensor(perm, start, std::min(n, start + kBatch), device);
        auto x = x_train.index_select(0, idx);
        auto y = y_train.index_select(0, idx);
        auto logits = net->forward(x);
        auto loss = torch::nn::functional::cross_entropy(logits, y);
        opt.zero_grad();
        loss.backward();
        opt.step();
        loss_sum += loss.item<double>() * double(x.size(0));
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
        seen += x.size(0);
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // One line per epoch; tiny sets run many short epochs, so only every tenth is shown.
      if (log && (pass <= 2 || pass == passes || pass % 10 == 0)) {
        char line[200];
        std::snprintf(line, sizeof(line),
                      "feature net: epoch %lld/%lld loss %.4f train accuracy %.3f (%.1f s)",
                      static_cast<long long>(pass), static_cast<long long>(passes), loss_sum / double(seen),
                      double(correct) / double(seen), secs);
        log(line);
      }
    }
    result.trained = true;
    result.test_accuracy = accuracy(net, x_test, y_test);
    net->to(torch::kCPU);  // saved from CPU so the file is identical whatever the device
    save(path, net, result, data_fingerprint);
    if (log) {
      char line[200];
      std::snprintf(line, sizeof(line), "feature net: held-out accuracy %.4f on %lld images; cached ",
                    result.test_accuracy, static_cast<long long>(x_test.size(0)));
      log(line + path);
    }
  }
  net->to(device);
  net->eval();
  if (info) *info = result;
  return net;
}

torch::Tensor extract_features(FeatureNet& net, const torch::Tensor& images, int64_t batch) {
  check_images(images, "images");
  IMAGINE_CHECK(batch >= 1, "", "extract_features: batch must be >= 1, got ", batch);
  torch::NoGradGuard no_grad;
  const bool was_training = net->is_training();
  net->eval();
  const auto device = net->parameters().front().device();
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < images.size(0); start += batch) {
    const int64_t end = std::min(images.size(0), start + batch);
    parts.push_back(
        net->features(images.slice(0, start, end).to(device, torch::kFloat32)).to(images.device()));
  }
  net->train(was_training);
  if (parts.empty()) return torch::zeros({0, kFeatureDim}, images.options().dtype(torch::kFloat32));
  return torch::cat(parts);
}

}  // namespace imagine
