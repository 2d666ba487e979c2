// See upconv.h.
#include "nn/upconv.h"

namespace imagine::nn {

namespace F = torch::nn::functional;

UpConv2dImpl::UpConv2dImpl(int64_t in_, int64_t out_, int64_t kernel_, int64_t stride_, int64_t padding_, bool with_bias)
    : in(in_), out(out_), kernel(kernel_), stride(stride_), padding(padding_) {
  // Built through ConvTranspose2d so the initialisation (and the random numbers it draws)
  // is exactly PyTorch's.
  auto ref = torch::nn::ConvTranspose2d(
      torch::nn::ConvTranspose2dOptions(in, out, kernel).stride(stride).padding(padding).bias(with_bias));
  weight = register_parameter("weight", ref->weight.detach().clone());
  if (with_bias) bias = register_parameter("bias", ref->bias.detach().clone());
  // Below 16 outputs the 3x3 form's 2.25x arithmetic outweighs the faster convolution.
  subpixel = kernel == 4 && stride == 2 && padding == 1 && out >= 16;
}

torch::Tensor UpConv2dImpl::subpixel_kernel() const {
  // Output parity a (row) at input offset d in {-1, 0, +1} uses kernel row:
  //   a = 0: d=-1 -> 3, d=0 -> 1, d=+1 -> none;   a = 1: d=-1 -> none, d=0 -> 2, d=+1 -> 0.
  // Index 4 is a zero row appended to the kernel for "none"; columns work the same way.
  static const std::vector<int64_t> rows = {3, 1, 4, 4, 2, 0};
  auto idx = torch::tensor(rows, torch::TensorOptions().dtype(torch::kInt64).device(weight.device()));
  auto w = F::pad(weight.permute({1, 0, 2, 3}), F::PadFuncOptions({0, 1, 0, 1}));  // [Cout, Cin, 5, 5]
  return w.index_select(2, idx)
      .index_select(3, idx)
      .view({out, in, 2, 3, 2, 3})
      .permute({0, 2, 4, 1, 3, 5})
      .reshape({out * 4, in, 3, 3});
}

torch::Tensor UpConv2dImpl::forward(const torch::Tensor& x) {
  if (stride == 1 && padding == 0 && x.size(2) == 1 && x.size(3) == 1) {
    auto y = torch::mm(x.flatten(1), weight.view({in, -1})).view({x.size(0), out, kernel, kernel});
    return bias.defined() ? y + bias.view({1, -1, 1, 1}) : y;
  }
  if (subpixel) {
    auto b = bias.defined() ? bias.repeat_interleave(4) : torch::Tensor();
    return F::pixel_shuffle(F::conv2d(x, subpixel_kernel(), F::Conv2dFuncOptions().bias(b).padding(1)), 2);
  }
  return F::conv_transpose2d(x, weight, F::ConvTranspose2dFuncOptions().bias(bias).stride(stride).padding(padding));
}

}  // namespace imagine::nn
