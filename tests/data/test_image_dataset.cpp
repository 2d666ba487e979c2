// Tests for image datasets: class folders with corrupt and foreign files (skipped and
// counted), resizing, unlabeled folders, nothing usable, and the Fashion-MNIST IDX files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "data/image_dataset.h"
#include "image/image.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

using imagine::Image;

// A w x h RGB image of one colour.
Image solid(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  Image img(w, h, 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      img.at(x, y, 0) = r;
      img.at(x, y, 1) = g;
      img.at(x, y, 2) = b;
    }
  return img;
}

class ImageFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_imgdata_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ImageFolder, ClassSubfoldersBecomeLabelsAndBadFilesAreCounted) {
  fs::create_directories(dir_ + "/cats");
  fs::create_directories(dir_ + "/dogs/puppies");
  for (int i = 0; i < 12; i++) {
    imagine::write_png(dir_ + "/cats/c" + std::to_string(i) + ".png", solid(40, 20, 250, 0, 0));
    imagine::write_png(dir_ + "/dogs/puppies/d" + std::to_string(i) + ".png", solid(20, 40, 0, 0, 250));
  }
  // A truncated PNG, random bytes named .jpg, a text file and a hidden file.
  const std::string png = imagine::encode_png(solid(8, 8, 1, 2, 3));
  imagine::write_file_atomic(dir_ + "/cats/broken.png", png.substr(0, png.size() / 2));
  imagine::write_file_atomic(dir_ + "/dogs/noise.jpg", std::string(300, '\x5a'));
  imagine::write_file_atomic(dir_ + "/dogs/readme.txt", "not an image");
  imagine::write_file_atomic(dir_ + "/cats/.hidden.png", png);

  imagine::ImageDataOptions opt;
  opt.size = 32;
  opt.channels = 3;
  const auto d = imagine::load_image_data(dir_, opt);
  EXPECT_EQ(d.format, "folder");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"cats", "dogs"}));
  EXPECT_EQ(d.train.size() + d.test.size(), 24);
  EXPECT_EQ(d.files_used, 24);
  EXPECT_GE(d.test.size(), 1);
  EXPECT_EQ(d.train.images.sizes(), (std::vector<int64_t>{d.train.size(), 3, 32, 32}));
  ASSERT_TRUE(d.train.labels.defined());
  // Labels match the colours: cats red, dogs blue (the subfolder of dogs/ counts as dogs).
  for (int64_t i = 0; i < d.train.size(); i++) {
    const int64_t y = d.train.labels[i].item<int64_t>();
    const int red = d.train.images[i][0][16][16].item<uint8_t>();
    EXPECT_EQ(red > 128, y == 0) << i;
  }
  ASSERT_EQ(d.skipped.size(), 3u);  // broken.png, noise.jpg, readme.txt; the hidden file is ignored
  std::map<std::string, std::string> why;
  for (auto& s : d.skipped) why[s.path] = s.reason;
  EXPECT_NE(why["cats/broken.png"].find("PNG"), std::string::npos) << why["cats/broken.png"];
  EXPECT_NE(why["dogs/noise.jpg"].find("not a PNG or JPEG"), std::string::npos) << why["dogs/noise.jpg"];
  EXPECT_NE(why["dogs/readme.txt"].find(".png"), std::string::npos);
  EXPECT_NE(imagine::summarize_skips(d.skipped).find("1 "), std::string::npos);
  EXPECT_EQ(d.fingerprint.size(), 64u);
}

TEST_F(ImageFolder, ImagesAtTheTopLevelAreUnlabeledAndGreyConversionWorks) {
  for (int i = 0; i < 5; i++) {
    Image img = solid(30, 30, 255, 255, 255);
    img.at(15, 15, 0) = 0;
    imagine::write_png(dir_ + "/img" + std::to_string(i) + ".png", img);
  }
  imagine::ImageDataOptions opt;
  opt.size = 28;
  opt.channels = 1;
  const auto d = imagine::load_image_data(dir_, opt);
  EXPECT_TRUE(d.classes.empty());
  EXPECT_FALSE(d.train.labels.defined());
  EXPECT_EQ(d.train.images.size(1), 1);
  EXPECT_EQ(d.train.size() + d.test.size(), 5);
  EXPECT_GE(d.test.size(), 1);
  EXPECT_GE(d.train.size(), 1);
}

TEST_F(ImageFolder, NothingUsableIsAnErrorWithAHint) {
  imagine::write_file_atomic(dir_ + "/a.png", "not really a png");
  imagine::write_file_atomic(dir_ + "/b.txt", "text");
  try {
    imagine::load_image_data(dir_, {});
    FAIL() << "expected an error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no usable image"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("skipped"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(imagine::load_image_data(dir_ + "/missing", {}), imagine::Error);
  imagine::ImageDataOptions bad;
  bad.size = 30;
  EXPECT_THROW(imagine::load_image_data(dir_, bad), imagine::Error);
}

TEST_F(ImageFolder, CorruptIdxFilesAreErrorsNotCrashes) {
  // Right name, wrong magic: a clear error naming the file.
  imagine::write_file_atomic(dir_ + "/train-images-idx3-ubyte", std::string("\x00\x00\x0d\x03", 4) + std::string(64, '\0'));
  EXPECT_THROW(imagine::load_image_data(dir_, {}), imagine::Error);
  // Declared 10 images of 28x28, only a few bytes present.
  std::string hdr("\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
  imagine::write_file_atomic(dir_ + "/train-images-idx3-ubyte", hdr + std::string(100, '\1'));
  EXPECT_THROW(imagine::load_image_data(dir_, {}), imagine::Error);
}

TEST(FashionMnist, LoadsTrainAndTestWithLabelsAndNames) {
  ASSERT_TRUE(fs::exists(imagine::kDefaultImageData)) << "install dataset-fashion-mnist (scripts/install-deps.sh)";
  imagine::ImageDataOptions opt;
  opt.limit = 300;
  opt.test_limit = 200;
  const auto d = imagine::load_image_data(imagine::kDefaultImageData, opt);
  EXPECT_EQ(d.format, "idx");
  EXPECT_EQ(d.train.images.sizes(), (std::vector<int64_t>{300, 1, 28, 28}));
  EXPECT_EQ(d.test.images.sizes(), (std::vector<int64_t>{200, 1, 28, 28}));
  ASSERT_EQ(d.classes.size(), 10u);
  EXPECT_EQ(d.classes[9], "Ankle boot");
  EXPECT_GE(d.train.labels.min().item<int64_t>(), 0);
  EXPECT_LE(d.train.labels.max().item<int64_t>(), 9);
  // Fashion-MNIST's first training label is 9 (ankle boot), its first test label 9 too.
  EXPECT_EQ(d.train.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(d.test.labels[0].item<int64_t>(), 9);

  opt.size = 32;
  opt.channels = 3;
  const auto c = imagine::load_image_data(imagine::kDefaultImageData, opt);
  EXPECT_EQ(c.train.images.sizes(), (std::vector<int64_t>{300, 3, 32, 32}));
  // Grey replicated: the three channels agree.
  EXPECT_TRUE(torch::equal(c.train.images.select(1, 0), c.train.images.select(1, 2)));
}

TEST(ImageTensors, ConversionsRoundTrip) {
  Image img = solid(5, 3, 10, 128, 255);
  auto t = imagine::image_to_tensor(img);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 3, 5}));
  Image back = imagine::tensor_to_image(t);
  EXPECT_EQ(back.pixels, img.pixels);
}

}  // namespace
