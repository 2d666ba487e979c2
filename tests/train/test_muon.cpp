// Tests for Muon, the parameter split between Muon and AdamW, the trapezoid schedule, and
// training with the GPT options and Muon end to end: the loss falls, the model directory
// records the options, and a resumed Muon run repeats the uninterrupted one step for step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "../support/temp_dir.h"
#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"
#include "core/signals.h"
#include "models/gpt.h"
#include "train/optim.h"
#include "train/train_text.h"

namespace fs = std::filesystem;

namespace {

// The quintic iteration written out in double precision, independently of optim.cpp.
torch::Tensor reference_orthogonalise(torch::Tensor g, int steps) {
  auto x = g.to(torch::kDouble);
  bool tall = x.size(0) > x.size(1);
  if (tall) x = x.t();
  x = x / (x.norm() + 1e-7);
  for (int i = 0; i < steps; i++) {
    auto A = x.matmul(x.t());
    auto B = -4.7750 * A + 2.0315 * A.matmul(A);
    x = 3.4445 * x + B.matmul(x);
  }
  return (tall ? x.t() : x).to(torch::kFloat);
}

}  // namespace

TEST(Muon, NewtonSchulzGivesSingularValuesNearOneAlongTheSvdDirections) {
  torch::manual_seed(1);
  for (auto shape : std::vector<std::vector<int64_t>>{{8, 8}, {6, 16}, {24, 5}}) {
    auto g = torch::randn(shape);
    auto o = imagine::newton_schulz(g, 5);
    EXPECT_TRUE(torch::allclose(o, reference_orthogonalise(g, 5), 1e-4, 1e-4));
    auto sv = std::get<1>(torch::linalg::svd(o, false, c10::nullopt));
    EXPECT_GT(sv.min().item<double>(), 0.5) << "shape " << shape[0] << "x" << shape[1];
    EXPECT_LT(sv.max().item<double>(), 1.3);
    // Close to U V^T, the exact orthogonalisation.
    auto [u, s, vh] = torch::linalg::svd(g, false, c10::nullopt);
    auto exact = u.matmul(vh);
    double cosine = (o * exact).sum().item<double>() / (o.norm() * exact.norm()).item<double>();
    EXPECT_GT(cosine, 0.95);
  }
}

// Two steps of Muon on small matrices equal Nesterov momentum, orthogonalised, scaled by
// sqrt(max(1, rows / cols)) and applied at the learning rate, computed here by hand for each
// matrix alone (Muon orthogonalises the two 12x4 matrices in one batch, the 4x12 apart).
TEST(Muon, UpdateEqualsOrthogonalisedNesterovMomentum) {
  torch::manual_seed(2);
  std::vector<torch::Tensor> ws = {torch::randn({12, 4}), torch::randn({4, 12}), torch::randn({12, 4})};
  std::vector<torch::Tensor> expect_w, m;
  imagine::NamedParams named;
  for (size_t i = 0; i < ws.size(); i++) {
    ws[i].set_requires_grad(true);
    expect_w.push_back(ws[i].detach().clone());
    m.push_back(torch::zeros_like(ws[i]));
    named.push_back({"w" + std::to_string(i), ws[i]});
  }
  imagine::MuonConfig cfg;
  cfg.momentum = 0.9;
  imagine::Muon muon(named, cfg);
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < ws.size(); i++) {
      auto g = torch::randn(ws[i].sizes());
      ws[i].mutable_grad() = g.clone();
      m[i] = 0.9 * m[i] + 0.1 * g;
      auto nesterov = 0.1 * g + 0.9 * m[i];
      const double scale = ws[i].size(0) > ws[i].size(1) ? std::sqrt(3.0) : 1.0;
      expect_w[i] = expect_w[i] - 0.05 * scale * reference_orthogonalise(nesterov, 5);
    }
    muon.step(0.05);
    for (size_t i = 0; i < ws.size(); i++)
      EXPECT_TRUE(torch::allclose(ws[i].detach(), expect_w[i], 1e-4, 1e-4))
          << "matrix " << i << ", step " << step << " differs by "
          << (ws[i].detach() - expect_w[i]).abs().max().item<double>();
  }
  EXPECT_EQ(muon.steps(), 2);
  // Its state round-trips: a fresh optimizer loaded with it takes the same next step.
  imagine::NamedParams copies;
  for (size_t i = 0; i < ws.size(); i++)
    copies.push_back({"w" + std::to_string(i), ws[i].detach().clone().set_requires_grad(true)});
  imagine::Muon again(copies, cfg);
  again.load_state(muon.state(), muon.steps());
  for (size_t i = 0; i < ws.size(); i++) {
    auto g = torch::randn(ws[i].sizes());
    ws[i].mutable_grad() = g.clone();
    copies[i].second.mutable_grad() = g.clone();
  }
  muon.step(0.05);
  again.step(0.05);
  for (size_t i = 0; i < ws.size(); i++) EXPECT_TRUE(torch::equal(ws[i].detach(), copies[i].second.detach()));
  EXPECT_THROW(again.load_state({}, 1), imagine::Error);
  EXPECT_THROW(imagine::Muon({{"b", torch::zeros({3}).set_requires_grad(true)}}, cfg), imagine::Error);
}

TEST(Muon, SplitGivesEveryParameterToExactlyOneOptimizer) {
  for (bool tied : {true, false}) {
    imagine::GPTConfig c;
    c.vocab_size = 30;
    c.block_size = 8;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_embd = 16;
    c.tied_head = tied;
    imagine::GPT m(c);
    imagine::NamedParams all;
    for (auto& p : m->named_parameters()) all.push_back({p.key(), p.value()});
    auto [muon, adamw] = imagine::split_for_muon(all);
    std::set<std::string> seen;
    for (auto& [n, p] : muon) {
      EXPECT_EQ(p.dim(), 2) << n;
      EXPECT_TRUE(n.rfind("h.", 0) == 0) << n << ": Muon takes hidden matrices only";
      EXPECT_TRUE(seen.insert(n).second) << n;
    }
    for (auto& [n, p] : adamw) EXPECT_TRUE(seen.insert(n).second) << n << " is in both groups";
    EXPECT_EQ(seen.size(), all.size());
    EXPECT_EQ(muon.size(), static_cast<size_t>(4 * c.n_layer));  // c_attn, attn c_proj, c_fc, mlp c_proj
    std::set<std::string> adam_names;
    for (auto& [n, p] : adamw) adam_names.insert(n);
    EXPECT_TRUE(adam_names.count("wte.weight"));
    EXPECT_EQ(adam_names.count("lm_head.weight"), tied ? 0u : 1u);
  }
}

TEST(LrSchedule, TrapezoidWarmsUpHoldsThenDecaysLinearly) {
  using imagine::lr_at;
  const auto T = imagine::Schedule::kTrapezoid;
  EXPECT_NEAR(lr_at(5, 1.0, 0.1, 10, 100, T, 0.2), 0.5 * 1.0 * 6 / 10.0 / 0.6, 0.5);  // warming up
  EXPECT_LT(lr_at(5, 1.0, 0.1, 10, 100, T, 0.2), 1.0);
  for (int64_t s : {10, 40, 79, 80}) EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 0.1, 10, 100, T, 0.2), 1.0) << s;
  EXPECT_NEAR(lr_at(90, 1.0, 0.1, 10, 100, T, 0.2), 0.55, 1e-12);
  EXPECT_NEAR(lr_at(100, 1.0, 0.1, 10, 100, T, 0.2), 0.1, 1e-12);
  EXPECT_NEAR(lr_at(150, 1.0, 0.1, 10, 100, T, 0.2), 0.1, 1e-12);  // flat after the end
  EXPECT_EQ(imagine::parse_schedule("trapezoid"), T);
  EXPECT_THROW(imagine::parse_schedule("linear"), imagine::Error);
}

namespace {

class OptionsTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_opts_");
    ASSERT_FALSE(dir_.empty());
    imagine::clear_interrupt();
  }
  void TearDown() override {
    imagine::clear_interrupt();
    fs::remove_all(dir_);
  }
  std::string corpus() {
    const std::string src = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
    if (!fs::exists(src)) return "";
    const std::string p = dir_ + "/corpus.txt";
    std::ofstream(p, std::ios::binary) << imagine::read_file(src).substr(0, 400000);
    return p;
  }
  imagine::TextTrainResult train(std::vector<std::string> args) {
    return imagine::train_text(imagine::text_train_table().parse(args), [](const std::string&) {});
  }
  std::map<int64_t, double> losses(const std::string& out) {
    std::map<int64_t, double> l;
    std::ifstream in(out + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (!j.contains("event")) l[j.at("step").get<int64_t>()] = j.at("loss").get<double>();
    }
    return l;
  }
  std::string dir_;
};

}  // namespace

// Each option alone, and all with Muon: the loss falls well below its start and the model
// directory records the option (so the next load builds the same model).
TEST_F(OptionsTrainTest, EachOptionTrainsAndIsRecorded) {
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  const std::vector<std::pair<std::vector<std::string>, std::pair<std::string, nlohmann::json>>> cases = {
      {{"--pos", "learned"}, {"pos", "learned"}},
      {{"--pos", "rope"}, {"pos", "rope"}},
      {{"--norm", "rmsnorm"}, {"norm", "rmsnorm"}},
      {{"--qk-norm"}, {"qk_norm", true}},
      {{"--mlp", "relu2"}, {"mlp", "relu2"}},
      {{"--untied-head"}, {"tied_head", false}},
      {{"--zero-init"}, {"zero_init", true}},
      {{"--logit-softcap", "20"}, {"logit_softcap", 20.0}},
      {{"--pos", "rope", "--norm", "rmsnorm", "--qk-norm", "--mlp", "relu2", "--untied-head", "--zero-init",
        "--optimizer", "muon", "--schedule", "trapezoid"},
       {"pos", "rope"}},
  };
  double baseline = 0;
  int i = 0;
  for (auto& [flags, key] : cases) {
    const std::string out = dir_ + "/m" + std::to_string(i++);
    std::vector<std::string> args = {"--data",  data,  "--out",           out,       "--preset",    "tiny",
                                     "--steps", "100", "--samples=false", "--quiet", "--log-every", "1"};
    args.insert(args.end(), flags.begin(), flags.end());
    auto r = train(args);
    auto l = losses(out);
    ASSERT_FALSE(l.empty());
    if (i == 1) {  // the first case is the default model: the others are held to it
      baseline = r.outcome.best_val_loss;
      EXPECT_LT(baseline, 3.4);
    }
    EXPECT_LT(r.outcome.best_val_loss, baseline + 0.25)
        << flags[0] << " trains much worse than the default model";
    EXPECT_LT(l.rbegin()->second, l.begin()->second - 1.5) << flags[0] << ": the loss did not fall";
    auto config = nlohmann::json::parse(imagine::read_file(out + "/config.json"));
    EXPECT_EQ(config.at("architecture").at(key.first), key.second) << flags[0];
  }
}

// A Muon run interrupted and resumed logs the same per-step losses and ends with the same
// weights as the run left alone (Muon's momentum is in the checkpoint).
TEST_F(OptionsTrainTest, MuonResumeRepeatsTheUninterruptedRun) {
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--data",          data,        "--out",       out,
                                    "--preset",        "tiny",      "--steps",     "16",
                                    "--eval-every",    "4",         "--log-every", "1",
                                    "--samples=false", "--quiet",   "--optimizer", "muon",
                                    "--schedule",      "trapezoid", "--pos",       "rope"};
  };
  const std::string a = dir_ + "/A", b = dir_ + "/B";
  train(args(a));
  imagine::request_interrupt();
  auto first = train(args(b));
  imagine::clear_interrupt();
  ASSERT_TRUE(first.outcome.interrupted);
  auto state = imagine::load_safetensors(b + "/checkpoint-latest/trainer_state.safetensors").tensors;
  bool has_momentum = false;
  for (auto& [k, v] : state) has_momentum |= k.find("muon_momentum.") != std::string::npos;
  EXPECT_TRUE(has_momentum) << "no Muon momentum in the checkpoint";
  auto r = train({"--out", b, "--resume", "--quiet"});
  EXPECT_EQ(r.outcome.step, 16);
  auto la = losses(a), lb = losses(b);
  ASSERT_EQ(la.size(), lb.size());
  for (auto& [s, v] : la) EXPECT_EQ(lb.at(s), v) << "step " << s;
  auto wa = imagine::load_safetensors(a + "/model.safetensors").tensors;
  auto wb = imagine::load_safetensors(b + "/model.safetensors").tensors;
  for (auto& [k, v] : wa) EXPECT_TRUE(torch::equal(v, wb.at(k))) << k;
}

TEST_F(OptionsTrainTest, BadOptimizerFlagsAreRefused) {
  const std::string data = corpus();
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  EXPECT_THROW(train({"--data", data, "--out", dir_ + "/x", "--optimizer", "sgd"}), imagine::Error);
  EXPECT_THROW(train({"--data", data, "--out", dir_ + "/x", "--schedule", "step"}), imagine::Error);
  EXPECT_THROW(train({"--data", data, "--out", dir_ + "/x", "--pos", "sinusoid"}), imagine::Error);
  EXPECT_FALSE(fs::exists(dir_ + "/x/model.safetensors"));
}
