// Pixel operations on 8-bit images: alpha removal, channel conversion, resizing and contact
// sheets. Resizing is separable (rows, then columns) with per-axis weight tables: area
// averaging when shrinking, so fine detail averages instead of aliasing, and bilinear
// interpolation when growing. No colour management: samples are treated as linear.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "image/detail.h"
#include "image/image.h"

namespace imagine {

namespace {

const char* kBugHint = "this is a bug in the caller; please report it";

void check_valid(const Image& img, const char* op) {
  IMAGINE_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4, kBugHint, op, ": image has ",
                img.channels, " channels; expected 1, 3 or 4");
  image_detail::check_image_budget(img.width, img.height, img.channels, op, kBugHint);
  IMAGINE_CHECK(img.pixels.size() == size_t(img.width) * img.height * img.channels, kBugHint, op,
                ": pixel buffer holds ", img.pixels.size(), " bytes, not ", img.width, "x", img.height, "x",
                img.channels);
}

// BT.601 luma with integer weights summing to 1000, rounded.
uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((299u * r + 587u * g + 114u * b + 500u) / 1000u);
}

// One output sample along an axis is the weighted sum of source samples
// [first, first + weights.size()).
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

// Weight tables mapping the source span [offset, offset + extent) onto `out` samples.
std::vector<Taps> plan_axis(int offset, int extent, int out, ResizeFilter filter) {
  std::vector<Taps> plan(out);
  const double scale = double(extent) / out;  // source samples per output sample
  for (int i = 0; i < out; i++) {
    Taps& t = plan[i];
    if (filter == ResizeFilter::Nearest) {
      t.first = offset + std::min(extent - 1, int((i + 0.5) * scale));
      t.weights = {1.0f};
    } else if (scale > 1.0) {
      // Area: average the source interval [lo, hi) this sample covers, partial samples
      // at either end weighted by how much of them lies inside.
      const double lo = i * scale;
      const double hi = std::min(double(extent), (i + 1) * scale);
      const int j0 = int(std::floor(lo));
      const int j1 = std::min(extent, int(std::ceil(hi)));
      t.first = offset + j0;
      double total = 0;
      for (int j = j0; j < j1; j++) {
        const double w = std::min(hi, double(j + 1)) - std::max(lo, double(j));
        t.weights.push_back(float(w));
        total += w;
      }
      for (float& w : t.weights) w = float(w / total);
    } else {
      // Bilinear between the two nearest source centres (pixel centres at j + 0.5, so a
      // scale of exactly 1 copies samples unchanged).
      const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, double(extent - 1));
      const int j0 = int(std::floor(x));
      const float f = float(x - j0);
      t.first = offset + j0;
      if (j0 + 1 < extent && f > 0.0f) {
        t.weights = {1.0f - f, f};
      } else {
        t.weights = {1.0f};
      }
    }
  }
  return plan;
}

// Resamples the source rectangle (x0, y0, w, h) of img to out_w x out_h.
Image resample(const Image& img, int x0, int y0, int w, int h, int out_w, int out_h, ResizeFilter filter) {
  const int c = img.channels;
  const std::vector<Taps> xs = plan_axis(x0, w, out_w, filter);
  const std::vector<Taps> ys = plan_axis(y0, h, out_h, filter);

  // Horizontal pass over only the source rows the vertical pass will read.
  std::vector<float> rows(size_t(h) * out_w * c);
  for (int y = 0; y < h; y++) {
    const uint8_t* src = img.pixels.data() + size_t(y0 + y) * img.width * c;
    float* dst = rows.data() + size_t(y) * out_w * c;
    for (int x = 0; x < out_w; x++) {
      const Taps& t = xs[x];
      for (int k = 0; k < c; k++) {
        float sum = 0;
        for (size_t j = 0; j < t.weights.size(); j++) sum += t.weights[j] * src[size_t(t.first + j) * c + k];
        dst[size_t(x) * c + k] = sum;
      }
    }
  }

  Image out(out_w, out_h, c);
  const size_t stride = size_t(out_w) * c;
  for (int y = 0; y < out_h; y++) {
    const Taps& t = ys[y];
    uint8_t* dst = out.pixels.data() + size_t(y) * stride;
    for (size_t i = 0; i < stride; i++) {
      float sum = 0;
      for (size_t j = 0; j < t.weights.size(); j++) sum += t.weights[j] * rows[size_t(t.first - y0 + j) * stride + i];
      dst[i] = static_cast<uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
    }
  }
  return out;
}

}  // namespace

Image drop_alpha(const Image& img) {
  check_valid(img, "drop_alpha");
  if (img.channels != 4) return img;
  Image out(img.width, img.height, 3);
  const size_t n = size_t(img.width) * img.height;
  for (size_t i = 0; i < n; i++) {
    const uint8_t a = img.pixels[4 * i + 3];
    for (int k = 0; k < 3; k++) out.pixels[3 * i + k] = image_detail::over_white(img.pixels[4 * i + k], a);
  }
  return out;
}

Image to_channels(const Image& img, int channels) {
  check_valid(img, "to_channels");
  IMAGINE_CHECK(channels == 1 || channels == 3 || channels == 4, "use 1 (grey) or 3 (RGB) channels",
                "to_channels: cannot convert to ", channels, " channels");
  if (img.channels == channels) return img;
  const size_t n = size_t(img.width) * img.height;
  Image out(img.width, img.height, channels);
  if (channels == 4) {
    // Only 1 or 3 channels reach here: add opaque alpha.
    for (size_t i = 0; i < n; i++) {
      for (int k = 0; k < 3; k++) out.pixels[4 * i + k] = img.pixels[i * img.channels + (img.channels == 3 ? k : 0)];
      out.pixels[4 * i + 3] = 255;
    }
    return out;
  }
  const Image flat = drop_alpha(img);  // 1 or 3 channels from here on
  if (flat.channels == channels) return flat;
  if (channels == 1) {
    for (size_t i = 0; i < n; i++) out.pixels[i] = luma(flat.pixels[3 * i], flat.pixels[3 * i + 1], flat.pixels[3 * i + 2]);
  } else {
    for (size_t i = 0; i < n; i++) out.pixels[3 * i] = out.pixels[3 * i + 1] = out.pixels[3 * i + 2] = flat.pixels[i];
  }
  return out;
}

Image resize_cover(const Image& img, int size) {
  check_valid(img, "resize_cover");
  image_detail::check_image_budget(size, size, img.channels, "resize_cover", "choose a smaller image size");
  // Cropping the centred source square and scaling it is the same as scaling the shorter
  // side to `size` and cropping, without resampling pixels that are thrown away.
  const int side = std::min(img.width, img.height);
  const int x0 = (img.width - side) / 2;
  const int y0 = (img.height - side) / 2;
  return resample(img, x0, y0, side, side, size, size, ResizeFilter::Smooth);
}

Image resize_exact(const Image& img, int w, int h) { return resize_exact(img, w, h, ResizeFilter::Nearest); }

Image resize_exact(const Image& img, int w, int h, ResizeFilter filter) {
  check_valid(img, "resize_exact");
  image_detail::check_image_budget(w, h, img.channels, "resize_exact", "choose a smaller output size");
  return resample(img, 0, 0, img.width, img.height, w, h, filter);
}

Image make_grid(const std::vector<Image>& tiles, int columns, int pad, uint8_t background) {
  IMAGINE_CHECK(!tiles.empty(), kBugHint, "make_grid: no tiles");
  IMAGINE_CHECK(pad >= 0 && pad <= kMaxImageSide, kBugHint, "make_grid: padding ", pad, " is out of range");
  const Image& first = tiles[0];
  for (size_t i = 0; i < tiles.size(); i++) {
    check_valid(tiles[i], "make_grid");
    IMAGINE_CHECK(tiles[i].width == first.width && tiles[i].height == first.height &&
                      tiles[i].channels == first.channels,
                  kBugHint, "make_grid: tile ", i, " is ", tiles[i].width, "x", tiles[i].height, "x",
                  tiles[i].channels, " but tile 0 is ", first.width, "x", first.height, "x", first.channels);
  }
  const int64_t n = int64_t(tiles.size());
  int64_t cols = columns > 0 ? std::min<int64_t>(columns, n) : int64_t(std::ceil(std::sqrt(double(n))));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t width = cols * (first.width + pad) + pad;
  const int64_t height = rows * (first.height + pad) + pad;
  image_detail::check_image_budget(width, height, first.channels, "make_grid", "use fewer or smaller tiles");

  Image out(int(width), int(height), first.channels, background);
  const size_t tile_row = size_t(first.width) * first.channels;
  for (int64_t i = 0; i < n; i++) {
    const int64_t left = pad + (i % cols) * (first.width + pad);
    const int64_t top = pad + (i / cols) * (first.height + pad);
    for (int y = 0; y < first.height; y++) {
      const uint8_t* src = tiles[i].pixels.data() + size_t(y) * tile_row;
      uint8_t* dst = out.pixels.data() + (size_t(top + y) * width + left) * first.channels;
      std::copy(src, src + tile_row, dst);
    }
  }
  return out;
}

}  // namespace imagine
