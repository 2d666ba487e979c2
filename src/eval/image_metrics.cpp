// Sample-quality metrics on feature vectors. See image_metrics.h. Everything here works on
// the inputs' device; sums that lose precision in float32 (covariances, kernel means) are
// done in float64.
#include "eval/image_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"

namespace imagine {

namespace {

const char* const kShapeHint = "pass feature matrices of shape [N, D] with the same D for both sets";

void check_features(const torch::Tensor& t, const char* name, int64_t min_rows) {
  IMAGINE_CHECK(t.defined(), kShapeHint, name, " features are missing");
  IMAGINE_CHECK(t.dim() == 2, kShapeHint, name, " features must be [N, D], got shape ", t.sizes());
  IMAGINE_CHECK(t.size(0) >= min_rows, "use more samples", name, " features need at least ", min_rows,
                " rows, got ", t.size(0));
}

void check_same_width(const torch::Tensor& a, const torch::Tensor& b) {
  IMAGINE_CHECK(a.size(1) == b.size(1), kShapeHint, "feature sets have different widths: ", a.size(1), " and ",
                b.size(1));
}

// Rows per chunk so that a [rows, other_rows] block of `bytes_per` values stays near the
// budget. Bounded memory matters more than speed: the reference set may be 60k rows.
int64_t rows_for_budget(int64_t other_rows, int64_t bytes_per) {
  const int64_t budget = int64_t(256) << 20;  // ~256 MB per distance block
  return std::max<int64_t>(1, budget / std::max<int64_t>(1, other_rows * bytes_per));
}

// Symmetric positive semi-definite square root through an eigendecomposition. Tiny
// negative eigenvalues are rounding noise on a PSD matrix, so they are clamped to zero.
torch::Tensor psd_sqrt(const torch::Tensor& s) {
  auto eig = torch::linalg_eigh(s, "L");
  const auto& values = std::get<0>(eig);
  const auto& vectors = std::get<1>(eig);
  return torch::matmul(vectors * values.clamp_min(0).sqrt().unsqueeze(0), vectors.transpose(0, 1));
}

// k-th smallest distance from each row of `real` to the other rows (itself excluded):
// the radius of that point's k-NN ball.
torch::Tensor knn_radii(const torch::Tensor& real, int64_t k) {
  const int64_t n = real.size(0);
  const int64_t chunk = rows_for_budget(n, 8);
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    auto d = torch::cdist(real.slice(0, start, end), real);  // (chunk, n)
    // A point is not its own neighbour; duplicates elsewhere in the set still count.
    auto rows = torch::arange(end - start, torch::TensorOptions().dtype(torch::kLong).device(real.device()));
    d.index_put_({rows, rows + start}, std::numeric_limits<double>::infinity());
    parts.push_back(std::get<0>(d.topk(k, 1, /*largest=*/false, /*sorted=*/true)).select(1, k - 1));
  }
  return torch::cat(parts);
}

// Fraction of rows of `points` within the k-NN ball of at least one row of `manifold`.
double coverage(const torch::Tensor& manifold, const torch::Tensor& radii, const torch::Tensor& points) {
  const int64_t m = points.size(0);
  const int64_t chunk = rows_for_budget(manifold.size(0), 8);
  int64_t inside = 0;
  for (int64_t start = 0; start < m; start += chunk) {
    const int64_t end = std::min(m, start + chunk);
    auto d = torch::cdist(points.slice(0, start, end), manifold);  // (chunk, n)
    inside += d.le(radii.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(m);
}

// `count` distinct indices in [0, n), by a partial Fisher-Yates shuffle.
torch::Tensor draw_subset(Rng& rng, int64_t n, int64_t count, torch::Device device) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int64_t i = 0; i < count; i++) {
    const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - i)));
    std::swap(perm[i], perm[j]);
  }
  perm.resize(count);
  return torch::tensor(perm, torch::kLong).to(device);
}

}  // namespace

double frechet_distance(const torch::Tensor& a, const torch::Tensor& b) {
  check_features(a, "first", 2);
  check_features(b, "second", 2);
  check_same_width(a, b);
  auto x = a.to(torch::kFloat64), y = b.to(torch::kFloat64);
  auto mu_x = x.mean(0), mu_y = y.mean(0);
  auto xc = x - mu_x, yc = y - mu_y;
  auto cov_x = torch::matmul(xc.transpose(0, 1), xc) / double(x.size(0) - 1);
  auto cov_y = torch::matmul(yc.transpose(0, 1), yc) / double(y.size(0) - 1);

  // Tr((S_x S_y)^(1/2)) = Tr((S_x^(1/2) S_y S_x^(1/2))^(1/2)): the inner product is
  // symmetric PSD, so its eigenvalues are real and a complex sqrtm is never needed.
  auto root_x = psd_sqrt(cov_x);
  auto inner = torch::matmul(torch::matmul(root_x, cov_y), root_x);
  inner = (inner + inner.transpose(0, 1)) * 0.5;  // remove rounding asymmetry before eigvalsh
  const double trace_sqrt = torch::linalg_eigvalsh(inner, "L").clamp_min(0).sqrt().sum().item<double>();

  const double mean_term = (mu_x - mu_y).pow(2).sum().item<double>();
  const double trace_term = cov_x.trace().item<double>() + cov_y.trace().item<double>() - 2.0 * trace_sqrt;
  // The exact value is >= 0; a slightly negative sum is rounding on (nearly) equal sets.
  return std::max(0.0, mean_term + trace_term);
}

KernelDistance kernel_distance(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets,
                               int64_t subset_size, uint64_t seed) {
  check_features(a, "first", 2);
  check_features(b, "second", 2);
  check_same_width(a, b);
  IMAGINE_CHECK(subsets >= 1, "use at least one subset", "kernel_distance: subsets must be >= 1, got ", subsets);
  IMAGINE_CHECK(subset_size >= 2, "use subsets of at least two rows",
                "kernel_distance: subset_size must be >= 2, got ", subset_size);
  const int64_t na = std::min(subset_size, a.size(0));
  const int64_t nb = std::min(subset_size, b.size(0));
  const double dim = static_cast<double>(a.size(1));
  auto x_all = a.to(torch::kFloat64), y_all = b.to(torch::kFloat64);

  Rng rng(seed);
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; s++) {
    auto x = x_all.index_select(0, draw_subset(rng, a.size(0), na, a.device()));
    auto y = y_all.index_select(0, draw_subset(rng, b.size(0), nb, b.device()));
    auto kxx = (torch::matmul(x, x.transpose(0, 1)) / dim + 1).pow(3);
    auto kyy = (torch::matmul(y, y.transpose(0, 1)) / dim + 1).pow(3);
    auto kxy = (torch::matmul(x, y.transpose(0, 1)) / dim + 1).pow(3);
    // Unbiased: the diagonal k(x_i, x_i) terms are left out of the within-set means.
    const double xx = (kxx.sum() - kxx.trace()).item<double>() / double(na * (na - 1));
    const double yy = (kyy.sum() - kyy.trace()).item<double>() / double(nb * (nb - 1));
    const double xy = kxy.sum().item<double>() / double(na * nb);
    values.push_back(xx + yy - 2.0 * xy);
  }
  KernelDistance out;
  for (double v : values) out.mean += v;
  out.mean /= double(values.size());
  double var = 0;
  for (double v : values) var += (v - out.mean) * (v - out.mean);
  out.std = std::sqrt(var / double(values.size()));  // spread across subsets (population std)
  return out;
}

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k) {
  IMAGINE_CHECK(k >= 1, "use k >= 1 (3 is customary)", "precision_recall: k must be >= 1, got ", k);
  check_features(real, "real", k + 1);
  check_features(fake, "generated", k + 1);
  check_same_width(real, fake);
  // float64 so that a point and its exact copy come out at distance ~0, not at the
  // cancellation noise of float32's ||a||^2 + ||b||^2 - 2ab path inside cdist.
  auto r = real.to(torch::kFloat64), f = fake.to(torch::kFloat64);
  PrecisionRecall out;
  out.precision = coverage(r, knn_radii(r, k), f);
  out.recall = coverage(f, knn_radii(f, k), r);
  return out;
}

Nearest nearest_neighbours(const torch::Tensor& queries, const torch::Tensor& reference, int64_t chunk_rows) {
  check_features(queries, "query", 0);
  check_features(reference, "reference", 1);
  check_same_width(queries, reference);
  IMAGINE_CHECK(chunk_rows >= 0, "pass 0 to size chunks automatically",
                "nearest_neighbours: chunk_rows must be >= 0, got ", chunk_rows);
  auto q = queries.to(torch::kFloat32).contiguous();
  auto r = reference.to(torch::kFloat32).contiguous();
  const int64_t m = q.size(0), n = r.size(0);
  const int64_t ref_chunk = chunk_rows > 0 ? chunk_rows : std::min<int64_t>(n, 16384);
  const int64_t query_chunk = chunk_rows > 0 ? chunk_rows : rows_for_budget(ref_chunk, 4);

  auto best = torch::full({m}, std::numeric_limits<float>::infinity(), q.options());
  auto best_index = torch::zeros({m}, q.options().dtype(torch::kLong));
  auto r_norm = r.pow(2).sum(1);  // (n)
  for (int64_t qs = 0; qs < m; qs += query_chunk) {
    const int64_t qe = std::min(m, qs + query_chunk);
    auto qc = q.slice(0, qs, qe);
    auto q_norm = qc.pow(2).sum(1, /*keepdim=*/true);  // (mq, 1)
    auto best_c = best.slice(0, qs, qe);
    auto index_c = best_index.slice(0, qs, qe);
    for (int64_t rs = 0; rs < n; rs += ref_chunk) {
      const int64_t re = std::min(n, rs + ref_chunk);
      // Squared distances (mq, mr); only the ranking matters here, the distance itself
      // is recomputed exactly below.
      auto d2 = torch::addmm(q_norm + r_norm.slice(0, rs, re).unsqueeze(0), qc, r.slice(0, rs, re).transpose(0, 1),
                             /*beta=*/1.0, /*alpha=*/-2.0);
      auto found = d2.min(1);
      auto d = std::get<0>(found), idx = std::get<1>(found) + rs;
      // Strictly smaller only: on ties the earlier reference row wins, as argmin would.
      auto better = d.lt(best_c);
      best_c.copy_(torch::where(better, d, best_c));
      index_c.copy_(torch::where(better, idx, index_c));
    }
  }
  Nearest out;
  out.index = best_index;
  // The expanded form above cancels badly for near-copies (the case the copy audit cares
  // about), so the reported distance is measured directly against the chosen row.
  out.distance = m > 0 ? (q - r.index_select(0, best_index)).norm(2, 1) : torch::zeros({0}, q.options());
  return out;
}

}  // namespace imagine
