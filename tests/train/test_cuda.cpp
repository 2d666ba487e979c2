// The CUDA path of training: exact resume with the GPU's random stream in the checkpoint,
// the fused and multi-tensor AdamW kernels against the loop on GPU tensors, and whole-step
// CUDA-graph capture against eager steps. These need a GPU and skip without one (bench/gpu.sh
// runs them on a GPU machine); the refusal of --cuda-graph where it cannot work runs everywhere.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/temp_dir.h"
#include "core/compat.h"
#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"
#include "train/cuda_graph.h"
#include "train/optim.h"
#include "train/train_text.h"

namespace fs = std::filesystem;

namespace {

std::string shakespeare_path() {
  return std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
}

class CudaTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_cuda_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string corpus() {
    if (!fs::exists(shakespeare_path())) return "";
    const std::string p = dir_ + "/corpus.txt";
    std::ofstream(p, std::ios::binary) << imagine::read_file(shakespeare_path()).substr(0, 20000);
    return p;
  }
  imagine::TextTrainResult train(std::vector<std::string> args) {
    return imagine::train_text(imagine::text_train_table().parse(args), [](const std::string&) {});
  }
  std::vector<std::string> tiny(const std::string& data, const std::string& out, const std::string& device) {
    return {"--data", data,   "--out",    out,    "--preset",    "tiny", "--samples=false", "--quiet",
            "--seed", "4242", "--device", device, "--log-every", "1",    "--eval-every",    "10"};
  }
  static std::map<int64_t, double> losses(const std::string& dir) {
    std::map<int64_t, double> out;
    std::ifstream f(dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(f, line)) {
      auto j = nlohmann::json::parse(line);
      if (!j.contains("event")) out[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
    }
    return out;
  }
  std::string dir_;
};

// Runs everywhere: where capture cannot work, the flag is refused before anything is written.
TEST_F(CudaTrainTest, CudaGraphIsRefusedWithAHintWhereItCannotRun) {
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  auto args = tiny(data, dir_ + "/m", "cpu");
  args.push_back("--cuda-graph");
  try {
    train(args);
    FAIL() << "--cuda-graph on the CPU was accepted";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--cuda-graph"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("without --cuda-graph"), std::string::npos) << e.hint();
  }
  EXPECT_FALSE(fs::exists(dir_ + "/m/config.json"));
}

TEST_F(CudaTrainTest, ResumeOnTheGpuRestoresItsRandomStream) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  auto a = tiny(data, dir_ + "/A", "cuda"), b = tiny(data, dir_ + "/B", "cuda");
  for (auto* v : {&a, &b}) v->insert(v->end(), {"--dropout", "0.1", "--steps", "20"});
  train(a);
  auto b1 = b;
  b1.back() = "10";
  train(b1);
  auto st = imagine::load_safetensors(dir_ + "/B/checkpoint-latest/trainer_state.safetensors");
  EXPECT_TRUE(st.tensors.count("rng.torch_cuda")) << "the GPU's generator state is not in the checkpoint";
  train({"--out", dir_ + "/B", "--resume", "--steps", "20", "--quiet"});
  const auto la = losses(dir_ + "/A"), lb = losses(dir_ + "/B");
  ASSERT_EQ(la.size(), 20u);
  ASSERT_EQ(lb.size(), 20u);
  // GPU reductions may reorder between runs; a wrong dropout stream moves losses by ~1e-2.
  for (auto& [s, l] : la) EXPECT_NEAR(l, lb.at(s), 2e-4) << "step " << s;
}

TEST(CudaOptim, FusedAndMultiTensorStepsMatchTheLoopOnTheGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  torch::manual_seed(5);
  const auto dev = torch::Device(torch::kCUDA);
  std::vector<imagine::AdamW::Kernel> kernels = {imagine::AdamW::Kernel::kLoop,
                                                 imagine::AdamW::Kernel::kForEach};
  if (imagine::compat::kHasFusedAdamW) kernels.push_back(imagine::AdamW::Kernel::kFused);
  const auto w0 = torch::randn({64, 32}, dev), b0 = torch::randn({32}, dev);
  std::vector<torch::Tensor> grads;
  for (int i = 0; i < 10; i++) grads.push_back(torch::randn({64, 32}, dev));
  std::vector<torch::Tensor> finals;
  for (auto k : kernels) {
    auto w = w0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    imagine::AdamW opt({{"w", w}, {"b", b}}, imagine::AdamWConfig{});
    opt.set_kernel(k);
    for (auto& g : grads) {
      w.mutable_grad() = g.clone();
      b.mutable_grad() = g.sum(0);
      opt.step(1e-2);
    }
    finals.push_back(torch::cat({w.detach().flatten(), b.detach()}));
  }
  for (size_t i = 1; i < finals.size(); i++)
    EXPECT_TRUE(torch::allclose(finals[0], finals[i], 1e-5, 1e-6)) << "kernel " << i;
  EXPECT_GT((finals[0].slice(0, 0, w0.numel()) - w0.flatten()).abs().max().item<double>(), 1e-3);
}

TEST_F(CudaTrainTest, GraphedStepsMatchEagerStepsAndLearn) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!imagine::CudaGraphStep::unsupported_reason().empty())
    GTEST_SKIP() << imagine::CudaGraphStep::unsupported_reason();
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  auto eager = tiny(data, dir_ + "/E", "cuda"), graphed = tiny(data, dir_ + "/G", "cuda");
  for (auto* v : {&eager, &graphed}) v->insert(v->end(), {"--steps", "40", "--grad-accum", "2"});
  graphed.push_back("--cuda-graph");
  auto re = train(eager), rg = train(graphed);
  const auto le = losses(dir_ + "/E"), lg = losses(dir_ + "/G");
  ASSERT_EQ(le.size(), 40u);
  ASSERT_EQ(lg.size(), 40u);
  for (auto& [s, l] : le) EXPECT_NEAR(l, lg.at(s), 1e-3) << "step " << s;
  EXPECT_LT(lg.at(40), lg.at(1) - 0.5);  // it learns
  EXPECT_NEAR(re.outcome.best_val_loss, rg.outcome.best_val_loss, 1e-3);
  auto cfg = nlohmann::json::parse(imagine::read_file(dir_ + "/G/config.json"));
  EXPECT_TRUE(cfg["training"]["recipe"]["cuda_graph"].get<bool>());
  // a graphed run resumes (its optimizer step counts were kept in line with the replays)
  auto st = nlohmann::json::parse(imagine::read_file(dir_ + "/G/checkpoint-latest/trainer_state.json"));
  EXPECT_EQ(st["optimizer_steps"].get<int64_t>(), 40);
}

}  // namespace
