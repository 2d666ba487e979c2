// A keyed, invisible, zero-bit ("is it there?") watermark for small generated images
// (28-128 px, grey or RGB) and contact sheets of them up to about 1100 px. It carries no
// payload and leaves crops, resizes, rotations and flips out of scope: it survives the
// mild edits an image meets when it is shared (JPEG, noise, brightness), not a deliberate
// attack. bench/results/image-watermark-*.md has the measured rates, failures included.
//
// Scheme: luma is cut into tiles of about `tile` pixels (a 28x28 image is one tile); in
// each tile's orthonormal 2-D DCT a keyed `density` fraction of the coefficients with
// band_min <= u+v <= band_max carries a dither-modulation QIM mark, c' = Q_delta(c - d) + d,
// with a keyed dither d in [0, delta) from prf.h (SipHash-2-4); embedding is iterated
// through 8-bit rounding and clipping. Detection scores S = sum cos(2 pi (c / g - d) / delta) /
// sqrt(N / 2) over a grid of brightness gains g and keeps the largest.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "image/image.h"

namespace imagine {

struct ImageWatermarkParams {
  int tile = 32;                 // target tile side in px; tiles per axis = max(1, round(side / tile))
  int band_min = 2;              // lowest u+v marked: DC and the first two AC terms are left alone
  double band_ratio = 0.6;       // highest u+v marked = round(band_ratio * shorter tile side)
  double delta = 28.0;           // QIM step, in orthonormal-DCT units of 8-bit luma
  double density = 0.42;         // keyed fraction of the band's coefficients that carry the mark
  int iterations = 6;            // embed -> round/clip -> re-embed passes (clipping at 0/255)
  double psnr_floor = 38.5;      // embed: where clipping pushes PSNR below this, retry with a finer step
  double min_step_ratio = 0.85;  //   but never finer than this fraction of delta (the mark weakens)
  double gain_min = 0.76;        // brightness gains searched by the detector: [gain_min, gain_max]
  double gain_max = 1.15;        //   in geometric steps of (1 + gain_step); the p-value is
  double gain_step = 0.006;      //   Bonferroni-corrected for the number of gains tried
  double saturation_fill = 0.4;  // detector: a 255 pixel at gain g > 1 is taken as 255/g + fill (255 - 255/g)
  int min_side = 16;             // smaller images are left unmarked / reported inconclusive

  nlohmann::json to_json() const;
};

// Marks the luma of `img` (1, 3 or 4 channels; RGB gets the same luma change in R, G and B,
// alpha is untouched) and returns the marked copy. Images with a side under
// p.min_side are returned unchanged: too few coefficients to say anything. The same
// input, key and parameters give the same bytes on a given platform (the DCT uses libm's
// cos, so another libm may differ in rare rounding; detection is unaffected).
// Throws imagine::Error when the key is not 32 bytes or the image is malformed.
Image embed_image_watermark(const Image& img, const std::string& key32, const ImageWatermarkParams& p = {});

struct ImageDetection {
  double z = 0;               // one-sided normal deviate of p_value (0 when p_value >= 0.5)
  double p_value = 1;         // false-positive probability bound, corrected for the gain search
  double log10_p = 0;         // log10(p_value), finite where p_value underflows to 0
  int64_t coefficients = 0;   // N, the coefficients scored; 0 = inconclusive (image too small)
  double scale = 1;           // the brightness gain with the highest score
  double statistic = 0;       // the highest raw score S over the gains (S at one gain ~ N(0,1) unmarked)
  double statistic_unit = 0;  // S at gain 1 alone, for null-distribution checks
  int gains_tested = 0;       // size of the gain grid (the Bonferroni factor)
  bool detected = false;      // z > z_threshold, i.e. p_value < Q(z_threshold)
};

// Scores `img` for the mark of `key32`. p_value is a bound, not an approximation: for an
// unmarked image (or one marked with another key) the dithers are independent uniform
// phases, each cos term has E[exp(l cos)] = I0(l) <= exp(l^2 / 4), so P(S >= s) <=
// exp(-s^2 / 2) at each gain, times the number of gains tried. Never throws for an image
// that is merely small: it returns coefficients = 0, p_value = 1.
ImageDetection detect_image_watermark(const Image& img, const std::string& key32,
                                      const ImageWatermarkParams& p = {}, double z_threshold = 4.0);

namespace watermark_detail {
// log of the standard normal upper tail Q(z), accurate far into the tail.
double log_normal_sf(double z);
// The z with log Q(z) = log_p (log_p <= log 0.5), by bisection.
double z_from_log_p(double log_p);
}  // namespace watermark_detail

}  // namespace imagine
