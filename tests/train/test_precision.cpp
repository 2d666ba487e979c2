// bf16 autocast: the option resolves sensibly, the guard switches matmuls to bfloat16 and
// restores float32 afterwards, and training under it follows the float32 loss curve.
#include <gtest/gtest.h>

#include "core/compat.h"
#include "core/error.h"
#include "core/runtime.h"
#include "models/gpt.h"
#include "train/optim.h"

namespace imagine {
namespace {

TEST(Precision, ResolvesNamesAndRejectsOthers) {
  EXPECT_EQ(resolve_precision("fp32", torch::kCPU), "fp32");
  EXPECT_EQ(resolve_precision("bf16", torch::kCPU), "bf16");
  const std::string a = resolve_precision("auto", torch::kCPU);
  EXPECT_TRUE(a == "fp32" || a == "bf16") << a;
  EXPECT_THROW(resolve_precision("fp8", torch::kCPU), UsageError);
}

TEST(Precision, GuardSwitchesMatmulsAndRestores) {
  auto lin = torch::nn::Linear(8, 4);
  auto x = torch::randn({2, 8});
  {
    compat::AutocastBf16 guard(torch::kCPU, true);
    EXPECT_EQ(lin(x).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  {
    compat::AutocastBf16 off(torch::kCPU, false);
    EXPECT_EQ(lin(x).scalar_type(), torch::kFloat);
  }
}

// Trains two identical tiny GPTs on the same batches, one per precision.
TEST(Precision, Bf16TrainingFollowsFp32) {
  GPTConfig c;
  c.vocab_size = 32;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  torch::manual_seed(3);
  GPT a(c), b(c);
  {
    torch::NoGradGuard no_grad;
    auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); i++) pb[i].copy_(pa[i]);
  }
  auto named = [](GPT& g) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& p : g->named_parameters()) out.push_back({p.key(), p.value()});
    return out;
  };
  AdamW oa(named(a), AdamWConfig{}), ob(named(b), AdamWConfig{});
  // A learnable pattern: token t is followed by (t * 3 + 1) mod 32.
  auto seq = torch::zeros({8, 17}, torch::kLong);
  for (int64_t r = 0; r < 8; r++) {
    int64_t t = r * 5 % 32;
    for (int64_t i = 0; i < 17; i++, t = (t * 3 + 1) % 32) seq[r][i] = t;
  }
  auto x = seq.slice(1, 0, 16), y = seq.slice(1, 1, 17);
  double first = 0, la = 0, lb = 0;
  for (int step = 0; step < 40; step++) {
    oa.zero_grad();
    auto loss_a = a->loss(x, y);
    loss_a.backward();
    oa.step(3e-3);
    ob.zero_grad();
    torch::Tensor loss_b;
    {
      compat::AutocastBf16 guard(torch::kCPU, true);
      loss_b = b->loss(x, y);
    }
    EXPECT_EQ(loss_b.scalar_type(), torch::kFloat);
    loss_b.backward();
    ob.step(3e-3);
    la = loss_a.item<double>();
    lb = loss_b.item<double>();
    if (step == 0) first = la;
  }
  EXPECT_LT(la, first - 1.0) << "fp32 did not learn";
  EXPECT_LT(lb, first - 1.0) << "bf16 did not learn";
  EXPECT_NEAR(la, lb, 0.1 * la + 0.05);
  for (auto& p : b->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);  // master weights stay fp32
}

}  // namespace
}  // namespace imagine
