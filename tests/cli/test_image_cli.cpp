// End-to-end tests of the image verbs: train a tiny VAE and GAN on Fashion-MNIST, then
// generate (grids, seeded files, reproducibility), vary, blend, interpolate, reconstruct,
// eval and info, exact GAN resume, class conditioning, and clean failures on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/metrics.h"
#include "../support/run_cli.h"
#include "../support/temp_dir.h"
#include "core/files.h"
#include "data/image_dataset.h"
#include "image/image.h"

namespace fs = std::filesystem;
using namespace imagine::testing;

namespace {

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(slurp(path)); }

std::vector<nlohmann::json> read_metrics(const std::string& dir) { return read_metrics_lines(dir); }

// The same image up to one 8-bit level: decoding in batches of different sizes may round
// the last float bit differently.
::testing::AssertionResult same_pixels(const imagine::Image& a, const imagine::Image& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels)
    return ::testing::AssertionFailure() << "different sizes";
  int worst = 0;
  for (size_t i = 0; i < a.pixels.size(); i++)
    worst = std::max(worst, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  if (worst > 1) return ::testing::AssertionFailure() << "pixels differ by up to " << worst;
  return ::testing::AssertionSuccess();
}

class ImageCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_tmp = make_temp_dir("imagine_image_cli_");
    ASSERT_FALSE(g_tmp.empty());
    cache_ = g_tmp + "/cache";
    vae_ = g_tmp + "/vae";
    gan_ = g_tmp + "/gan";
    for (auto [family, dir] : {std::pair{"vae", vae_}, std::pair{"gan", gan_}}) {
      auto args = train_args(family, dir, {});
      auto r = run_imagine(args, 300);
      if (!(r.exited && r.code == 0)) {
        log_ += describe(args, r);
        return;
      }
      if (std::string(family) == "vae") vae_log_ = r.err;
    }
    trained_ = true;
  }
  static void TearDownTestSuite() { fs::remove_all(g_tmp); }
  void SetUp() override { ASSERT_TRUE(trained_) << "training the shared tiny models failed:\n" << log_; }

  static std::vector<std::string> train_args(const std::string& family, const std::string& out,
                                             std::vector<std::string> extra) {
    std::vector<std::string> a = {"train",    "image", "--model",   family, "--out",           out,
                                  "--preset", "tiny",  "--threads", "1",    "--feature-cache", cache_};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::vector<std::string> verb(const std::string& v, const std::string& model,
                                       std::vector<std::string> extra) {
    std::vector<std::string> a = {v, "image", "--model", model, "--threads", "1", "--quiet"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static ProcResult ok(const std::vector<std::string>& args) {
    auto r = run_imagine(args, 300);
    EXPECT_TRUE(r.exited && r.code == 0) << describe(args, r);
    return r;
  }

  static inline std::string cache_, vae_, gan_, log_, vae_log_;
  static inline bool trained_ = false;
};

TEST_F(ImageCli, TrainingRecordsRecipeMetricsAndSampleGrids) {
  EXPECT_NE(vae_log_.find("data: 512 training + 256 held-out images"), std::string::npos) << vae_log_;
  const auto vae = read_json(vae_ + "/config.json"), gan = read_json(gan_ + "/config.json");
  EXPECT_EQ(vae["family"], "image");
  EXPECT_EQ(vae["architecture"]["family"], "vae");
  EXPECT_EQ(gan["architecture"]["family"], "gan");
  // DCGAN's Adam betas (0.5, 0.999) by default; the VAE keeps Adam's usual 0.9.
  EXPECT_DOUBLE_EQ(gan["training"]["recipe"]["beta1"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(gan["training"]["recipe"]["beta2"].get<double>(), 0.999);
  EXPECT_DOUBLE_EQ(gan["training"]["recipe"]["lr"].get<double>(), 2e-4);
  EXPECT_DOUBLE_EQ(vae["training"]["recipe"]["beta1"].get<double>(), 0.9);
  EXPECT_EQ(vae["dataset"]["classes"].size(), 10u);
  EXPECT_TRUE(vae["dataset"]["feature_net"]["trained"].get<bool>());
  // Evaluations log sample-quality metrics; the GAN logs both networks' losses.
  bool fid = false, d_loss = false;
  for (auto& j : read_metrics(gan_)) {
    fid = fid || (j.value("event", "") == "eval" && j.contains("fid") && j["fid"].get<double>() > 0);
    d_loss = d_loss || (j.contains("loss_d") && j.contains("loss_g"));
  }
  EXPECT_TRUE(fid);
  EXPECT_TRUE(d_loss);
  for (auto& j : read_metrics(vae_)) {
    if (j.value("event", "") == "eval") {
      EXPECT_TRUE(j.contains("elbo_nll") && j.contains("kid"));
    }
  }
  // A sample grid every --eval-every (20) steps: 8 x 8 tiles of 28 px with 2 px gaps.
  for (auto* dir : {&vae_, &gan_}) {
    for (auto* step : {"step-0000020.png", "step-0000040.png"}) {
      auto img = imagine::read_image(*dir + "/samples/" + step);
      EXPECT_EQ(img.width, 8 * 28 + 9 * 2) << *dir << " " << step;
      EXPECT_EQ(img.channels, 1);
    }
  }
}

TEST_F(ImageCli, GenerateWritesGridsAndSeededFilesReproducibly) {
  const std::string grid = g_tmp + "/grid.png";
  auto r = ok(verb("generate", vae_, {"--count", "4", "--out", grid, "--seed", "3"}));
  auto img = imagine::read_image(grid);
  EXPECT_EQ(img.width, 2 * 28 + 3 * 2);
  EXPECT_EQ(img.height, 2 * 28 + 3 * 2);
  bool seed_chunk = false;
  for (auto& [k, v] : imagine::read_png_text(grid))
    seed_chunk = seed_chunk || (k == "parameters" && v.find("Seed: 3,") != std::string::npos);
  EXPECT_TRUE(seed_chunk);

  const std::string dir = g_tmp + "/singles";
  for (auto* model : {&vae_, &gan_}) {
    fs::remove_all(dir);
    ok(verb("generate", *model, {"--count", "3", "--out", dir, "--seed", "10"}));
    for (int s = 10; s < 13; s++)
      EXPECT_TRUE(fs::exists(dir + "/sample-s" + std::to_string(s) + ".png")) << s;
    const std::string first = slurp(dir + "/sample-s10.png");
    ok(verb("generate", *model, {"--count", "1", "--out", dir + "/again.png", "--seed", "10"}));
    EXPECT_TRUE(same_pixels(imagine::read_image(dir + "/again.png"), imagine::decode_image(first, "s10")));
    EXPECT_NE(imagine::read_image(dir + "/sample-s11.png").pixels,
              imagine::decode_image(first, "s10").pixels);
  }
  // --upscale enlarges, --truncation is accepted.
  ok(verb("generate", gan_,
          {"--count", "1", "--out", g_tmp + "/big.png", "--upscale", "3", "--truncation", "0.7"}));
  EXPECT_EQ(imagine::read_image(g_tmp + "/big.png").width, 84);
}

TEST_F(ImageCli, InterpolationEndpointsDecodeFromTheEndpointLatents) {
  for (auto* model : {&vae_, &gan_}) {
    const std::string strip = g_tmp + "/strip.png";
    fs::remove_all(g_tmp + "/strip-frames");
    ok(verb("interpolate", *model, {"--from", "seed:5", "--to", "seed:9", "--steps", "5", "--out", strip}));
    EXPECT_EQ(imagine::read_image(strip).width, 5 * 28 + 6 * 2);
    for (int i = 0; i < 5; i++)
      EXPECT_TRUE(fs::exists(g_tmp + "/strip-frames/frame-000" + std::to_string(i) + ".png"));
    ok(verb("generate", *model, {"--count", "1", "--seed", "5", "--out", g_tmp + "/s5.png"}));
    ok(verb("generate", *model, {"--count", "1", "--seed", "9", "--out", g_tmp + "/s9.png"}));
    EXPECT_TRUE(same_pixels(imagine::read_image(g_tmp + "/strip-frames/frame-0000.png"),
                            imagine::read_image(g_tmp + "/s5.png")));
    EXPECT_TRUE(same_pixels(imagine::read_image(g_tmp + "/strip-frames/frame-0004.png"),
                            imagine::read_image(g_tmp + "/s9.png")));
    EXPECT_NE(imagine::read_image(g_tmp + "/strip-frames/frame-0002.png").pixels,
              imagine::read_image(g_tmp + "/s5.png").pixels);
  }
  expect_clean_failure(
      verb("interpolate", vae_, {"--from", "seed:x", "--to", "seed:1", "--out", g_tmp + "/x.png"}), 2);
  expect_clean_failure(
      verb("interpolate", vae_,
           {"--from", "seed:1", "--to", "seed:2", "--steps", "1", "--out", g_tmp + "/x.png"}),
      2);
}

TEST_F(ImageCli, VaryAndReconstructEncodeTheInput) {
  const std::string input = g_tmp + "/input.png";
  ok(verb("generate", vae_, {"--count", "1", "--seed", "77", "--out", input}));
  auto r = ok(verb("vary", vae_,
                   {"--input", input, "--count", "3", "--strength", "0.5", "--out", g_tmp + "/vary.png"}));
  EXPECT_NE(r.out.find("reconstruction mse"), std::string::npos) << r.out;
  EXPECT_EQ(imagine::read_image(g_tmp + "/vary.png").width, 3 * 28 + 4 * 2);  // 5 tiles: near-square 3 x 2
  // Strength 0: every variation is the reconstruction itself.
  ok(verb("vary", vae_, {"--input", input, "--count", "2", "--strength", "0", "--out", g_tmp + "/vary0"}));
  const auto recon = imagine::read_image(g_tmp + "/vary0/reconstruction.png");
  int variations = 0;
  for (auto& e : fs::directory_iterator(g_tmp + "/vary0"))
    if (e.path().filename().string().rfind("variation-", 0) == 0) {
      variations++;
      EXPECT_TRUE(same_pixels(imagine::read_image(e.path().string()), recon)) << e.path();
    }
  EXPECT_EQ(variations, 2);
  r = ok(verb("reconstruct", vae_, {"--input", input, "--out", g_tmp + "/recon.png"}));
  EXPECT_NE(r.out.find("psnr"), std::string::npos);
  EXPECT_TRUE(same_pixels(imagine::read_image(g_tmp + "/recon.png"), recon));
  // A GAN has no encoder: it searches for the latent and reports how well it matched.
  r = ok(verb("vary", gan_,
              {"--input", input, "--count", "2", "--search-steps", "20", "--out", g_tmp + "/gvary.png"}));
  EXPECT_NE(r.out.find("reconstruction mse"), std::string::npos) << r.out;
  // A JPEG-named file that is not an image, and a missing file.
  imagine::write_file_atomic(g_tmp + "/bad.jpg", "definitely not a jpeg");
  expect_clean_failure(verb("vary", vae_, {"--input", g_tmp + "/bad.jpg", "--out", g_tmp + "/v"}), 1);
  expect_clean_failure(verb("reconstruct", vae_, {"--input", g_tmp + "/nope.png", "--out", g_tmp + "/r.png"}),
                       1);
  expect_clean_failure(verb("vary", vae_, {"--input", input, "--strength", "2", "--out", g_tmp + "/v"}), 2);
}

TEST_F(ImageCli, BlendValidatesItsWeights) {
  const std::string a = g_tmp + "/ba.png", b = g_tmp + "/bb.png";
  ok(verb("generate", vae_, {"--count", "1", "--seed", "1", "--out", a}));
  ok(verb("generate", vae_, {"--count", "1", "--seed", "2", "--out", b}));
  auto r = ok(verb("blend", vae_, {"--inputs", a + ":0.3," + b + ":0.7", "--out", g_tmp + "/blend.png"}));
  EXPECT_NE(r.out.find(":0.3"), std::string::npos) << r.out;
  // Weights are normalised: 3 and 7 give the same blend as 0.3 and 0.7.
  ok(verb("blend", vae_, {"--inputs", a + ":3," + b + ":7", "--out", g_tmp + "/blend2.png"}));
  EXPECT_EQ(imagine::read_image(g_tmp + "/blend.png").pixels,
            imagine::read_image(g_tmp + "/blend2.png").pixels);
  for (const std::string& bad : std::vector<std::string>{a, a + ":-1," + b, a + ":abc," + b,
                                                         a + ":0," + b + ":0", a + ",," + b, a + ":nan," + b})
    expect_clean_failure(verb("blend", vae_, {"--inputs", bad, "--out", g_tmp + "/x.png"}), 2);
  expect_clean_failure(
      verb("blend", vae_, {"--inputs", a + "," + g_tmp + "/missing.png", "--out", g_tmp + "/x.png"}), 1);
}

TEST_F(ImageCli, EvalReportsDistancesLikelihoodAndNearestTrainingImages) {
  std::vector<std::string> args = {"eval",        vae_,      "--samples",       "64",  "--iw-k", "5",
                                   "--iw-images", "20",      "--limit",         "512", "--json", "--threads",
                                   "1",           "--quiet", "--feature-cache", cache_};
  auto r = ok(args);
  auto j = nlohmann::json::parse(r.out);
  for (auto* k : {"fid", "kid", "precision", "recall", "elbo_nll", "iw_nll", "fid_floor"})
    EXPECT_TRUE(j.contains(k)) << k << " missing in " << r.out.substr(0, 500);
  EXPECT_GT(j["fid"].get<double>(), 0);
  EXPECT_LT(j["fid_floor"].get<double>(), j["fid"].get<double>());
  EXPECT_LT(j["iw_nll"].get<double>(), j["elbo_nll"].get<double>() + 1.0);
  ASSERT_EQ(j["nearest_train_distance"].size(), 64u);
  EXPECT_GT(j["nearest_train_distance"][0].get<double>(), 0.0);
  // Deterministic for a seed.
  EXPECT_EQ(ok(args).out, r.out);
  auto g = ok({"eval", gan_, "--samples", "64", "--limit", "512", "--threads", "1", "--quiet",
               "--feature-cache", cache_});
  EXPECT_NE(g.out.find("fid "), std::string::npos) << g.out;
  EXPECT_NE(g.out.find("nearest training image"), std::string::npos) << g.out;
  auto info = ok({"info", gan_});
  EXPECT_NE(info.out.find("DCGAN"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Adam betas (0.5, 0.999)"), std::string::npos) << info.out;
}

TEST_F(ImageCli, GanResumeMatchesAnUninterruptedRun) {
  const std::string straight = g_tmp + "/gan-straight", resumed = g_tmp + "/gan-resumed";
  ok(train_args("gan", straight, {"--steps", "20", "--eval-every", "10", "--log-every", "1", "--quiet"}));
  ok(train_args("gan", resumed, {"--steps", "10", "--eval-every", "10", "--log-every", "1", "--quiet"}));
  // The preset is given again, so its logging cadence must be overridden again too.
  ok(train_args("gan", resumed,
                {"--steps", "20", "--resume", "--eval-every", "10", "--log-every", "1", "--quiet"}));
  auto a = read_metrics(straight), b = read_metrics(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); i++) {
    if (!a[i].contains("loss_d")) continue;
    EXPECT_EQ(a[i]["loss_d"], b[i]["loss_d"]) << "step " << a[i]["step"];
    EXPECT_EQ(a[i]["loss_g"], b[i]["loss_g"]) << "step " << a[i]["step"];
  }
  EXPECT_EQ(imagine::sha256_file(straight + "/checkpoint-latest/model.safetensors"),
            imagine::sha256_file(resumed + "/checkpoint-latest/model.safetensors"));
}

TEST_F(ImageCli, ConditionalModelsGenerateTheRequestedClass) {
  const std::string cgan = g_tmp + "/cgan";
  ok(train_args("gan", cgan, {"--conditional", "--steps", "10", "--quiet"}));
  EXPECT_EQ(read_json(cgan + "/config.json")["architecture"]["classes"], 10);
  ok(verb("generate", cgan,
          {"--count", "2", "--seed", "4", "--class", "Sneaker", "--out", g_tmp + "/sneakers.png"}));
  ok(verb("generate", cgan,
          {"--count", "2", "--seed", "4", "--class", "7", "--out", g_tmp + "/sneakers7.png"}));
  ok(verb("generate", cgan,
          {"--count", "2", "--seed", "4", "--class", "0", "--out", g_tmp + "/tshirts.png"}));
  EXPECT_NE(imagine::read_image(g_tmp + "/sneakers.png").pixels,
            imagine::read_image(g_tmp + "/tshirts.png").pixels);
  EXPECT_EQ(imagine::read_image(g_tmp + "/sneakers.png").pixels,
            imagine::read_image(g_tmp + "/sneakers7.png").pixels);
  auto r = run_imagine(verb("generate", cgan, {"--class", "Spaceship", "--out", g_tmp + "/x.png"}));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("Ankle boot"), std::string::npos) << r.err;  // the hint lists the classes
  expect_clean_failure(verb("generate", vae_, {"--class", "Sneaker", "--out", g_tmp + "/x.png"}), 2);
}

TEST_F(ImageCli, ExportWritesDatasetImagesAsTrainingSeesThem) {
  const std::string dir = g_tmp + "/export";
  auto r = ok({"export", "image", "--out", dir, "--count", "2", "--size", "32", "--channels", "3"});
  EXPECT_NE(r.out.find("test-0-Ankle_boot.png"), std::string::npos) << r.out;
  auto img = imagine::read_image(dir + "/test-1-Pullover.png");
  EXPECT_EQ(img.width, 32);
  EXPECT_EQ(img.channels, 3);
  // Inputs are prepared like the training data: a 32 px RGB file feeds the 28 px grey model.
  ok(verb("reconstruct", vae_, {"--input", dir + "/test-0-Ankle_boot.png", "--out", g_tmp + "/boot.png"}));
  expect_clean_failure({"export", "image", "--out", dir, "--first", "99999"}, 2);
}

TEST_F(ImageCli, BadTrainingInputFailsCleanly) {
  expect_clean_failure(train_args("vae", g_tmp + "/m1", {"--data", g_tmp + "/does-not-exist"}), 1);
  expect_clean_failure(train_args("vae", g_tmp + "/m2", {"--size", "30"}), 1);
  expect_clean_failure(train_args("vaee", g_tmp + "/m3", {}), 2);
  expect_clean_failure(train_args("gan", g_tmp + "/m4", {"--loss", "wgan-gp", "--d-norm", "batch"}), 1);
  fs::create_directories(g_tmp + "/junk");
  imagine::write_file_atomic(g_tmp + "/junk/a.png", "garbage");
  expect_clean_failure(train_args("vae", g_tmp + "/m5", {"--data", g_tmp + "/junk"}), 1);
  // An existing model is never overwritten.
  const std::string before = imagine::sha256_file(vae_ + "/model.safetensors");
  expect_clean_failure(train_args("vae", vae_, {}), 1);
  EXPECT_EQ(imagine::sha256_file(vae_ + "/model.safetensors"), before);
  // A corrupted weights file is refused, not loaded.
  const std::string broken = g_tmp + "/broken";
  fs::copy(vae_, broken, fs::copy_options::recursive);
  std::string w = slurp(broken + "/model.safetensors");
  w[w.size() - 10] ^= 0x40;
  imagine::write_file_atomic(broken + "/model.safetensors", w);
  expect_clean_failure(verb("generate", broken, {"--out", g_tmp + "/x.png"}), 1);
  // A text model's verbs refuse an image model and vice versa.
  expect_clean_failure({"generate", "text", "--model", vae_}, 1);
}

}  // namespace

// The first Ctrl-C stops every verb, not only training: a long evaluation and a long grid
// generation exit 128 + SIGINT within seconds of the signal, say so, and leave neither a
// temporary file nor a half-written output.
TEST_F(ImageCli, CtrlCStopsLongVerbsAtOnceAndLeavesNoTempFiles) {
  const std::string dir = g_tmp + "/interrupted";
  fs::create_directories(dir);
  const std::vector<std::vector<std::string>> runs = {
      {"eval", vae_, "--samples", "1000000", "--quiet", "--threads", "1", "--feature-cache", cache_},
      {"generate", "image", "--model", gan_, "--count", "100000", "--out", dir + "/grid.png", "--quiet",
       "--threads", "1"}};
  for (const auto& args : runs) {
    const pid_t pid = spawn_imagine(args, dir + "/run.out", dir + "/run.err");
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    ASSERT_EQ(waitpid(pid, nullptr, WNOHANG), 0)
        << "the verb must still be working: " << slurp(dir + "/run.err");
    const auto t0 = std::chrono::steady_clock::now();
    const ProcResult r = interrupt(pid, dir + "/run.out", dir + "/run.err", 60);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(r.exited) << describe(args, r);
    EXPECT_EQ(r.code, 128 + SIGINT) << describe(args, r);
    EXPECT_LT(took, 5.0) << "stopped " << took << " s after the signal";
    EXPECT_TRUE(r.err.find("interrupted") != std::string::npos) << r.err;
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_FALSE(fs::exists(dir + "/grid.png")) << "no output from a run that was stopped";
}
