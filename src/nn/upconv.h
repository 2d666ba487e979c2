// A transposed 2-D convolution (the layer of torch::nn::ConvTranspose2d: same parameters,
// same shapes, same initialisation, same result) computed the fast way for the two shapes
// the image families use. LibTorch 1.13 runs CPU transposed convolutions through a slow
// im2col path while ordinary convolutions go through oneDNN, so:
//   * kernel k, stride 1, no padding on a 1x1 input (a generator's first layer) is a matrix
//     product: [N, Cin] x [Cin, Cout*k*k];
//   * kernel 4, stride 2, padding 1 (every up-sampling stage) is a sub-pixel convolution: one
//     3x3 convolution with 4*Cout outputs whose kernel is gathered from the 4x4 weight,
//     followed by a pixel shuffle (each output parity (a, b) sees a 2x2 part of the kernel).
// Other shapes, and layers with few output channels (where the 3x3 form's extra work does
// not pay), call conv_transpose2d. Measured speed-ups are in docs/benchmarks.md.
#pragma once
#include <cstdint>

#include <torch/torch.h>

namespace imagine::nn {

struct UpConv2dImpl : torch::nn::Module {
  UpConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  // The 3x3 kernel [4*Cout, Cin, 3, 3] of the sub-pixel form (exposed for tests).
  torch::Tensor subpixel_kernel() const;

  torch::Tensor weight;  // [Cin, Cout, k, k], as torch::nn::ConvTranspose2d
  torch::Tensor bias;    // [Cout] or undefined
  int64_t in, out, kernel, stride, padding;
  bool subpixel = false;  // use the sub-pixel form for stride-2 layers
};
TORCH_MODULE(UpConv2d);

}  // namespace imagine::nn
