// Tests for eval/feature_net: shapes for every supported image size, training on a tiny
// synthetic labelled set, the on-disk cache (reuse, and rebuilding a damaged file), and the
// untrained fallback for unlabelled data.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "eval/feature_net.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

class FeatureNetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_feature_net_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Collects log lines so tests can tell a training run from a cache hit.
  std::function<void(const std::string&)> logger() {
    return [this](const std::string& line) { log_.push_back(line); };
  }
  bool logged(const std::string& needle) const {
    for (const auto& l : log_)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }

  std::string dir_;
  std::vector<std::string> log_;
};

// Two classes, dark (label 0) and bright (label 1), with pixel noise: [n, 1, 28, 28].
struct Labelled {
  torch::Tensor images, labels;
};
Labelled bright_vs_dark(int64_t n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto labels = torch::randint(0, 2, {n}, gen, torch::kLong);
  auto base = 0.35 + 0.3 * labels.to(torch::kFloat32).view({n, 1, 1, 1});
  auto images = (base + 0.25 * torch::randn({n, 1, 28, 28}, gen, torch::kFloat32)).clamp(0, 1);
  return {images, labels};
}

TEST(FeatureNetShapes, FeaturesAndLogitsForEverySupportedSize) {
  for (int64_t channels : {1, 3}) {
    for (int64_t size : {28, 32, 64, 128}) {
      imagine::FeatureNet net(channels, size, 10);
      auto x = torch::rand({3, channels, size, size});
      EXPECT_EQ(net->features(x).sizes(), torch::IntArrayRef({3, 128})) << channels << "x" << size;
      EXPECT_EQ(net->forward(x).sizes(), torch::IntArrayRef({3, 10})) << channels << "x" << size;
    }
  }
  imagine::FeatureNet net(1, 28, 10);
  EXPECT_THROW(net->features(torch::rand({2, 3, 28, 28})), imagine::Error);
  EXPECT_THROW(net->features(torch::rand({2, 1, 32, 32})), imagine::Error);
}

TEST(FeatureNetShapes, ExtractFeaturesBatchesWithoutChangingResults) {
  imagine::FeatureNet net(1, 28, 4);
  auto x = torch::rand({37, 1, 28, 28});
  auto all = imagine::extract_features(net, x, 500);
  auto batched = imagine::extract_features(net, x, 8);
  EXPECT_EQ(all.sizes(), torch::IntArrayRef({37, 128}));
  EXPECT_FALSE(all.requires_grad());
  EXPECT_TRUE(torch::allclose(all, batched, 1e-5, 1e-6));
  EXPECT_EQ(imagine::extract_features(net, torch::rand({0, 1, 28, 28})).sizes(), torch::IntArrayRef({0, 128}));
}

TEST_F(FeatureNetTest, LearnsBrightVersusDarkAndCachesTheResult) {
  auto train = bright_vs_dark(400, 1);
  auto test = bright_vs_dark(200, 2);
  imagine::FeatureNetInfo info;
  auto net = imagine::load_or_train_feature_net(dir_, "synthetic-v1", train.images, train.labels, test.images,
                                                test.labels, 2, &info, logger());
  EXPECT_TRUE(info.trained);
  EXPECT_GT(info.test_accuracy, 0.9);
  EXPECT_TRUE(logged("epoch 1/"));
  EXPECT_TRUE(fs::exists(info.path));
  EXPECT_EQ(fs::path(info.path).parent_path(), fs::path(dir_));
  EXPECT_EQ(fs::path(info.path).filename().string().rfind("features-", 0), 0u);
  auto features = imagine::extract_features(net, test.images);

  // Second call: same key, so the weights come from disk and nothing is trained.
  log_.clear();
  imagine::FeatureNetInfo again;
  auto cached = imagine::load_or_train_feature_net(dir_, "synthetic-v1", train.images, train.labels, test.images,
                                                   test.labels, 2, &again, logger());
  EXPECT_FALSE(logged("epoch"));
  EXPECT_TRUE(logged("loaded"));
  EXPECT_EQ(again.path, info.path);
  EXPECT_TRUE(again.trained);
  EXPECT_EQ(again.test_accuracy, info.test_accuracy);
  EXPECT_TRUE(torch::equal(imagine::extract_features(cached, test.images), features));

  // Another fingerprint is another network.
  log_.clear();
  imagine::FeatureNetInfo other;
  imagine::load_or_train_feature_net(dir_, "synthetic-v2", train.images, train.labels, test.images, test.labels, 2,
                                     &other, logger());
  EXPECT_NE(other.path, info.path);
  EXPECT_TRUE(logged("epoch 1/"));
}

TEST_F(FeatureNetTest, DamagedCacheIsRebuilt) {
  // Documented choice: the cache is derived data, so a damaged file is retrained and
  // replaced (with a log line) rather than reported as an error.
  auto train = bright_vs_dark(300, 3);
  imagine::FeatureNetInfo info;
  auto net = imagine::load_or_train_feature_net(dir_, "damaged", train.images, train.labels, {}, {}, 2, &info,
                                                logger());
  ASSERT_TRUE(info.trained);
  EXPECT_GT(info.test_accuracy, 0.9);  // measured on the tenth held back from training
  auto features = imagine::extract_features(net, train.images);

  std::string bytes = imagine::read_file(info.path);
  bytes[bytes.size() - 5] ^= 0x40;  // one flipped bit in the weights: the checksum refuses it
  imagine::write_file_atomic(info.path, bytes);
  log_.clear();
  imagine::FeatureNetInfo rebuilt;
  auto again = imagine::load_or_train_feature_net(dir_, "damaged", train.images, train.labels, {}, {}, 2, &rebuilt,
                                                  logger());
  EXPECT_TRUE(logged("ignoring unusable cache"));
  EXPECT_TRUE(logged("epoch 1/"));
  EXPECT_TRUE(rebuilt.trained);
  // Training is seeded, so the rebuilt network matches the original.
  EXPECT_TRUE(torch::allclose(imagine::extract_features(again, train.images), features, 1e-4, 1e-5));

  // The rewritten file is valid again.
  log_.clear();
  imagine::load_or_train_feature_net(dir_, "damaged", train.images, train.labels, {}, {}, 2, nullptr, logger());
  EXPECT_TRUE(logged("loaded"));

}

TEST_F(FeatureNetTest, UnlabelledDataGetsAFixedUntrainedNetwork) {
  auto data = bright_vs_dark(50, 4);
  torch::manual_seed(7);
  auto before = torch::rand({4});
  torch::manual_seed(7);
  imagine::FeatureNetInfo info;
  auto net = imagine::load_or_train_feature_net(dir_, "unlabelled", data.images, {}, {}, {}, 10, &info, logger());
  // Building the seeded network must not disturb the caller's random stream.
  EXPECT_TRUE(torch::equal(torch::rand({4}), before));
  EXPECT_FALSE(info.trained);
  EXPECT_EQ(info.test_accuracy, 0.0);
  EXPECT_FALSE(logged("epoch"));
  EXPECT_TRUE(fs::exists(info.path));

  // The same network in a fresh cache directory, whatever the data: scores stay comparable.
  const std::string other_dir = dir_ + "/other";
  imagine::FeatureNetInfo info2;
  auto net2 = imagine::load_or_train_feature_net(other_dir, "something-else", bright_vs_dark(20, 5).images, {}, {},
                                                 {}, 10, &info2, nullptr);
  EXPECT_FALSE(info2.trained);
  EXPECT_TRUE(torch::equal(imagine::extract_features(net, data.images), imagine::extract_features(net2, data.images)));

  // A file that is not safetensors at all is rebuilt the same way (cheap here: nothing to train).
  imagine::write_file_atomic(info.path, "garbage");
  log_.clear();
  auto net3 = imagine::load_or_train_feature_net(dir_, "unlabelled", data.images, {}, {}, {}, 10, nullptr, logger());
  EXPECT_TRUE(logged("ignoring unusable cache"));
  EXPECT_TRUE(torch::equal(imagine::extract_features(net3, data.images), imagine::extract_features(net, data.images)));
  log_.clear();
  imagine::load_or_train_feature_net(dir_, "unlabelled", data.images, {}, {}, {}, 10, nullptr, logger());
  EXPECT_TRUE(logged("loaded"));

  // Labels with fewer than two classes are treated as unlabelled too.
  imagine::FeatureNetInfo info3;
  imagine::load_or_train_feature_net(dir_, "one-class", data.images, torch::zeros({50}, torch::kLong), {}, {}, 1,
                                     &info3, nullptr);
  EXPECT_FALSE(info3.trained);
}

TEST_F(FeatureNetTest, RejectsBadLabels) {
  auto data = bright_vs_dark(20, 6);
  EXPECT_THROW(imagine::load_or_train_feature_net(dir_, "bad", data.images, data.labels + 5, {}, {}, 2, nullptr, {}),
               imagine::Error);
  EXPECT_THROW(imagine::load_or_train_feature_net(dir_, "bad", data.images, data.labels.slice(0, 0, 10), {}, {}, 2,
                                                  nullptr, {}),
               imagine::Error);
  EXPECT_THROW(imagine::load_or_train_feature_net(dir_, "bad", data.images.squeeze(1), data.labels, {}, {}, 2,
                                                  nullptr, {}),
               imagine::Error);
}

}  // namespace
