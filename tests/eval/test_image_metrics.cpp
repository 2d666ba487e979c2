// Tests for eval/image_metrics: each metric against an independent computation (closed
// forms for Gaussians, brute-force loops for the k-NN and kernel sums) plus the limiting
// cases a user would check by hand (a set against itself, against a far-away set).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "eval/image_metrics.h"

namespace {

using Matrix = std::vector<std::vector<double>>;

Matrix to_matrix(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat64).contiguous();
  Matrix m(c.size(0), std::vector<double>(c.size(1)));
  auto acc = c.accessor<double, 2>();
  for (int64_t i = 0; i < c.size(0); i++)
    for (int64_t j = 0; j < c.size(1); j++) m[i][j] = acc[i][j];
  return m;
}

double dist(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

// Correlated Gaussian features: z @ L + 0.3, the mixing matrix L drawn from `mix_seed`
// (same mix_seed: same distribution) and the samples z from `seed`.
torch::Tensor correlated(int64_t n, int64_t d, uint64_t seed, uint64_t mix_seed = 1000) {
  auto mix_gen = at::detail::createCPUGenerator(mix_seed);
  auto mix = torch::randn({d, d}, mix_gen, torch::kFloat64) / std::sqrt(double(d));
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::matmul(torch::randn({n, d}, gen, torch::kFloat64), mix) + 0.3;
}

// N rows whose d columns are distinct Walsh functions (+-1 patterns): each column has mean
// exactly 0 and the columns are exactly orthogonal, so the sample covariance is exactly
// diag(scale^2) * N / (N - 1) and a closed form can be checked without sampling error.
torch::Tensor walsh_columns(int64_t n, const std::vector<double>& scale, int64_t first_mask) {
  auto out = torch::empty({n, int64_t(scale.size())}, torch::kFloat64);
  auto acc = out.accessor<double, 2>();
  for (int64_t r = 0; r < n; r++)
    for (size_t j = 0; j < scale.size(); j++) {
      int parity = 0;
      for (int64_t m = r & (first_mask + int64_t(j)); m != 0; m >>= 1) parity ^= int(m & 1);
      acc[r][j] = (parity ? -1.0 : 1.0) * scale[j];
    }
  return out;
}

TEST(ImageMetricsFrechet, SetAgainstItselfIsZero) {
  auto a = correlated(2000, 16, 1);
  const double scale = torch::var(a, 0).sum().item<double>();
  EXPECT_LT(imagine::frechet_distance(a, a), 1e-6 * scale);
  EXPECT_LT(imagine::frechet_distance(a.to(torch::kFloat32), a.to(torch::kFloat32)), 1e-5 * scale);
}

TEST(ImageMetricsFrechet, ShiftedMeanAddsSquaredShift) {
  auto a = correlated(1500, 12, 2);
  auto shift = torch::linspace(-1, 1, 12, torch::kFloat64);
  const double expected = shift.pow(2).sum().item<double>();
  EXPECT_NEAR(imagine::frechet_distance(a, a + shift), expected, 1e-6 * expected);
}

TEST(ImageMetricsFrechet, NoiseIsFarFromFeatures) {
  auto a = correlated(1000, 16, 3);
  auto noise = torch::rand({1000, 16}, torch::kFloat64) * 5;
  EXPECT_GT(imagine::frechet_distance(a, noise), 10.0);
}

TEST(ImageMetricsFrechet, MatchesDiagonalGaussianClosedForm) {
  // Covariances diag(a) and diag(b): the trace term is sum (sqrt(a_i) - sqrt(b_i))^2.
  const int64_t n = 1024;
  std::vector<double> sa = {1.0, 2.0, 0.5, 3.0, 0.1, 1.5}, sb = {0.5, 2.5, 0.5, 1.0, 0.7, 0.2};
  auto mean_a = torch::tensor({0.1, -0.2, 0.3, 0.0, 1.0, -1.0}, torch::kFloat64);
  auto mean_b = torch::tensor({0.0, 0.4, 0.3, -0.5, 1.0, 0.5}, torch::kFloat64);
  auto a = walsh_columns(n, sa, 1) + mean_a;
  auto b = walsh_columns(n, sb, 9) + mean_b;
  const double unbias = double(n) / double(n - 1);
  double expected = (mean_a - mean_b).pow(2).sum().item<double>();
  for (size_t i = 0; i < sa.size(); i++) {
    const double d = std::sqrt(sa[i] * sa[i] * unbias) - std::sqrt(sb[i] * sb[i] * unbias);
    expected += d * d;
  }
  EXPECT_NEAR(imagine::frechet_distance(a, b), expected, 1e-9 * expected);

  // Rotating both sets by one orthogonal matrix leaves the distance unchanged but makes
  // the covariances dense, so the general eigendecomposition path is exercised too.
  auto q = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kFloat64)));
  EXPECT_NEAR(imagine::frechet_distance(torch::matmul(a, q), torch::matmul(b, q)), expected, 1e-9 * expected);
}

TEST(ImageMetricsFrechet, SampledDiagonalGaussiansApproachClosedForm) {
  torch::manual_seed(11);
  const int64_t n = 200000;
  auto va = torch::tensor({1.0, 4.0, 0.25, 2.0}, torch::kFloat64);
  auto vb = torch::tensor({2.0, 1.0, 0.25, 0.5}, torch::kFloat64);
  auto a = torch::randn({n, 4}, torch::kFloat64) * va.sqrt();
  auto b = torch::randn({n, 4}, torch::kFloat64) * vb.sqrt() + 1.0;
  const double expected = 4.0 + (va.sqrt() - vb.sqrt()).pow(2).sum().item<double>();
  EXPECT_NEAR(imagine::frechet_distance(a, b), expected, 0.03 * expected);
}

TEST(ImageMetricsFrechet, MatchesTwoByTwoFormulaForNonCommutingCovariances) {
  // For 2x2 PSD matrices, Tr((S_a S_b)^(1/2)) = sqrt(Tr(S_a S_b) + 2 sqrt(det S_a det S_b)),
  // a formula independent of any eigendecomposition.
  auto a = correlated(500, 2, 4, 4);
  auto b = correlated(700, 2, 5, 5) * 1.7 - 0.4;
  auto cov = [](const torch::Tensor& x) {
    auto c = x - x.mean(0);
    return torch::matmul(c.t(), c) / double(x.size(0) - 1);
  };
  auto ca = cov(a), cb = cov(b);
  const double tr_prod = torch::matmul(ca, cb).trace().item<double>();
  const double dets = torch::det(ca).item<double>() * torch::det(cb).item<double>();
  const double expected = (a.mean(0) - b.mean(0)).pow(2).sum().item<double>() + ca.trace().item<double>() +
                          cb.trace().item<double>() - 2 * std::sqrt(tr_prod + 2 * std::sqrt(dets));
  EXPECT_NEAR(imagine::frechet_distance(a, b), expected, 1e-9 * std::abs(expected) + 1e-12);
}

TEST(ImageMetricsFrechet, RejectsMismatchedShapes) {
  EXPECT_THROW(imagine::frechet_distance(torch::rand({10, 3}), torch::rand({10, 4})), imagine::Error);
  EXPECT_THROW(imagine::frechet_distance(torch::rand({10}), torch::rand({10, 4})), imagine::Error);
  EXPECT_THROW(imagine::frechet_distance(torch::rand({1, 4}), torch::rand({10, 4})), imagine::Error);
}

// Unbiased MMD^2 with the cubic kernel by plain loops.
double brute_force_mmd(const Matrix& x, const Matrix& y) {
  const double d = double(x[0].size());
  auto k = [&](const std::vector<double>& u, const std::vector<double>& v) {
    double dot = 0;
    for (size_t i = 0; i < u.size(); i++) dot += u[i] * v[i];
    return std::pow(dot / d + 1, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (size_t i = 0; i < x.size(); i++)
    for (size_t j = 0; j < x.size(); j++)
      if (i != j) xx += k(x[i], x[j]);
  for (size_t i = 0; i < y.size(); i++)
    for (size_t j = 0; j < y.size(); j++)
      if (i != j) yy += k(y[i], y[j]);
  for (const auto& u : x)
    for (const auto& v : y) xy += k(u, v);
  const double m = double(x.size()), n = double(y.size());
  return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n);
}

TEST(ImageMetricsKernel, WholeSetSubsetsMatchBruteForce) {
  // subset_size above both set sizes: every subset is the whole set, reordered.
  auto a = correlated(40, 5, 6), b = correlated(30, 5, 7) + 0.5;
  const double expected = brute_force_mmd(to_matrix(a), to_matrix(b));
  auto kd = imagine::kernel_distance(a, b, 3, 1000, 0);
  EXPECT_NEAR(kd.mean, expected, 1e-9 * std::abs(expected) + 1e-12);
  EXPECT_NEAR(kd.std, 0.0, 1e-9 * std::abs(expected) + 1e-12);
}

TEST(ImageMetricsKernel, SameDistributionNearZeroShiftedClearlyPositive) {
  auto a = correlated(3000, 16, 8);
  auto same = imagine::kernel_distance(a, a, 10, 500, 1);
  auto other = imagine::kernel_distance(a, correlated(3000, 16, 8 + 100), 10, 500, 1);
  auto shifted = imagine::kernel_distance(a, a + 0.5, 10, 500, 1);
  EXPECT_LT(std::abs(same.mean), 0.01);
  EXPECT_GT(shifted.mean, 0.3);
  EXPECT_GT(shifted.mean, 20 * (std::abs(same.mean) + same.std));
  EXPECT_GT(shifted.mean, 20 * (std::abs(other.mean) + other.std));
}

TEST(ImageMetricsKernel, DeterministicForASeed) {
  auto a = correlated(800, 8, 9), b = correlated(900, 8, 10);
  auto r1 = imagine::kernel_distance(a, b, 5, 200, 42);
  auto r2 = imagine::kernel_distance(a, b, 5, 200, 42);
  auto r3 = imagine::kernel_distance(a, b, 5, 200, 43);
  EXPECT_EQ(r1.mean, r2.mean);
  EXPECT_EQ(r1.std, r2.std);
  EXPECT_NE(r1.mean, r3.mean);
  EXPECT_GT(r1.std, 0.0);
}

// Precision / recall by plain loops, written from the definition.
imagine::PrecisionRecall brute_force_pr(const Matrix& real, const Matrix& fake, size_t k) {
  auto radii = [k](const Matrix& s) {
    std::vector<double> r;
    for (size_t i = 0; i < s.size(); i++) {
      std::vector<double> d;
      for (size_t j = 0; j < s.size(); j++)
        if (j != i) d.push_back(dist(s[i], s[j]));
      std::sort(d.begin(), d.end());
      r.push_back(d[k - 1]);
    }
    return r;
  };
  auto covered = [](const Matrix& manifold, const std::vector<double>& r, const Matrix& pts) {
    size_t inside = 0;
    for (const auto& p : pts) {
      bool in = false;
      for (size_t j = 0; j < manifold.size() && !in; j++) in = dist(p, manifold[j]) <= r[j];
      inside += in;
    }
    return double(inside) / double(pts.size());
  };
  imagine::PrecisionRecall pr;
  pr.precision = covered(real, radii(real), fake);
  pr.recall = covered(fake, radii(fake), real);
  return pr;
}

TEST(ImageMetricsPrecisionRecall, SetAgainstItselfIsPerfect) {
  auto a = correlated(500, 8, 12);
  auto pr = imagine::precision_recall(a, a, 3);
  EXPECT_EQ(pr.precision, 1.0);
  EXPECT_EQ(pr.recall, 1.0);
}

TEST(ImageMetricsPrecisionRecall, FarAwaySetIsZero) {
  auto a = correlated(300, 8, 13);
  auto pr = imagine::precision_recall(a, a + 100.0, 3);
  EXPECT_EQ(pr.precision, 0.0);
  EXPECT_EQ(pr.recall, 0.0);
}

TEST(ImageMetricsPrecisionRecall, ModeCollapseKeepsPrecisionLosesRecall) {
  // Generated samples that are a central subset of the real ones: all plausible, little variety.
  auto real = correlated(1000, 4, 14);
  auto centred = (real - real.mean(0)).norm(2, 1);
  auto fake = real.index_select(0, torch::nonzero(centred.lt(centred.median())).squeeze(1)).slice(0, 0, 200);
  auto pr = imagine::precision_recall(real, fake, 3);
  EXPECT_EQ(pr.precision, 1.0);
  EXPECT_LT(pr.recall, 0.7);
  EXPECT_GT(pr.recall, 0.05);
}

TEST(ImageMetricsPrecisionRecall, MatchesBruteForce) {
  auto real = correlated(120, 3, 15), fake = correlated(90, 3, 16, 16) * 1.3 + 0.2;
  auto expected = brute_force_pr(to_matrix(real), to_matrix(fake), 3);
  auto got = imagine::precision_recall(real, fake, 3);
  EXPECT_DOUBLE_EQ(got.precision, expected.precision);
  EXPECT_DOUBLE_EQ(got.recall, expected.recall);
  EXPECT_GT(expected.precision, 0.0);
  EXPECT_LT(expected.precision, 1.0);
}

TEST(ImageMetricsPrecisionRecall, HandWorkedOneDimensionalCase) {
  // Real {0, 1, 2, 3}, k = 1: every ball has radius 1. Generated 0.5 and 3.9 fall inside,
  // -1 sits exactly on the boundary (inside), 10 is outside: precision 3/4. Generated
  // radii (k = 1): 0.5 -> 1.5, 10 -> 6.1, 3.9 -> 3.4, -1 -> 1.5; all four real points
  // fall inside one of them: recall 1.
  auto real = torch::tensor({0.0, 1.0, 2.0, 3.0}).unsqueeze(1);
  auto fake = torch::tensor({0.5, 10.0, 3.9, -1.0}).unsqueeze(1);
  auto pr = imagine::precision_recall(real, fake, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.75);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
}

TEST(ImageMetricsPrecisionRecall, RejectsTooFewPointsForK) {
  EXPECT_THROW(imagine::precision_recall(torch::rand({3, 2}), torch::rand({10, 2}), 3), imagine::Error);
  EXPECT_THROW(imagine::precision_recall(torch::rand({10, 2}), torch::rand({10, 2}), 0), imagine::Error);
}

void expect_matches_brute_force(const torch::Tensor& q, const torch::Tensor& r, int64_t chunk) {
  auto got = imagine::nearest_neighbours(q, r, chunk);
  ASSERT_EQ(got.distance.sizes(), torch::IntArrayRef({q.size(0)}));
  ASSERT_EQ(got.index.scalar_type(), torch::kLong);
  auto qm = to_matrix(q), rm = to_matrix(r);
  auto idx = got.index.accessor<int64_t, 1>();
  auto d = got.distance.to(torch::kFloat64).contiguous();
  auto dacc = d.accessor<double, 1>();
  for (size_t i = 0; i < qm.size(); i++) {
    double best = std::numeric_limits<double>::infinity();
    int64_t best_j = -1;
    for (size_t j = 0; j < rm.size(); j++) {
      const double dj = dist(qm[i], rm[j]);
      if (dj < best) best = dj, best_j = int64_t(j);
    }
    EXPECT_EQ(idx[i], best_j) << "query " << i << " chunk " << chunk;
    EXPECT_NEAR(dacc[i], best, 1e-5 * (1 + best)) << "query " << i << " chunk " << chunk;
  }
}

TEST(ImageMetricsNearest, MatchesBruteForceAcrossChunkSeams) {
  torch::manual_seed(17);
  auto r = torch::randn({500, 8});
  auto q = torch::randn({130, 8});
  for (int64_t chunk : {0, 1, 7, 64, 1000}) expect_matches_brute_force(q, r, chunk);
}

TEST(ImageMetricsNearest, FindsExactCopiesAtZeroDistance) {
  torch::manual_seed(18);
  auto r = torch::rand({300, 128}) * 10;  // large norms: the expanded form would cancel badly
  auto picks = torch::tensor({5, 299, 0, 123}, torch::kLong);
  auto got = imagine::nearest_neighbours(r.index_select(0, picks), r, 50);
  EXPECT_TRUE(torch::equal(got.index, picks));
  EXPECT_EQ(got.distance.abs().max().item<float>(), 0.0f);
}

TEST(ImageMetricsNearest, EmptyQueriesAndBadShapes) {
  auto got = imagine::nearest_neighbours(torch::rand({0, 4}), torch::rand({10, 4}));
  EXPECT_EQ(got.distance.numel(), 0);
  EXPECT_EQ(got.index.numel(), 0);
  EXPECT_THROW(imagine::nearest_neighbours(torch::rand({3, 4}), torch::rand({0, 4})), imagine::Error);
  EXPECT_THROW(imagine::nearest_neighbours(torch::rand({3, 4}), torch::rand({10, 5})), imagine::Error);
}

}  // namespace
