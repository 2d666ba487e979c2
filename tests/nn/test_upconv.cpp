// UpConv2d must be torch::nn::ConvTranspose2d computed another way: same outputs and same
// gradients (input, weight, bias) for every form it uses.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "nn/upconv.h"

namespace {

struct Case {
  int64_t in, out, kernel, stride, padding, size;
  bool bias;
  bool expect_subpixel;
};

TEST(UpConv2d, MatchesConvTranspose2dForwardAndBackward) {
  const std::vector<Case> cases = {
      {64, 32, 4, 2, 1, 7, true, true},    // up-sampling stage: sub-pixel form
      {32, 16, 4, 2, 1, 5, false, true},   // without bias
      {16, 3, 4, 2, 1, 8, true, false},    // few outputs: conv_transpose2d
      {72, 64, 7, 1, 0, 1, false, false},  // generator's first layer: matrix product
      {8, 8, 3, 1, 1, 6, true, false},     // any other shape: conv_transpose2d
  };
  for (const auto& c : cases) {
    torch::manual_seed(11);
    imagine::nn::UpConv2d mine(c.in, c.out, c.kernel, c.stride, c.padding, c.bias);
    EXPECT_EQ(mine->subpixel, c.expect_subpixel);
    auto ref = torch::nn::ConvTranspose2d(
        torch::nn::ConvTranspose2dOptions(c.in, c.out, c.kernel).stride(c.stride).padding(c.padding).bias(c.bias));
    {
      torch::NoGradGuard no_grad;
      ref->weight.copy_(mine->weight);
      if (c.bias) ref->bias.copy_(mine->bias);
    }
    auto x1 = torch::randn({3, c.in, c.size, c.size}, torch::requires_grad());
    auto x2 = x1.detach().clone().requires_grad_(true);
    auto y1 = mine->forward(x1), y2 = ref->forward(x2);
    ASSERT_EQ(y1.sizes(), y2.sizes());
    EXPECT_LT((y1 - y2).abs().max().item<double>(), 1e-4) << c.in << "->" << c.out;
    auto g = torch::randn_like(y1);
    y1.backward(g);
    y2.backward(g);
    auto rel = [](const torch::Tensor& a, const torch::Tensor& b) {
      return ((a - b).abs().max() / b.abs().max().clamp_min(1e-6)).item<double>();
    };
    EXPECT_LT(rel(x1.grad(), x2.grad()), 1e-5) << c.in << "->" << c.out;
    EXPECT_LT(rel(mine->weight.grad(), ref->weight.grad()), 1e-5) << c.in << "->" << c.out;
    if (c.bias) {
      EXPECT_LT(rel(mine->bias.grad(), ref->bias.grad()), 1e-5);
    }
  }
}

TEST(UpConv2d, InitialisesExactlyLikeConvTranspose2d) {
  torch::manual_seed(5);
  imagine::nn::UpConv2d mine(32, 16, 4, 2, 1, true);
  torch::manual_seed(5);
  auto ref = torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(32, 16, 4).stride(2).padding(1));
  EXPECT_TRUE(torch::equal(mine->weight, ref->weight));
  EXPECT_TRUE(torch::equal(mine->bias, ref->bias));
  // Checkpoint names are those of ConvTranspose2d.
  auto names = mine->named_parameters().keys();
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias"}));
}

}  // namespace
