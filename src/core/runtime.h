// Run-time set-up shared by every command: device choice, thread count, seeds.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace imagine {

// "auto" (CUDA when available, else CPU), "cpu" or "cuda[:N]". Throws on "cuda" without one.
torch::Device resolve_device(const std::string& name);

// A host tensor on `device`: itself on the CPU; on a GPU, staged through pinned memory and
// copied without blocking, so the copy overlaps the work already queued on the device.
torch::Tensor to_device(const torch::Tensor& host, torch::Device device);

// Sets torch's intra-op threads; n <= 0 means $IMAGINE_THREADS if set, else the machine's
// core count (LibTorch's own default is 1 on Debian, which wastes the other cores).
// Returns the count in effect.
int set_threads(int n);

// "auto" resolves to "bf16" where bfloat16 matmuls are fast (CUDA, or a CPU with
// AVX512-BF16 / AMX), else "fp32". "fp32" and "bf16" are returned as they are.
std::string resolve_precision(const std::string& name, torch::Device device);

// -1 means "pick a random seed"; the seed actually used is returned so it can be printed
// and recorded. Seeds torch's CPU (and CUDA) generators.
uint64_t resolve_seed(int64_t seed);
// A fresh random seed in [0, 2^63) (fits --seed), touching no global generator: what a
// server request without a seed gets.
uint64_t random_seed();
void seed_torch(uint64_t seed);

// The default random generator of `device` (the CPU's, or cuda:N's), and its state as a
// byte tensor (what checkpoints store). Locks the generator while reading or writing.
at::Generator default_generator(torch::Device device);
torch::Tensor generator_state(torch::Device device);
void set_generator_state(torch::Device device, const torch::Tensor& state);

// Saves the states of torch's generators (the CPU's and, where CUDA is present, every
// GPU's) and restores them when it goes, so whatever runs in between (an evaluation that
// samples) leaves the caller's random streams — and a training run's trajectory — as they were.
class SavedTorchRng {
 public:
  SavedTorchRng();
  ~SavedTorchRng();
  SavedTorchRng(const SavedTorchRng&) = delete;
  SavedTorchRng& operator=(const SavedTorchRng&) = delete;
  const std::vector<torch::Device>& devices() const { return devices_; }

 private:
  std::vector<torch::Device> devices_;
  std::vector<torch::Tensor> states_;
};

// SavedTorchRng that also seeds every generator with `seed` while alive: a reproducible side
// computation (evaluation noise, building a fixed network) on any device.
class ScopedTorchSeed {
 public:
  explicit ScopedTorchSeed(uint64_t seed);

 private:
  SavedTorchRng saved_;
};

// A small deterministic generator (xoshiro256**) for data sampling, whose state is four
// integers so checkpoints can store it exactly.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n)
  double uniform();            // [0, 1)
  std::string state() const;   // "a,b,c,d"
  void set_state(const std::string& s);

 private:
  uint64_t s_[4];
};

}  // namespace imagine
