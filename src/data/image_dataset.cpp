// Image datasets: see image_dataset.h.
#include "data/image_dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/files.h"

namespace fs = std::filesystem;

namespace imagine {
namespace {

const char* kDataHint = "pass --data a folder of PNG/JPEG images or of IDX files (e.g. " "/usr/share/datasets/fashion-mnist)";

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_idx_name(const std::string& name) {
  const std::string n = lower(name);
  return n.find("-idx1-ubyte") != std::string::npos || n.find("-idx3-ubyte") != std::string::npos;
}

// A file next to `dir` named `stem` or `stem.gz`; "" when neither exists.
std::string find_with_gz(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem, stem + ".gz"}) {
    const fs::path p = fs::path(dir) / name;
    if (fs::exists(p)) return p.string();
  }
  return "";
}

// Resizes [N, S0, S0] single-channel IDX images to the requested size and channels.
torch::Tensor idx_to_tensor(const IdxArray& a, int64_t size, int64_t channels, int64_t limit,
                            const std::string& what) {
  IMAGINE_CHECK(a.dims.size() == 3, "pass an IDX image file (three dimensions: count, rows, columns)", what,
                " has ", a.dims.size(), " dimension(s), not an image file");
  int64_t n = a.dims[0];
  const int64_t h = a.dims[1], w = a.dims[2];
  if (limit > 0) n = std::min(n, limit);
  auto raw = torch::from_blob(const_cast<uint8_t*>(a.data.data()), {n, 1, h, w}, torch::kUInt8).clone();
  if (h == size && w == size && channels == 1) return raw;
  std::vector<torch::Tensor> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; i++) {
    Image img(static_cast<int>(w), static_cast<int>(h), 1);
    std::memcpy(img.pixels.data(), a.data.data() + i * h * w, h * w);
    Image r = to_channels(resize_cover(img, static_cast<int>(size)), static_cast<int>(channels));
    out.push_back(torch::from_blob(r.pixels.data(), {size, size, channels}, torch::kUInt8).permute({2, 0, 1}).clone());
  }
  return torch::stack(out);
}

torch::Tensor idx_labels(const IdxArray& a, int64_t n, const std::string& what) {
  IMAGINE_CHECK(a.dims.size() == 1, "pass the matching IDX label file (one dimension)", what, " is not a label file");
  IMAGINE_CHECK(a.dims[0] >= n, "the image and label files must have the same count", what, " has ", a.dims[0],
                " labels for ", n, " images");
  return torch::from_blob(const_cast<uint8_t*>(a.data.data()), {n}, torch::kUInt8).to(torch::kInt64);
}

void load_idx(const std::string& path, const ImageDataOptions& opt, ImageData* d) {
  d->format = "idx";
  d->image_size = opt.size > 0 ? opt.size : 28;
  d->channels = opt.channels > 0 ? opt.channels : 1;
  std::string train_images, train_labels, test_images, test_labels;
  if (fs::is_directory(path)) {
    train_images = find_with_gz(path, "train-images-idx3-ubyte");
    train_labels = find_with_gz(path, "train-labels-idx1-ubyte");
    test_images = find_with_gz(path, "t10k-images-idx3-ubyte");
    test_labels = find_with_gz(path, "t10k-labels-idx1-ubyte");
    IMAGINE_CHECK(!train_images.empty(), kDataHint, path, " has IDX files but no train-images-idx3-ubyte[.gz]");
  } else {
    // One image file: its labels and the t10k set are found by name when present.
    train_images = path;
    const std::string dir = fs::path(path).parent_path().string();
    std::string name = fs::path(path).filename().string();
    if (has_suffix(name, ".gz")) name = name.substr(0, name.size() - 3);
    auto swap = [](std::string s, const std::string& from, const std::string& to) {
      const size_t at = s.find(from);
      return at == std::string::npos ? std::string() : s.replace(at, from.size(), to);
    };
    const std::string lname = swap(name, "images-idx3", "labels-idx1");
    if (!lname.empty()) train_labels = find_with_gz(dir.empty() ? "." : dir, lname);
    const std::string tname = swap(name, "train", "t10k");
    if (!tname.empty() && tname != name) {
      test_images = find_with_gz(dir.empty() ? "." : dir, tname);
      const std::string tl = swap(tname, "images-idx3", "labels-idx1");
      if (!tl.empty()) test_labels = find_with_gz(dir.empty() ? "." : dir, tl);
    }
  }
  const IdxArray ti = read_idx(train_images);
  d->files_used = 1;
  d->train.images = idx_to_tensor(ti, d->image_size, d->channels, opt.limit, train_images);
  const int64_t n = d->train.images.size(0);
  if (!train_labels.empty()) {
    d->train.labels = idx_labels(read_idx(train_labels), n, train_labels);
    d->files_used++;
  }
  if (!test_images.empty()) {
    const IdxArray te = read_idx(test_images);
    d->files_used++;
    d->test.images = idx_to_tensor(te, d->image_size, d->channels, opt.test_limit, test_images);
    if (!test_labels.empty() && d->train.labels.defined()) {
      d->test.labels = idx_labels(read_idx(test_labels), d->test.images.size(0), test_labels);
      d->files_used++;
    }
    d->test_source = fs::path(test_images).filename().string();
  } else {
    // No separate test file: hold out the last rows.
    const int64_t held = std::max<int64_t>(1, static_cast<int64_t>(n * opt.test_fraction));
    IMAGINE_CHECK(n >= 2, kDataHint, train_images, " holds only ", n, " image(s)");
    d->test.images = d->train.images.slice(0, n - held);
    d->train.images = d->train.images.slice(0, 0, n - held);
    if (d->train.labels.defined()) {
      d->test.labels = d->train.labels.slice(0, n - held);
      d->train.labels = d->train.labels.slice(0, 0, n - held);
    }
    if (opt.test_limit > 0 && d->test.size() > opt.test_limit) {
      d->test.images = d->test.images.slice(0, 0, opt.test_limit);
      if (d->test.labels.defined()) d->test.labels = d->test.labels.slice(0, 0, opt.test_limit);
    }
    d->test_source = str("last ", held, " images of ", fs::path(train_images).filename().string());
  }
  if (d->train.labels.defined()) {
    const int64_t classes = d->train.labels.max().item<int64_t>() + 1;
    const bool fashion = lower(path).find("fashion") != std::string::npos && classes <= 10;
    for (int64_t c = 0; c < classes; c++)
      d->classes.push_back(fashion ? fashion_mnist_classes()[c] : std::to_string(c));
  }
}

// Stable across runs and machines: which files are held out depends only on their path.
bool held_out(const std::string& rel, double fraction) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : rel) h = (h ^ c) * 1099511628211ULL;
  return static_cast<double>(h % 10000) < fraction * 10000.0;
}

void load_folder(const std::string& root, const ImageDataOptions& opt, ImageData* d) {
  d->format = "folder";
  d->image_size = opt.size > 0 ? opt.size : 64;
  d->channels = opt.channels > 0 ? opt.channels : 3;
  struct Found {
    std::string rel, path, label;
  };
  std::vector<Found> found;
  std::map<std::pair<dev_t, ino_t>, std::string> seen;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path p = it->path();
    const std::string name = p.filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const std::string rel = fs::relative(p, root).string();
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      auto [at, fresh] = seen.insert({{st.st_dev, st.st_ino}, rel});
      if (!fresh) {
        d->skipped.push_back({rel, "duplicate of " + at->second + " (symlink or hard link)"});
        continue;
      }
    }
    const std::string ext = lower(p.extension().string());
    if (ext != ".png" && ext != ".jpg" && ext != ".jpeg") {
      d->skipped.push_back({rel, "not a .png/.jpg/.jpeg file"});
      continue;
    }
    const fs::path parent = fs::relative(p.parent_path(), root);
    const std::string label = parent.empty() || parent == "." ? "" : parent.begin()->string();
    found.push_back({rel, p.string(), label});
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.rel < b.rel; });

  // Labels only when every image sits in a first-level subfolder (a class).
  bool labelled = !found.empty();
  std::set<std::string> names;
  for (auto& f : found) {
    labelled = labelled && !f.label.empty();
    names.insert(f.label);
  }
  labelled = labelled && names.size() >= 2;
  if (labelled) d->classes.assign(names.begin(), names.end());

  std::vector<torch::Tensor> train_x, test_x;
  std::vector<int64_t> train_y, test_y;
  for (auto& f : found) {
    Image img;
    try {
      img = read_image(f.path);
    } catch (const Error& e) {
      d->skipped.push_back({f.rel, e.what()});
      continue;
    }
    if (img.width < 1 || img.height < 1) {
      d->skipped.push_back({f.rel, "empty image"});
      continue;
    }
    Image r = to_channels(resize_cover(img, static_cast<int>(d->image_size)), static_cast<int>(d->channels));
    auto t = torch::from_blob(r.pixels.data(), {d->image_size, d->image_size, d->channels}, torch::kUInt8)
                 .permute({2, 0, 1})
                 .clone();
    int64_t y = 0;
    if (labelled) y = std::distance(d->classes.begin(), std::find(d->classes.begin(), d->classes.end(), f.label));
    const bool test = held_out(f.rel, opt.test_fraction);
    if (test && (opt.test_limit == 0 || static_cast<int64_t>(test_x.size()) < opt.test_limit)) {
      test_x.push_back(t);
      test_y.push_back(y);
    } else if (!test && (opt.limit == 0 || static_cast<int64_t>(train_x.size()) < opt.limit)) {
      train_x.push_back(t);
      train_y.push_back(y);
    }
    d->files_used++;
  }
  if (train_x.empty() && test_x.empty()) {
    std::string why = d->skipped.empty() ? "no .png/.jpg/.jpeg files" : "skipped: " + summarize_skips(d->skipped);
    throw Error("no usable image in " + root + " (" + why + ")", kDataHint);
  }
  // Tiny folders: keep at least one image on each side.
  if (test_x.empty()) {
    test_x.push_back(train_x.back());
    test_y.push_back(train_y.back());
    if (train_x.size() > 1) {
      train_x.pop_back();
      train_y.pop_back();
    }
  } else if (train_x.empty()) {
    train_x.push_back(test_x.back());
    train_y.push_back(test_y.back());
  }
  d->train.images = torch::stack(train_x);
  d->test.images = torch::stack(test_x);
  if (labelled) {
    d->train.labels = torch::tensor(train_y, torch::kInt64);
    d->test.labels = torch::tensor(test_y, torch::kInt64);
  }
  d->test_source = str(static_cast<int>(opt.test_fraction * 100), "% of the files, chosen by a hash of their path");
}

}  // namespace

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

ImageData load_image_data(const std::string& path, const ImageDataOptions& opt) {
  IMAGINE_CHECK(!path.empty(), kDataHint, "missing --data");
  IMAGINE_CHECK(fs::exists(path), kDataHint, path, " does not exist");
  IMAGINE_CHECK(opt.size == 0 || opt.size == 28 || opt.size == 32 || opt.size == 64 || opt.size == 128,
                "use --size 28, 32, 64 or 128", "unsupported image size ", opt.size);
  IMAGINE_CHECK(opt.channels == 0 || opt.channels == 1 || opt.channels == 3, "use --channels 1 or 3",
                "unsupported channel count ", opt.channels);
  ImageData d;
  d.path = path;
  bool idx = !fs::is_directory(path) && is_idx_name(fs::path(path).filename().string());
  if (fs::is_directory(path)) {
    for (auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && is_idx_name(e.path().filename().string())) idx = true;
  }
  if (idx) {
    load_idx(path, opt, &d);
  } else if (fs::is_directory(path)) {
    load_folder(path, opt, &d);
  } else {
    // A single picture: train (and test) on it alone is useless, but IDX by content is not.
    const std::string bytes = read_file(path);
    const bool gz = bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
                    static_cast<unsigned char>(bytes[1]) == 0x8b;
    IMAGINE_CHECK(gz || (bytes.size() >= 4 && bytes[0] == 0 && bytes[1] == 0), kDataHint, path,
                  " is neither a folder of images nor an IDX file");
    load_idx(path, opt, &d);
  }
  Sha256 h;
  auto feed = [&](const torch::Tensor& t) {
    if (!t.defined()) return;
    auto c = t.contiguous();
    h.update(c.data_ptr(), c.numel() * c.element_size());
  };
  feed(d.train.images);
  feed(d.train.labels);
  d.fingerprint = h.hex_digest();
  return d;
}

torch::Tensor images_to_float(const torch::Tensor& u8) { return u8.to(torch::kFloat32).div_(255.0); }

torch::Tensor image_to_tensor(const Image& img) {
  return torch::from_blob(const_cast<uint8_t*>(img.pixels.data()), {img.height, img.width, img.channels},
                          torch::kUInt8)
      .permute({2, 0, 1})
      .to(torch::kFloat32)
      .div_(255.0);
}

Image tensor_to_image(const torch::Tensor& chw) {
  IMAGINE_CHECK(chw.dim() == 3, "", "expected a [C, H, W] tensor");
  auto t = chw.detach().to(torch::kCPU, torch::kFloat32).clamp(0, 1).mul(255.0).round().to(torch::kUInt8);
  t = t.permute({1, 2, 0}).contiguous();
  Image img(static_cast<int>(chw.size(2)), static_cast<int>(chw.size(1)), static_cast<int>(chw.size(0)));
  std::memcpy(img.pixels.data(), t.data_ptr<uint8_t>(), img.pixels.size());
  return img;
}

torch::Tensor image_like(const Image& img, int64_t channels, int64_t size) {
  return image_to_tensor(to_channels(resize_cover(img, static_cast<int>(size)), static_cast<int>(channels)));
}

torch::Tensor load_image_like(const std::string& path, int64_t channels, int64_t size) {
  return image_like(read_image(path), channels, size);
}

}  // namespace imagine
