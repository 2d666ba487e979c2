// See token_dataset.h.
#include "data/token_dataset.h"

#include "core/error.h"

namespace imagine {

TokenDataset::TokenDataset(const std::vector<int64_t>& tokens, torch::Device device)
    : tokens_(torch::tensor(tokens, torch::kLong)), device_(device) {}

std::pair<torch::Tensor, torch::Tensor> TokenDataset::batch(Rng& rng, int64_t batch, int64_t block) const {
  const int64_t n = size();
  IMAGINE_CHECK(n > block, "use a smaller --block-size or more data", "split of ", n,
                " tokens is too short for a context of ", block);
  std::vector<int64_t> starts(batch);
  for (auto& s : starts) s = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - block)));
  auto offsets = torch::tensor(starts, torch::kLong).unsqueeze(1) + torch::arange(block + 1, torch::kLong);
  auto windows = tokens_.index({offsets});  // (batch, block + 1)
  auto x = windows.slice(1, 0, block), y = windows.slice(1, 1, block + 1);
  return {to_device(x.contiguous(), device_), to_device(y.contiguous(), device_)};
}

}  // namespace imagine
