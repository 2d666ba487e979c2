// Image families learn: a small VAE's loss falls and its reconstructions of held-out
// Fashion-MNIST images beat the mean image; a small DCGAN trains without NaN and its samples
// vary. Both run through train_image, the pipeline behind `imagine train image`.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/image_dataset.h"
#include "image/image.h"
#include "eval/image_eval.h"
#include "models/image_model.h"
#include "train/train_image.h"

#include "../support/metrics.h"
#include "../support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

imagine::ImageTrainResult train(const std::string& out, std::vector<std::string> args) {
  args.insert(args.end(), {"--out", out, "--threads", "1", "--quiet", "--feature-cache", out + "-cache"});
  auto o = imagine::image_train_table().parse(args);
  return imagine::train_image(o, [](const std::string&) {});
}

std::vector<nlohmann::json> metrics(const std::string& dir) { return imagine::testing::read_metrics_lines(dir); }

class ImageTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(imagine::kDefaultImageData)) << "install dataset-fashion-mnist (scripts/install-deps.sh)";
    dir_ = imagine::testing::make_temp_dir("imagine_imgtrain_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ImageTraining, VaeLossFallsAndReconstructionBeatsTheMeanImage) {
  const std::string out = dir_ + "/vae";
  auto r = train(out, {"--model", "vae", "--limit", "3000", "--test-limit", "500", "--width", "16", "--batch-size",
                       "32", "--steps", "300", "--eval-every", "300", "--eval-samples", "64", "--log-every", "10"});
  ASSERT_EQ(r.outcome.step, 300);
  auto m = metrics(out);
  double first = -1, last = -1;
  for (auto& j : m)
    if (j.contains("loss") && !j.contains("event")) {
      if (first < 0) first = j["loss"].get<double>();
      last = j["loss"].get<double>();
    }
  EXPECT_LT(last, 0.75 * first) << "first " << first << " last " << last;

  imagine::ImageDataOptions dopt;
  dopt.limit = 3000;
  dopt.test_limit = 500;
  auto data = imagine::load_image_data(imagine::kDefaultImageData, dopt);
  auto model = imagine::load_image_model(out, torch::kCPU);
  auto x = imagine::images_to_float(data.test.images);
  auto enc = imagine::encode_images(model, x, {});
  const double mean_mse = (x - imagine::images_to_float(data.train.images).mean(0, true)).pow(2).mean().item<double>();
  EXPECT_LT(enc.mse, 0.6 * mean_mse) << "reconstruction " << enc.mse << " vs mean image " << mean_mse;
}

TEST_F(ImageTraining, GanTrainsWithoutNaNAndItsSamplesVary) {
  const std::string out = dir_ + "/gan";
  auto r = train(out, {"--model", "gan", "--limit", "2000", "--test-limit", "300", "--width", "16", "--batch-size",
                       "32", "--steps", "150", "--eval-every", "150", "--eval-samples", "64", "--log-every", "10"});
  ASSERT_EQ(r.outcome.step, 150);
  for (auto& j : metrics(out)) {
    if (j.contains("loss_d")) {
      EXPECT_TRUE(std::isfinite(j["loss_d"].get<double>()));
      EXPECT_TRUE(std::isfinite(j["loss_g"].get<double>()));
    }
  }
  auto model = imagine::load_image_model(out, torch::kCPU);
  auto samples = imagine::generate_images(model, 32, 0);
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  // Not collapsed to one image, and not flat: samples differ from each other and have structure.
  EXPECT_GT(samples.std(0).mean().item<double>(), 0.03);
  EXPECT_GT(samples.flatten(1).std(1).mean().item<double>(), 0.1);
}

TEST_F(ImageTraining, WganGpAndHingeWithSpectralNormTrain) {
  for (auto loss : {"wgan-gp", "hinge"}) {
    const std::string out = dir_ + "/" + loss;
    std::vector<std::string> args = {"--model", "gan", "--preset", "tiny", "--loss", loss, "--steps", "6",
                                     "--eval-every", "6"};
    if (std::string(loss) == "hinge") args.push_back("--spectral-norm");
    auto r = train(out, args);
    EXPECT_EQ(r.outcome.step, 6);
    EXPECT_TRUE(std::isfinite(r.outcome.best_val_loss));
  }
}

TEST_F(ImageTraining, ColourFolderTrainsBothFamiliesConditionally) {
  // Two classes of 48x36 RGB images (red-ish and blue-ish with noise), trained at 32 px:
  // the discretised-Gaussian VAE, three-stage networks, folder labels, conditioning.
  torch::manual_seed(0);
  for (const std::string cls : {"red", "blue"}) {
    fs::create_directories(dir_ + "/data/" + cls);
    for (int i = 0; i < 24; i++) {
      imagine::Image img(48, 36, 3);
      for (int y = 0; y < 36; y++)
        for (int x = 0; x < 48; x++)
          for (int c = 0; c < 3; c++) {
            const int base = (cls == "red") == (c == 0) ? 200 : 40;
            img.at(x, y, c) = static_cast<uint8_t>(std::clamp(base + (x * 7 + y * 3 + i * 11 + c * 5) % 41 - 20, 0, 255));
          }
      imagine::write_png(dir_ + "/data/" + cls + "/" + std::to_string(i) + ".png", img);
    }
  }
  for (const std::string model : {"vae", "gan"}) {
    const std::string out = dir_ + "/" + model;
    auto r = train(out, {"--model", model, "--data", dir_ + "/data", "--size", "32", "--conditional", "--preset",
                         "tiny", "--steps", "8", "--eval-every", "8", "--eval-samples", "32"});
    EXPECT_EQ(r.outcome.step, 8);
    EXPECT_TRUE(std::isfinite(r.outcome.best_val_loss)) << model;
    auto m = imagine::load_image_model(out, torch::kCPU);
    EXPECT_EQ(m.arch.channels, 3);
    EXPECT_EQ(m.arch.stages(), 3);
    EXPECT_EQ(m.classes, (std::vector<std::string>{"blue", "red"}));
    if (model == "vae") {
      EXPECT_EQ(m.arch.likelihood, "gaussian");
    }
    auto x = imagine::generate_images(m, 4, 0);
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  }
}

}  // namespace
