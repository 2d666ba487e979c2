// The zero-bit image watermark of image_watermark.h: tiling, band-limited DCTs, keyed
// dithers, iterated QIM embedding and the gain-searched detector. Plain loops over double
// buffers; no tensors, no threads (callers mark one image at a time).
//
// Why these choices:
// - Orthonormal DCT per tile, so a coefficient error of e moves the pixels' summed squared
//   error by exactly e^2: the QIM step sets the PSNR directly (MSE ~ N delta^2 / 12 / pixels).
// - Only band_min <= u+v <= band_max is computed, with the first (band_max + 1) basis rows
//   of each matrix: the transforms cost about a third of full tile DCTs.
// - Dithers come from SipHash-2-4 (provenance/prf.h) of (tile, u, v) under a sub-key of
//   this watermark's own, not from a standard-library distribution, whose output is
//   implementation-defined: a mark made by one build must be found by any other.
// - Embedding alternates "move every coefficient to its nearest lattice point" with "round
//   and clip to 8-bit pixels" (projections onto the two sets). One pass loses much of the
//   mark wherever the image sits at 0 or 255 (Fashion-MNIST backgrounds, grid padding).
#include "provenance/image_watermark.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "provenance/prf.h"

namespace imagine {

namespace {

const char* kKeyHint = "the image watermark key must be exactly 32 bytes (raw bytes, not hex)";
const char* kBugHint = "this is a bug in the caller; please report it";
const char* kParamHint = "use the default ImageWatermarkParams, or check the values you changed";
constexpr double kPi = 3.14159265358979323846;

// ---- validation ----

void check_key(const std::string& key32) {
  IMAGINE_CHECK(key32.size() == 32, kKeyHint, "image watermark: key is ", key32.size(),
                " bytes; expected 32");
}

void check_image(const Image& img, const char* op) {
  IMAGINE_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4, kBugHint, op, ": image has ",
                img.channels, " channels; expected 1, 3 or 4");
  IMAGINE_CHECK(
      img.width >= 0 && img.height >= 0 && img.width <= kMaxImageSide && img.height <= kMaxImageSide,
      kBugHint, op, ": image size ", img.width, "x", img.height, " is out of range");
  IMAGINE_CHECK(img.pixels.size() == size_t(img.width) * img.height * img.channels, kBugHint, op,
                ": pixel buffer holds ", img.pixels.size(), " bytes, not ", img.width, "x", img.height, "x",
                img.channels);
}

void check_params(const ImageWatermarkParams& p) {
  IMAGINE_CHECK(p.tile >= 8 && p.tile <= 1024, kParamHint, "image watermark: tile ", p.tile,
                " is outside 8..1024");
  IMAGINE_CHECK(p.band_min >= 1, kParamHint, "image watermark: band_min ", p.band_min,
                " must be at least 1 (DC cannot carry the mark)");
  IMAGINE_CHECK(p.band_ratio > 0 && p.band_ratio <= 2, kParamHint, "image watermark: band_ratio ",
                p.band_ratio, " is outside (0, 2]");
  IMAGINE_CHECK(p.delta > 0 && p.delta < 1000, kParamHint, "image watermark: delta ", p.delta,
                " is outside (0, 1000)");
  IMAGINE_CHECK(p.density > 0 && p.density <= 1, kParamHint, "image watermark: density ", p.density,
                " is outside (0, 1]");
  IMAGINE_CHECK(p.iterations >= 1 && p.iterations <= 100, kParamHint, "image watermark: iterations ",
                p.iterations, " is outside 1..100");
  IMAGINE_CHECK(p.gain_min > 0 && p.gain_min <= 1 && p.gain_max >= 1 && p.gain_max < 10, kParamHint,
                "image watermark: gains [", p.gain_min, ", ", p.gain_max, "] must contain 1");
  IMAGINE_CHECK(p.gain_step > 0 && std::log(p.gain_max / p.gain_min) / std::log1p(p.gain_step) < 10000,
                kParamHint, "image watermark: gain_step ", p.gain_step, " is not positive or too fine");
  IMAGINE_CHECK(p.saturation_fill >= 0 && p.saturation_fill <= 1, kParamHint,
                "image watermark: saturation_fill ", p.saturation_fill, " is outside [0, 1]");
  IMAGINE_CHECK(p.psnr_floor >= 0 && p.psnr_floor < 99, kParamHint, "image watermark: psnr_floor ",
                p.psnr_floor, " is outside [0, 99)");
  IMAGINE_CHECK(p.min_step_ratio >= p.gain_min && p.min_step_ratio <= 1, kParamHint,
                "image watermark: min_step_ratio ", p.min_step_ratio,
                " must lie in [gain_min, 1], where the detector's gain search can find it");
  IMAGINE_CHECK(p.min_side >= 8, kParamHint, "image watermark: min_side ", p.min_side, " is below 8");
}

// ---- tiling and transforms ----

// Tile boundaries along one axis: n = max(1, round(side / tile)) near-equal spans. Depends
// only on the side, so the detector recovers the embedder's tiling from the image size.
std::vector<int> tile_bounds(int side, int tile) {
  const int n = std::max(1, static_cast<int>(std::lround(double(side) / tile)));
  std::vector<int> b(n + 1);
  for (int i = 0; i <= n; ++i) b[i] = static_cast<int>(int64_t(i) * side / n);
  return b;
}

// Orthonormal DCT-II basis of size n, row-major: m[k * n + x].
std::vector<double> dct_matrix(int n) {
  std::vector<double> m(size_t(n) * n);
  for (int k = 0; k < n; ++k) {
    const double a = std::sqrt((k == 0 ? 1.0 : 2.0) / n);
    for (int x = 0; x < n; ++x) m[size_t(k) * n + x] = a * std::cos(kPi * (2 * x + 1) * k / (2.0 * n));
  }
  return m;
}

// One tile and its marked coefficients (u, v), with their keyed dithers in [0, delta).
struct Tile {
  int x0, y0, w, h;
  int ru, rv;  // rows / columns of the DCT computed: u < ru, v < rv
  const std::vector<double>* dh;
  const std::vector<double>* dw;
  std::vector<int> index;  // u * rv + v for each marked coefficient
  std::vector<double> dither;
};

// Tiles point into `matrices`, so a Plan may be moved (std::map nodes stay put) but not copied.
struct Plan {
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan(Plan&&) = default;
  double delta = 0;
  std::map<int, std::vector<double>> matrices;  // by size; std::map keeps pointers stable
  std::vector<Tile> tiles;
  int64_t coefficients = 0;
};

// The keyed hash of one coefficient slot; its top 53 bits make the dither.
uint64_t slot_hash(const PrfKey& key, int tx, int ty, int u, int v, uint64_t purpose) {
  return prf(key, uint64_t(uint32_t(tx)) | uint64_t(uint32_t(ty)) << 32,
             uint64_t(uint32_t(u)) | uint64_t(uint32_t(v)) << 32, purpose);
}
constexpr uint64_t kDitherHash = 0, kRankHash = 1;

Plan make_plan(int width, int height, const std::string& key32, const ImageWatermarkParams& p) {
  Plan plan;
  plan.delta = p.delta;
  const std::vector<int> xs = tile_bounds(width, p.tile);
  const std::vector<int> ys = tile_bounds(height, p.tile);
  // A sub-key of its own, so no other watermark ever shares these PRF outputs.
  const PrfKey key = derive_prf_key(key32, "image-watermark-v1");
  for (size_t ty = 0; ty + 1 < ys.size(); ++ty) {
    for (size_t tx = 0; tx + 1 < xs.size(); ++tx) {
      Tile t;
      t.x0 = xs[tx];
      t.y0 = ys[ty];
      t.w = xs[tx + 1] - xs[tx];
      t.h = ys[ty + 1] - ys[ty];
      const int band_max = static_cast<int>(std::lround(p.band_ratio * std::min(t.w, t.h)));
      t.ru = std::min(t.h, band_max + 1);
      t.rv = std::min(t.w, band_max + 1);
      for (int n : {t.w, t.h})
        if (!plan.matrices.count(n)) plan.matrices[n] = dct_matrix(n);
      t.dh = &plan.matrices[t.h];
      t.dw = &plan.matrices[t.w];
      // Exactly round(density * band size) slots per tile, the lowest keyed ranks: a
      // per-slot coin flip would make N, and with it PSNR and robustness, vary by key.
      std::vector<std::pair<uint64_t, int>> band;  // (rank, u * rv + v)
      for (int u = 0; u < t.ru; ++u) {
        for (int v = 0; v < t.rv; ++v) {
          if (u + v < p.band_min || u + v > band_max) continue;
          band.push_back({slot_hash(key, int(tx), int(ty), u, v, kRankHash), u * t.rv + v});
        }
      }
      std::sort(band.begin(), band.end());
      const size_t keep = std::min(band.size(), size_t(std::lround(p.density * double(band.size()))));
      band.resize(keep);
      std::sort(band.begin(), band.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
      for (const auto& slot : band) {
        const int u = slot.second / t.rv, v = slot.second % t.rv;
        const uint64_t h = slot_hash(key, int(tx), int(ty), u, v, kDitherHash);
        t.index.push_back(slot.second);
        t.dither.push_back(double(h >> 11) * (1.0 / 9007199254740992.0) * p.delta);  // [0, delta)
      }
      plan.coefficients += int64_t(t.index.size());
      plan.tiles.push_back(std::move(t));
    }
  }
  return plan;
}

// C (ru x rv) = Dh[0:ru] * Y_tile * Dw[0:rv]^T; `a` is scratch.
void forward(const Tile& t, const std::vector<double>& luma, int width, std::vector<double>& a,
             std::vector<double>& c) {
  const double* dh = t.dh->data();
  const double* dw = t.dw->data();
  a.assign(size_t(t.ru) * t.w, 0.0);
  for (int y = 0; y < t.h; ++y) {
    const double* row = &luma[size_t(t.y0 + y) * width + t.x0];
    for (int u = 0; u < t.ru; ++u) {
      const double k = dh[size_t(u) * t.h + y];
      double* out = &a[size_t(u) * t.w];
      for (int x = 0; x < t.w; ++x) out[x] += k * row[x];
    }
  }
  c.assign(size_t(t.ru) * t.rv, 0.0);
  for (int u = 0; u < t.ru; ++u) {
    const double* in = &a[size_t(u) * t.w];
    for (int v = 0; v < t.rv; ++v) {
      const double* basis = &dw[size_t(v) * t.w];
      double s = 0;
      for (int x = 0; x < t.w; ++x) s += in[x] * basis[x];
      c[size_t(u) * t.rv + v] = s;
    }
  }
}

// field_tile += Dh[0:ru]^T * dc * Dw[0:rv]; `b` is scratch.
void inverse_add(const Tile& t, const std::vector<double>& dc, std::vector<double>& field, int width,
                 std::vector<double>& b) {
  const double* dh = t.dh->data();
  const double* dw = t.dw->data();
  b.assign(size_t(t.h) * t.rv, 0.0);
  for (int u = 0; u < t.ru; ++u) {
    const double* coef = &dc[size_t(u) * t.rv];
    for (int y = 0; y < t.h; ++y) {
      const double k = dh[size_t(u) * t.h + y];
      double* out = &b[size_t(y) * t.rv];
      for (int v = 0; v < t.rv; ++v) out[v] += k * coef[v];
    }
  }
  for (int y = 0; y < t.h; ++y) {
    double* row = &field[size_t(t.y0 + y) * width + t.x0];
    const double* in = &b[size_t(y) * t.rv];
    for (int v = 0; v < t.rv; ++v) {
      const double k = in[v];
      if (k == 0) continue;
      const double* basis = &dw[size_t(v) * t.w];
      for (int x = 0; x < t.w; ++x) row[x] += k * basis[x];
    }
  }
}

// Luma as double, BT.601 weights, unrounded: the weights sum to 1, so adding e to R, G
// and B adds exactly e to this luma (before rounding and clipping).
std::vector<double> luma_of(const Image& img) {
  const size_t n = size_t(img.width) * img.height;
  std::vector<double> y(n);
  const uint8_t* px = img.pixels.data();
  if (img.channels == 1) {
    for (size_t i = 0; i < n; ++i) y[i] = px[i];
  } else {
    const int c = img.channels;
    for (size_t i = 0; i < n; ++i) y[i] = 0.299 * px[i * c] + 0.587 * px[i * c + 1] + 0.114 * px[i * c + 2];
  }
  return y;
}

// Per pixel, the luma weight of the colour channels at 255: where a brightening may have
// clipped. 1 for a saturated grey pixel, 0.299 for an RGB pixel with only red at 255.
std::vector<double> saturation_of(const Image& img) {
  const size_t n = size_t(img.width) * img.height;
  std::vector<double> m(n, 0.0);
  const uint8_t* px = img.pixels.data();
  if (img.channels == 1) {
    for (size_t i = 0; i < n; ++i) m[i] = px[i] == 255 ? 1.0 : 0.0;
  } else {
    const int c = img.channels;
    for (size_t i = 0; i < n; ++i)
      m[i] = 0.299 * (px[i * c] == 255) + 0.587 * (px[i * c + 1] == 255) + 0.114 * (px[i * c + 2] == 255);
  }
  return m;
}

uint8_t to_u8(double v) { return static_cast<uint8_t>(std::min(255.0, std::max(0.0, std::nearbyint(v)))); }

// orig + field on every colour channel, rounded and clipped; alpha copied.
void apply_field(const Image& orig, const std::vector<double>& field, Image& out) {
  const size_t n = size_t(orig.width) * orig.height;
  const int c = orig.channels;
  const int colours = c == 1 ? 1 : 3;
  for (size_t i = 0; i < n; ++i)
    for (int k = 0; k < colours; ++k) out.pixels[i * c + k] = to_u8(orig.pixels[i * c + k] + field[i]);
}

}  // namespace

nlohmann::json ImageWatermarkParams::to_json() const {
  return {{"scheme", "dct-qim-zero-bit-v1"},
          {"tile", tile},
          {"band_min", band_min},
          {"band_ratio", band_ratio},
          {"delta", delta},
          {"density", density},
          {"iterations", iterations},
          {"gain_min", gain_min},
          {"gain_max", gain_max},
          {"gain_step", gain_step},
          {"saturation_fill", saturation_fill},
          {"psnr_floor", psnr_floor},
          {"min_step_ratio", min_step_ratio},
          {"min_side", min_side}};
}

namespace {

// One embedding at lattice step step_ratio * delta (dithers scaled alike), which the
// detector sees as gain step_ratio: c / (r delta) - d / delta is the phase it scores.
Image embed_at(const Image& img, const Plan& plan, double step_ratio, int iterations) {
  Image out = img;
  const std::vector<double> base = luma_of(img);
  std::vector<double> field(base.size(), 0.0);  // luma change to apply to the original
  std::vector<double> current(base.size());
  std::vector<double> a, b, c, dc;
  for (int it = 0; it < iterations; ++it) {
    // The luma the previous pass really produced, after rounding and clipping; the lattice
    // step then starts from there, so clipped pixels stop accumulating unreachable offsets.
    if (it > 0) {
      apply_field(img, field, out);
      const std::vector<double> now = luma_of(out);
      for (size_t i = 0; i < field.size(); ++i) field[i] = now[i] - base[i];
    }
    for (size_t i = 0; i < base.size(); ++i) current[i] = base[i] + field[i];
    for (const Tile& t : plan.tiles) {
      forward(t, current, img.width, a, c);
      dc.assign(c.size(), 0.0);
      for (size_t i = 0; i < t.index.size(); ++i) {
        const double x = c[t.index[i]];
        const double d = step_ratio * t.dither[i];
        const double step = step_ratio * plan.delta;
        dc[t.index[i]] = std::floor((x - d) / step + 0.5) * step + d - x;
      }
      inverse_add(t, dc, field, img.width, b);
    }
  }
  apply_field(img, field, out);
  return out;
}

// PSNR over the colour channels (alpha excluded); 99 for identical images.
double colour_psnr(const Image& a, const Image& b) {
  const int colours = a.channels == 1 ? 1 : 3;
  const size_t n = size_t(a.width) * a.height;
  double se = 0;
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < colours; ++k) {
      const double d = double(a.pixels[i * a.channels + k]) - b.pixels[i * a.channels + k];
      se += d * d;
    }
  }
  if (se == 0) return 99.0;
  return 10 * std::log10(255.0 * 255.0 * double(n * colours) / se);
}

}  // namespace

Image embed_image_watermark(const Image& img, const std::string& key32, const ImageWatermarkParams& p) {
  check_key(key32);
  check_params(p);
  check_image(img, "image watermark");
  if (img.width < p.min_side || img.height < p.min_side) return img;

  const Plan plan = make_plan(img.width, img.height, key32, p);
  // Clipping makes the distortion image-dependent (mostly where the image sits at 0 or
  // 255). When it would pass the PSNR floor, a finer lattice is used: MSE scales with the
  // step squared, and the detector's gain search finds the finer step like a darkening.
  double ratio = 1.0;
  Image out = embed_at(img, plan, ratio, p.iterations);
  for (int retry = 0; retry < 4 && p.psnr_floor > 0; ++retry) {
    const double q = colour_psnr(img, out);
    if (q >= p.psnr_floor || ratio <= p.min_step_ratio) break;
    ratio = std::max(p.min_step_ratio, ratio * std::pow(10.0, (q - p.psnr_floor) / 20.0) * 0.99);
    out = embed_at(img, plan, ratio, p.iterations);
  }
  return out;
}

ImageDetection detect_image_watermark(const Image& img, const std::string& key32,
                                      const ImageWatermarkParams& p, double z_threshold) {
  check_key(key32);
  check_params(p);
  check_image(img, "image watermark detection");
  ImageDetection r;
  if (img.width < p.min_side || img.height < p.min_side) return r;

  const Plan plan = make_plan(img.width, img.height, key32, p);
  const std::vector<double> luma = luma_of(img);
  const std::vector<double> saturated = saturation_of(img);
  // Phases (c / delta) and dithers (d / delta) of every marked coefficient, gathered once,
  // and the phases of the saturation map for the brightening correction below.
  std::vector<double> phase, dith, sat_phase;
  phase.reserve(plan.coefficients);
  dith.reserve(plan.coefficients);
  sat_phase.reserve(plan.coefficients);
  std::vector<double> a, c, cs;
  for (const Tile& t : plan.tiles) {
    forward(t, luma, img.width, a, c);
    forward(t, saturated, img.width, a, cs);
    for (size_t i = 0; i < t.index.size(); ++i) {
      phase.push_back(c[t.index[i]] / p.delta);
      sat_phase.push_back(cs[t.index[i]] / p.delta);
      dith.push_back(t.dither[i] / p.delta);
    }
  }
  r.coefficients = int64_t(phase.size());
  if (r.coefficients == 0) return r;

  // Gains g = (1 + step)^k for every k with g in [gain_min, gain_max]; k = 0 always.
  const double h = std::log1p(p.gain_step);
  const int k_lo = static_cast<int>(std::ceil(std::log(p.gain_min) / h - 1e-9));
  const int k_hi = static_cast<int>(std::floor(std::log(p.gain_max) / h + 1e-9));
  const double norm = 1.0 / std::sqrt(0.5 * double(phase.size()));
  r.statistic = -1e300;
  for (int k = k_lo; k <= k_hi; ++k) {
    const double g = std::exp(k * h);
    const double inv = 1.0 / g;
    // A brightening by g clipped every sample that was above 255 / g to 255; such a pixel
    // is put back at 255/g + fill * (255 - 255/g) instead of 255/g. Linear in the
    // saturation map, so one extra DCT serves all gains. It uses the image only, never the
    // key, so the null bound below still holds.
    const double lift = g > 1 ? p.saturation_fill * 255.0 * (1.0 - inv) : 0.0;
    double s = 0;
    for (size_t i = 0; i < phase.size(); ++i)
      s += std::cos(2 * kPi * (phase[i] * inv + lift * sat_phase[i] - dith[i]));
    s *= norm;
    if (k == 0) r.statistic_unit = s;
    if (s > r.statistic) {
      r.statistic = s;
      r.scale = g;
    }
  }
  r.gains_tested = k_hi - k_lo + 1;

  // Sub-Gaussian tail bound per gain, exp(-s^2 / 2), times the gains tried (Bonferroni).
  const double log_p = r.statistic > 0
                           ? std::min(0.0, std::log(double(r.gains_tested)) - 0.5 * r.statistic * r.statistic)
                           : 0.0;
  r.log10_p = log_p / std::log(10.0);
  r.p_value = std::exp(log_p);
  r.z = log_p < std::log(0.5) ? watermark_detail::z_from_log_p(log_p) : 0.0;
  r.detected = r.z > z_threshold;
  return r;
}

namespace watermark_detail {

double log_normal_sf(double z) {
  // erfc is accurate until it underflows near z = 38; past 30 the asymptotic series
  // Q(z) ~ phi(z) / z * (1 - 1/z^2 + 3/z^4 - 15/z^6) is better than 1e-10 relative.
  if (z < 30) return std::log(0.5 * std::erfc(z / std::sqrt(2.0)));
  const double z2 = z * z;
  return -0.5 * z2 - std::log(z) - 0.5 * std::log(2 * kPi) +
         std::log1p(-1 / z2 + 3 / (z2 * z2) - 15 / (z2 * z2 * z2));
}

double z_from_log_p(double log_p) {
  if (log_p >= std::log(0.5)) return 0.0;
  double lo = 0, hi = 1;
  while (log_normal_sf(hi) > log_p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (log_normal_sf(mid) > log_p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace watermark_detail

}  // namespace imagine
