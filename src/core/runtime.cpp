// Device, threads and seeds. See runtime.h.
#include "core/runtime.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.h"

namespace imagine {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto")
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available())
      throw Error("--device " + name + " requested but no CUDA device is available",
                  "use --device cpu (or auto); this build or machine has no usable GPU");
    try {
      return torch::Device(name);
    } catch (const std::exception&) {
      throw UsageError("invalid device '" + name + "'", "use auto, cpu, cuda or cuda:N");
    }
  }
  throw UsageError("invalid device '" + name + "'", "use auto, cpu, cuda or cuda:N");
}

torch::Tensor to_device(const torch::Tensor& host, torch::Device device) {
  if (device.is_cpu()) return host;
  return host.contiguous().pin_memory().to(device, /*non_blocking=*/true);
}

int set_threads(int n) {
  if (n <= 0) {
    // IMAGINE_THREADS lets a test runner that runs jobs side by side avoid oversubscribing
    // cores: OpenMP threads that spin on a busy core slow training down several-fold.
    const char* env = std::getenv("IMAGINE_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

static bool cpu_has_fast_bf16() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
  }
  return false;
}

std::string resolve_precision(const std::string& name, torch::Device device) {
  if (name == "fp32" || name == "bf16") return name;
  if (name != "auto") throw UsageError("invalid precision '" + name + "'", "use auto, fp32 or bf16");
  if (device.is_cuda()) return "bf16";
  return cpu_has_fast_bf16() ? "bf16" : "fp32";
}

void seed_torch(uint64_t seed) { torch::manual_seed(seed); }

uint64_t random_seed() {
  std::random_device rd;
  return ((static_cast<uint64_t>(rd()) << 32) ^ rd()) & 0x7fffffffffffffffULL;
}

uint64_t resolve_seed(int64_t seed) {
  uint64_t s;
  if (seed < 0) {
    s = random_seed();
  } else {
    s = static_cast<uint64_t>(seed);
  }
  seed_torch(s);
  return s;
}

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) return 0;
  // rejection sampling keeps the distribution exactly uniform
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next();
  while (x >= limit);
  return x % n;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

std::string Rng::state() const {
  std::ostringstream os;
  os << s_[0] << "," << s_[1] << "," << s_[2] << "," << s_[3];
  return os.str();
}

void Rng::set_state(const std::string& s) {
  std::istringstream is(s);
  char comma;
  uint64_t v[4];
  IMAGINE_CHECK(is >> v[0] >> comma >> v[1] >> comma >> v[2] >> comma >> v[3],
                "the trainer state is corrupted", "invalid RNG state '", s, "'");
  for (int i = 0; i < 4; i++) s_[i] = v[i];
}

at::Generator default_generator(torch::Device device) {
  if (device.is_cpu()) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(device);
}

torch::Tensor generator_state(torch::Device device) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(torch::Device device, const torch::Tensor& state) {
  auto gen = default_generator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

SavedTorchRng::SavedTorchRng() : devices_({torch::kCPU}) {
  if (torch::cuda::is_available())
    for (int64_t i = 0; i < static_cast<int64_t>(torch::cuda::device_count()); i++)
      devices_.emplace_back(torch::kCUDA, static_cast<c10::DeviceIndex>(i));
  for (const auto& d : devices_) states_.push_back(generator_state(d));
}

SavedTorchRng::~SavedTorchRng() {
  for (size_t i = 0; i < devices_.size(); i++) set_generator_state(devices_[i], states_[i]);
}

ScopedTorchSeed::ScopedTorchSeed(uint64_t seed) {
  for (const auto& d : saved_.devices()) {
    auto gen = default_generator(d);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
}

}  // namespace imagine
