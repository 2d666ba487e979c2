// Sample-quality metrics for image families, computed on feature vectors (rows of a
// [N, D] tensor): a Fréchet distance (FID-style), a kernel distance (KID-style),
// precision / recall of the generated distribution (k-NN manifold estimate), and nearest-
// neighbour distances (used for "nearest training image" and, later, the copy audit).
// The features come from the project's own classifier (eval/feature_net.h); an Inception
// network cannot be downloaded here, so scores are comparable only under one feature net.
#pragma once
#include <cstdint>

#include <torch/torch.h>

namespace imagine {

// ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), computed in float64 with a
// symmetric eigendecomposition (stable, no complex sqrtm). >= 0; ~0 for a set against itself.
double frechet_distance(const torch::Tensor& a, const torch::Tensor& b);

// Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over
// `subsets` random subsets of `subset_size` rows of each set (clamped to the set sizes).
// Deterministic for a given seed.
struct KernelDistance {
  double mean = 0;
  double std = 0;
};
KernelDistance kernel_distance(const torch::Tensor& a, const torch::Tensor& b, int64_t subsets = 20,
                               int64_t subset_size = 1000, uint64_t seed = 0);

// Improved precision / recall (k-NN manifolds): precision = fraction of generated samples
// inside the real manifold (some real point's k-NN ball contains them), recall = fraction of
// real samples inside the generated manifold. Both in [0, 1].
struct PrecisionRecall {
  double precision = 0;
  double recall = 0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k = 3);

// For each row of `queries`, the Euclidean distance to its nearest row of `reference` and
// that row's index. Chunked so a 60k-row reference fits in memory (~256 MB per block);
// chunk_rows > 0 forces that many rows per query and reference block (tests use it to
// exercise the chunk seams). Ties go to the lowest reference index.
struct Nearest {
  torch::Tensor distance;  // [M] float
  torch::Tensor index;     // [M] int64
};
Nearest nearest_neighbours(const torch::Tensor& queries, const torch::Tensor& reference, int64_t chunk_rows = 0);

}  // namespace imagine
