// Image datasets: IDX files (MNIST / Fashion-MNIST, raw or .gz, with their labels) or a
// folder of PNG/JPEG images (recursive; first-level subfolders name the classes). Images
// are resized (aspect kept, centre crop) to one square size and channel count and held as
// uint8 tensors; corrupt files are skipped and counted, never fatal unless none is usable.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/skipped.h"
#include "image/image.h"

namespace imagine {

// Where `imagine train image` looks when --data is not given (Debian's dataset-fashion-mnist).
constexpr const char* kDefaultImageData = "/usr/share/datasets/fashion-mnist";

struct ImageSet {
  torch::Tensor images;  // [N, C, S, S] uint8
  torch::Tensor labels;  // [N] int64; undefined when the data has no labels
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

struct ImageDataOptions {
  int64_t size = 0;              // 0: 28 for IDX, 64 for folders
  int64_t channels = 0;          // 0: 1 for IDX, 3 for folders
  int64_t limit = 0;             // keep at most this many training images (0 = all)
  int64_t test_limit = 0;        // and at most this many held-out images (0 = all)
  double test_fraction = 0.1;    // folders / single IDX files: share held out (by path hash / last rows)
};

struct ImageData {
  ImageSet train, test;
  std::vector<std::string> classes;  // label names, index = label; empty when unlabeled
  int64_t channels = 1;
  int64_t image_size = 28;
  std::string format;                // "idx" or "folder"
  std::string path;
  std::string test_source;           // how the held-out set was chosen
  int64_t files_used = 0;            // images decoded and kept (folders) / IDX files read
  std::vector<SkippedFile> skipped;  // folders: files left out, with reasons
  std::string fingerprint;           // SHA-256 of the training pixels + labels (feature-net cache key)
};

// Throws imagine::Error with a hint when the path is missing, an IDX file is corrupt or no
// usable image was found.
ImageData load_image_data(const std::string& path, const ImageDataOptions& opt);

// Class names of the Fashion-MNIST labels 0..9.
const std::vector<std::string>& fashion_mnist_classes();

// Conversions between 8-bit images and float tensors in [0, 1].
torch::Tensor images_to_float(const torch::Tensor& u8);           // [N,C,S,S] uint8 -> float
torch::Tensor image_to_tensor(const Image& img);                  // -> [C, H, W] float in [0, 1]
Image tensor_to_image(const torch::Tensor& chw);                  // [C, H, W] float in [0, 1] -> Image
// Reads a PNG/JPEG file prepared like the training data (channels, size): [C, S, S] float.
torch::Tensor load_image_like(const std::string& path, int64_t channels, int64_t size);
// The same for an image already decoded (an upload).
torch::Tensor image_like(const Image& img, int64_t channels, int64_t size);

}  // namespace imagine
