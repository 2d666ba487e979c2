// Tests for provenance/image_watermark: the normal-tail helpers against erfc, and the watermark itself on
// synthetic images and real Fashion-MNIST items: marked ones found at PSNR >= 38, unmarked and other-key ones
// not, noise and brightness survived, RGB / RGBA / grid sizes, tiny images inconclusive. The edits are
// written here, independently of the library. A few seconds in all.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "image/image.h"
#include "provenance/image_watermark.h"

namespace fs = std::filesystem;
using imagine::Image;
using imagine::ImageWatermarkParams;

namespace {

// Where scripts/install-deps.sh puts dataset-fashion-mnist (imagine::kDefaultImageData;
// that header pulls in LibTorch, which this test does not need).
const char* kFashionTest = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

std::string test_key(uint8_t salt = 0) {
  std::string k(32, '\0');
  for (int i = 0; i < 32; ++i) k[i] = static_cast<char>((i * 37 + 11) ^ salt);
  return k;
}

// splitmix64: a portable generator for the synthetic images and the noise.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) / 9007199254740992.0; }
  double normal() { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

uint8_t clip(double v) { return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::nearbyint(v)))); }

// A Fashion-MNIST-like picture: black background, a textured bright ellipse, some pixels
// at exactly 0 and 255 (the cases where clipping bites).
Image synthetic(int w, int h, int channels, uint64_t seed) {
  Rng rng{seed};
  Image img(w, h, channels);
  const double cx = w * (0.35 + 0.3 * rng.uniform()), cy = h * (0.35 + 0.3 * rng.uniform());
  const double rx = w * (0.2 + 0.2 * rng.uniform()), ry = h * (0.2 + 0.2 * rng.uniform());
  const double level = 120 + 160 * rng.uniform(), fx = 0.2 + 0.6 * rng.uniform(),
               fy = 0.2 + 0.6 * rng.uniform();
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double r = std::hypot((x - cx) / rx, (y - cy) / ry);
      const double v = r < 1 ? level * (1 - 0.3 * r) + 25 * std::sin(fx * x) * std::cos(fy * y) : 0.0;
      for (int c = 0; c < channels; ++c) img.at(x, y, c) = c == 3 ? 200 : clip(v * (1 - 0.2 * c));
    }
  }
  return img;
}

std::vector<Image> fashion_images(size_t n) {
  std::vector<Image> out;
  if (!fs::exists(kFashionTest)) return out;
  const imagine::IdxArray a = imagine::read_idx(kFashionTest);
  for (size_t i = 0; i < n && i < size_t(a.dims[0]); ++i) {
    Image img(28, 28, 1);
    std::memcpy(img.pixels.data(), &a.data[i * 784], 784);
    out.push_back(img);
  }
  return out;
}

double psnr(const Image& a, const Image& b) {
  double se = 0;
  size_t n = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    if (a.channels == 4 && i % 4 == 3) continue;
    const double d = double(a.pixels[i]) - b.pixels[i];
    se += d * d;
    ++n;
  }
  return se == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 * n / se);
}

Image add_noise(const Image& img, double sigma, uint64_t seed) {
  Rng rng{seed};
  Image out = img;
  for (auto& v : out.pixels) v = clip(v + sigma * rng.normal());
  return out;
}

// PIL ImageEnhance.Brightness: v * f, clipped to 255, truncated.
Image brighten(const Image& img, double f) {
  Image out = img;
  for (auto& v : out.pixels) {
    const float t = float(v) * float(f);
    v = t >= 255.0f ? 255 : static_cast<uint8_t>(t);
  }
  return out;
}

// Synthetic images plus, where installed, real Fashion-MNIST test images.
std::vector<Image> sample(size_t synthetic_count, size_t fashion_count) {
  std::vector<Image> out;
  for (size_t i = 0; i < synthetic_count; ++i) out.push_back(synthetic(28, 28, 1, 100 + i));
  for (const Image& img : fashion_images(fashion_count)) out.push_back(img);
  return out;
}

}  // namespace

TEST(NormalTail, MatchesErfcAndInverts) {
  using imagine::watermark_detail::log_normal_sf;
  using imagine::watermark_detail::z_from_log_p;
  for (double z : {0.5, 2.0, 4.0, 8.0, 20.0, 29.0}) {
    EXPECT_NEAR(log_normal_sf(z), std::log(0.5 * std::erfc(z / std::sqrt(2.0))), 1e-9 * std::max(1.0, z * z));
    EXPECT_NEAR(z_from_log_p(log_normal_sf(z)), z, 1e-8 * z);
  }
  // Continuity where the asymptotic series takes over, and far past erfc's underflow.
  EXPECT_NEAR(log_normal_sf(30.0 - 1e-9), log_normal_sf(30.0), 1e-6);
  EXPECT_NEAR(z_from_log_p(log_normal_sf(100.0)), 100.0, 1e-6);
  EXPECT_NEAR(z_from_log_p(std::log(3.167e-5)), 4.0, 1e-3);
  EXPECT_EQ(z_from_log_p(0.0), 0.0);
}

TEST(ImageWatermark, DefaultsArePinned) {
  // A changed default changes what old marks look like to the detector: make it visible.
  const nlohmann::json j = ImageWatermarkParams{}.to_json();
  EXPECT_EQ(j["scheme"], "dct-qim-zero-bit-v1");
  EXPECT_EQ(j["tile"], 32);
  EXPECT_EQ(j["band_min"], 2);
  EXPECT_DOUBLE_EQ(j["band_ratio"].get<double>(), 0.6);
  EXPECT_DOUBLE_EQ(j["delta"].get<double>(), 28.0);
  EXPECT_DOUBLE_EQ(j["density"].get<double>(), 0.42);
  EXPECT_EQ(j["iterations"], 6);
  EXPECT_DOUBLE_EQ(j["psnr_floor"].get<double>(), 38.5);
  EXPECT_DOUBLE_EQ(j["min_step_ratio"].get<double>(), 0.85);
  EXPECT_DOUBLE_EQ(j["gain_min"].get<double>(), 0.76);
  EXPECT_DOUBLE_EQ(j["gain_max"].get<double>(), 1.15);
  EXPECT_DOUBLE_EQ(j["gain_step"].get<double>(), 0.006);
  EXPECT_DOUBLE_EQ(j["saturation_fill"].get<double>(), 0.4);
  EXPECT_EQ(j["min_side"], 16);
}

TEST(ImageWatermark, MarkedIsDetectedAndInvisible) {
  const std::string key = test_key();
  for (const Image& img : sample(40, 100)) {
    const Image marked = imagine::embed_image_watermark(img, key);
    EXPECT_GE(psnr(img, marked), 38.0);
    const imagine::ImageDetection d = imagine::detect_image_watermark(marked, key);
    EXPECT_TRUE(d.detected) << "z " << d.z << " S " << d.statistic;
    EXPECT_GT(d.coefficients, 0);
    EXPECT_LT(d.p_value, 3.2e-5);
    EXPECT_NEAR(d.scale, 1.0, 0.16);  // the PSNR floor may have chosen a finer step
  }
}

namespace {

// Scores unmarked images: none may be detected, and the score at gain 1 — a sum of
// independent uniform-phase cosines — must look standard (mean 0, sd 1).
void expect_null(const std::vector<Image>& images) {
  const std::string key = test_key();
  double s1 = 0, s2 = 0;
  for (const Image& img : images) {
    const imagine::ImageDetection d = imagine::detect_image_watermark(img, key);
    EXPECT_FALSE(d.detected) << "z " << d.z;
    EXPECT_GT(d.p_value, 3.2e-5);
    s1 += d.statistic_unit;
    s2 += d.statistic_unit * d.statistic_unit;
  }
  const double n = double(images.size()), mean = s1 / n, sd = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.2);
  EXPECT_NEAR(sd, 1.0, 0.15);
}

}  // namespace

TEST(ImageWatermark, UnmarkedSyntheticIsNotDetected) { expect_null(sample(300, 0)); }

TEST(ImageWatermark, UnmarkedFashionMnistIsNotDetected) {
  if (!fs::exists(kFashionTest)) GTEST_SKIP() << kFashionTest << " is absent (install dataset-fashion-mnist)";
  expect_null(fashion_images(400));
}

TEST(ImageWatermark, AnotherKeyDoesNotDetect) {
  const std::string key = test_key(), other = test_key(0x5a);
  std::string one_byte = key;
  one_byte[31] ^= 1;  // the second half of the key matters as much as the first
  for (const Image& img : sample(30, 30)) {
    const Image marked = imagine::embed_image_watermark(img, key);
    EXPECT_FALSE(imagine::detect_image_watermark(marked, other).detected);
    EXPECT_FALSE(imagine::detect_image_watermark(marked, one_byte).detected);
  }
}

TEST(ImageWatermark, SurvivesNoiseAndBrightness) {
  const std::string key = test_key();
  const std::vector<Image> images = sample(20, 60);
  int noise = 0, darker = 0, brighter = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const Image marked = imagine::embed_image_watermark(images[i], key);
    noise += imagine::detect_image_watermark(add_noise(marked, 2.0, 7 + i), key).detected;
    darker += imagine::detect_image_watermark(brighten(marked, 0.9), key).detected;
    const imagine::ImageDetection b = imagine::detect_image_watermark(brighten(marked, 1.1), key);
    brighter += b.detected;
  }
  // The benchmark measures about 99-100% on 10,000 images; 90% leaves room for a small sample.
  const int need = int(0.9 * images.size());
  EXPECT_GE(noise, need);
  EXPECT_GE(darker, need);
  EXPECT_GE(brighter, need);
}

TEST(ImageWatermark, FindsTheBrightnessGain) {
  const std::string key = test_key();
  const Image marked = imagine::embed_image_watermark(synthetic(64, 64, 1, 3), key);
  const imagine::ImageDetection d = imagine::detect_image_watermark(brighten(marked, 0.9), key);
  EXPECT_TRUE(d.detected);
  EXPECT_NEAR(d.scale, 0.9, 0.02);
}

TEST(ImageWatermark, Deterministic) {
  const std::string key = test_key();
  const Image img = synthetic(64, 48, 3, 9);
  const Image a = imagine::embed_image_watermark(img, key);
  const Image b = imagine::embed_image_watermark(img, key);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_NE(a.pixels, img.pixels);
  const imagine::ImageDetection da = imagine::detect_image_watermark(a, key);
  const imagine::ImageDetection db = imagine::detect_image_watermark(b, key);
  EXPECT_EQ(da.statistic, db.statistic);
  EXPECT_EQ(da.coefficients, db.coefficients);
}

TEST(ImageWatermark, RgbRgbaAndOddSizes) {
  const std::string key = test_key();
  for (const Image& img : {synthetic(64, 64, 3, 1), synthetic(128, 128, 3, 2), synthetic(40, 100, 1, 4),
                           synthetic(50, 30, 4, 5)}) {
    const Image marked = imagine::embed_image_watermark(img, key);
    ASSERT_EQ(marked.width, img.width);
    ASSERT_EQ(marked.channels, img.channels);
    EXPECT_GE(psnr(img, marked), 38.0);
    EXPECT_TRUE(imagine::detect_image_watermark(marked, key).detected) << img.width << "x" << img.height;
    EXPECT_FALSE(imagine::detect_image_watermark(img, key).detected);
    if (img.channels == 4) {
      for (size_t i = 3; i < img.pixels.size(); i += 4) ASSERT_EQ(marked.pixels[i], img.pixels[i]);
    }
  }
}

TEST(ImageWatermark, ContactSheet) {
  const std::string key = test_key();
  std::vector<Image> tiles;
  for (int i = 0; i < 64; ++i) tiles.push_back(synthetic(28, 28, 1, 500 + i));
  const Image grid = imagine::make_grid(tiles, 8, 2, 255);  // 242 x 242 with white padding
  const Image marked = imagine::embed_image_watermark(grid, key);
  EXPECT_GE(psnr(grid, marked), 38.0);
  const imagine::ImageDetection d = imagine::detect_image_watermark(marked, key);
  EXPECT_TRUE(d.detected);
  EXPECT_GT(d.coefficients, 1000);
  EXPECT_TRUE(imagine::detect_image_watermark(brighten(marked, 1.1), key).detected);
  EXPECT_FALSE(imagine::detect_image_watermark(grid, key).detected);
}

TEST(ImageWatermark, TinyImagesAreInconclusive) {
  const std::string key = test_key();
  const Image tiny = synthetic(15, 40, 1, 6);
  EXPECT_EQ(imagine::embed_image_watermark(tiny, key).pixels, tiny.pixels);  // unchanged by design
  const imagine::ImageDetection d = imagine::detect_image_watermark(tiny, key);
  EXPECT_EQ(d.coefficients, 0);
  EXPECT_EQ(d.p_value, 1.0);
  EXPECT_FALSE(d.detected);
  EXPECT_EQ(imagine::detect_image_watermark(Image(0, 0, 1), key).coefficients, 0);
  // The smallest size that is marked at all still gives a decision.
  EXPECT_GT(imagine::detect_image_watermark(synthetic(16, 16, 1, 8), key).coefficients, 0);
}

TEST(ImageWatermark, RejectsBadKeysAndImages) {
  const Image img = synthetic(28, 28, 1, 1);
  for (const std::string& key : {std::string(), std::string(31, 'k'), std::string(64, 'k')}) {
    try {
      imagine::embed_image_watermark(img, key);
      FAIL() << "a " << key.size() << "-byte key was accepted";
    } catch (const imagine::Error& e) {
      EXPECT_FALSE(e.hint().empty());
    }
    EXPECT_THROW(imagine::detect_image_watermark(img, key), imagine::Error);
  }
  Image two(28, 28, 2);
  EXPECT_THROW(imagine::embed_image_watermark(two, test_key()), imagine::Error);
  Image short_buffer(28, 28, 1);
  short_buffer.pixels.resize(10);
  EXPECT_THROW(imagine::detect_image_watermark(short_buffer, test_key()), imagine::Error);
  ImageWatermarkParams bad;
  bad.delta = 0;
  EXPECT_THROW(imagine::embed_image_watermark(img, test_key(), bad), imagine::Error);
}
