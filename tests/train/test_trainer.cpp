// Tests for train/optim and the training loop: the learning-rate schedule, AdamW against a
// hand computation and against torch::optim::AdamW, exact resume after an interrupt (the
// per-step losses, evaluations and final weights equal an uninterrupted run), and that a
// tiny model learns Shakespeare well below its unigram entropy.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../support/temp_dir.h"
#include "core/compat.h"
#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "core/signals.h"
#include "models/text_model.h"
#include "train/optim.h"
#include "train/train_text.h"

namespace fs = std::filesystem;

namespace {

// ---- learning-rate schedule ----

TEST(LrSchedule, WarmupIsLinearUpToThePeak) {
  const double lr = 1e-3, min_lr = 1e-4;
  const int64_t warmup = 10, decay = 110;
  // nanoGPT: lr * (it + 1) / (warmup + 1) during warm-up
  for (int64_t s = 0; s < warmup; s++) {
    const double v = imagine::lr_at(s, lr, min_lr, warmup, decay);
    EXPECT_NEAR(v, lr * (s + 1) / (warmup + 1), 1e-15) << s;
    EXPECT_GT(v, 0.0);
    EXPECT_LT(v, lr);
    if (s > 0) {
      EXPECT_NEAR(v - imagine::lr_at(s - 1, lr, min_lr, warmup, decay), lr / (warmup + 1), 1e-15);
    }
  }
  EXPECT_DOUBLE_EQ(imagine::lr_at(warmup, lr, min_lr, warmup, decay), lr);  // the peak
  // no warm-up: the peak from the first step
  EXPECT_DOUBLE_EQ(imagine::lr_at(0, lr, min_lr, 0, decay), lr);
}

TEST(LrSchedule, CosineDecayToMinimumThenFlat) {
  const double lr = 2e-3, min_lr = 2e-4;
  const int64_t warmup = 20, decay = 220;
  const double pi = std::acos(-1.0);
  double prev = lr + 1;
  for (int64_t s = warmup; s < decay; s++) {
    const double ratio = static_cast<double>(s - warmup) / (decay - warmup);
    const double want = min_lr + 0.5 * (1 + std::cos(pi * ratio)) * (lr - min_lr);
    const double v = imagine::lr_at(s, lr, min_lr, warmup, decay);
    EXPECT_NEAR(v, want, 1e-15) << s;
    EXPECT_LE(v, prev);
    EXPECT_GT(v, min_lr);
    prev = v;
  }
  EXPECT_NEAR(imagine::lr_at(warmup + (decay - warmup) / 2, lr, min_lr, warmup, decay), (lr + min_lr) / 2,
              1e-15);
  for (int64_t s : {decay, decay + 1, decay + 1000})
    EXPECT_DOUBLE_EQ(imagine::lr_at(s, lr, min_lr, warmup, decay), min_lr);
  // min_lr == lr: constant after warm-up
  for (int64_t s : {warmup, warmup + 50, decay + 5})
    EXPECT_DOUBLE_EQ(imagine::lr_at(s, lr, lr, warmup, decay), lr);
}

// ---- AdamW ----

struct RefAdamW {  // plain double loops over a flat copy
  std::vector<double> p, m, v;
  double b1, b2, eps, wd;
  int t = 0;
  void step(const std::vector<double>& g, double lr, bool decay) {
    t++;
    for (size_t i = 0; i < p.size(); i++) {
      if (decay) p[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i];
      v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
  }
};

std::vector<double> flat(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kDouble).contiguous().view(-1);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(AdamWOptimizer, OneStepEqualsHandComputation) {
  imagine::AdamWConfig cfg;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.95;
  cfg.eps = 1e-8;
  cfg.weight_decay = 0.1;
  auto w = torch::tensor({{0.5, -1.0, 2.0}, {0.0, 0.25, -0.75}}, torch::kFloat).requires_grad_(true);
  auto b = torch::tensor({0.1, -0.2, 0.3}, torch::kFloat).requires_grad_(true);
  const auto w0 = flat(w), b0 = flat(b);
  w.mutable_grad() = torch::tensor({{0.1, -0.2, 0.0}, {3.0, -0.01, 0.5}}, torch::kFloat);
  b.mutable_grad() = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat);
  imagine::AdamW opt({{"w", w}, {"b", b}}, cfg);
  const double lr = 0.01;
  opt.step(lr);
  EXPECT_EQ(opt.steps(), 1);
  // First step from zero moments: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps),
  // after decoupled decay of matrices only (w), not vectors (b).
  const auto gw = flat(w.grad()), gb = flat(b.grad());
  const auto w1 = flat(w), b1 = flat(b);
  for (size_t i = 0; i < w0.size(); i++) {
    const double want = w0[i] * (1 - lr * 0.1) - lr * gw[i] / (std::abs(gw[i]) + 1e-8);
    EXPECT_NEAR(w1[i], want, 1e-6) << i;
  }
  for (size_t i = 0; i < b0.size(); i++) {
    const double want = b0[i] - lr * gb[i] / (std::abs(gb[i]) + 1e-8);
    EXPECT_NEAR(b1[i], want, 1e-6) << i;
  }
  // the moments are what the formulas say
  auto st = opt.state();
  ASSERT_TRUE(st.count("exp_avg.w") && st.count("exp_avg_sq.w") && st.count("exp_avg.b"));
  const auto mw = flat(st["exp_avg.w"]), vw = flat(st["exp_avg_sq.w"]);
  for (size_t i = 0; i < gw.size(); i++) {
    EXPECT_NEAR(mw[i], 0.1 * gw[i], 1e-7);
    EXPECT_NEAR(vw[i], 0.05 * gw[i] * gw[i], 1e-7);
  }
}

TEST(AdamWOptimizer, ManyStepsEqualReferenceAndTorchAdamW) {
  torch::manual_seed(3);
  imagine::AdamWConfig cfg;
  cfg.beta1 = 0.8;
  cfg.beta2 = 0.99;
  cfg.eps = 1e-6;
  cfg.weight_decay = 0.05;
  auto init_w = torch::randn({4, 5}), init_b = torch::randn({5});
  auto target = torch::randn({3, 5}), x = torch::randn({3, 4});

  auto ours_w = init_w.clone().requires_grad_(true), ours_b = init_b.clone().requires_grad_(true);
  auto th_w = init_w.clone().requires_grad_(true), th_b = init_b.clone().requires_grad_(true);
  imagine::AdamW ours({{"w", ours_w}, {"b", ours_b}}, cfg);
  auto topt = [&](double wd) {
    return torch::optim::AdamWOptions(1e-2).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps).weight_decay(wd);
  };
  // torch applies one weight decay per group: matrices decayed, vectors not (as ours does)
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{th_w},
                      std::make_unique<torch::optim::AdamWOptions>(topt(cfg.weight_decay)));
  groups.emplace_back(std::vector<torch::Tensor>{th_b},
                      std::make_unique<torch::optim::AdamWOptions>(topt(0.0)));
  torch::optim::AdamW theirs(std::move(groups), topt(cfg.weight_decay));
  RefAdamW ref_w{flat(init_w), std::vector<double>(20), std::vector<double>(20), cfg.beta1, cfg.beta2,
                 cfg.eps,      cfg.weight_decay};
  RefAdamW ref_b{flat(init_b), std::vector<double>(5), std::vector<double>(5), cfg.beta1, cfg.beta2,
                 cfg.eps,      cfg.weight_decay};

  const double lr = 1e-2;  // a constant lr so torch's group lr matches
  for (int step = 0; step < 15; step++) {
    auto loss_fn = [&](const torch::Tensor& w, const torch::Tensor& b) {
      return (torch::matmul(x, w) + b - target).pow(2).mean();
    };
    ours.zero_grad();
    loss_fn(ours_w, ours_b).backward();
    ref_w.step(flat(ours_w.grad()), lr, true);
    ref_b.step(flat(ours_b.grad()), lr, false);
    ours.step(lr);
    theirs.zero_grad();
    loss_fn(th_w, th_b).backward();
    theirs.step();
    ASSERT_TRUE(torch::allclose(ours_w, th_w, 1e-5, 1e-6)) << "step " << step;
    ASSERT_TRUE(torch::allclose(ours_b, th_b, 1e-5, 1e-6)) << "step " << step;
    const auto fw = flat(ours_w), fb = flat(ours_b);
    for (size_t i = 0; i < fw.size(); i++) ASSERT_NEAR(fw[i], ref_w.p[i], 1e-5) << "step " << step;
    for (size_t i = 0; i < fb.size(); i++) ASSERT_NEAR(fb[i], ref_b.p[i], 1e-5) << "step " << step;
  }
  EXPECT_EQ(ours.steps(), 15);
}

TEST(AdamWOptimizer, StateRoundTripContinuesIdentically) {
  torch::manual_seed(4);
  imagine::AdamWConfig cfg;
  auto a = torch::randn({3, 3}).requires_grad_(true);
  auto b = a.detach().clone().requires_grad_(true);
  imagine::AdamW oa({{"p", a}}, cfg), ob({{"p", b}}, cfg);
  for (int i = 0; i < 3; i++) {
    a.mutable_grad() = torch::randn({3, 3});
    oa.step(1e-2);
  }
  {
    torch::NoGradGuard ng;
    b.copy_(a);
  }
  ob.load_state(oa.state(), oa.steps());
  for (int i = 0; i < 3; i++) {
    auto g = torch::randn({3, 3});
    a.mutable_grad() = g.clone();
    b.mutable_grad() = g.clone();
    oa.step(1e-2);
    ob.step(1e-2);
  }
  EXPECT_TRUE(torch::equal(a, b));
  // wrong shapes / missing entries are refused
  auto c = torch::randn({2, 2}).requires_grad_(true);
  imagine::AdamW oc({{"p", c}}, cfg);
  EXPECT_THROW(oc.load_state(oa.state(), 3), imagine::Error);
  EXPECT_THROW(oc.load_state({}, 3), imagine::Error);
}

// The multi-tensor step (the GPU default) computes the loop's update: same moments, same
// parameters up to rounding, over matrices, vectors and a parameter without a gradient.
TEST(AdamWOptimizer, MultiTensorKernelMatchesTheLoop) {
  torch::manual_seed(5);
  imagine::AdamWConfig cfg;
  cfg.weight_decay = 0.1;
  auto make = [] {
    return std::vector<torch::Tensor>{torch::randn({6, 4}), torch::randn({4}), torch::randn({3, 3})};
  };
  const auto init = make();
  std::vector<torch::Tensor> a, b;
  std::vector<std::pair<std::string, torch::Tensor>> na, nb;
  for (size_t i = 0; i < init.size(); i++) {
    a.push_back(init[i].clone().requires_grad_(true));
    b.push_back(init[i].clone().requires_grad_(true));
    na.push_back({"p" + std::to_string(i), a.back()});
    nb.push_back({"p" + std::to_string(i), b.back()});
  }
  imagine::AdamW loop(na, cfg), multi(nb, cfg);
  multi.set_kernel(imagine::AdamW::Kernel::kForEach);
  EXPECT_EQ(loop.kernel(), imagine::AdamW::Kernel::kLoop);  // the CPU default
  for (int step = 0; step < 20; step++) {
    for (size_t i = 0; i < 2; i++) {  // p2 never gets a gradient: both leave it alone
      auto g = torch::randn(init[i].sizes());
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    const double lr = 1e-2 * (1.0 + step % 3);
    loop.step(lr);
    multi.step(lr);
  }
  EXPECT_EQ(multi.steps(), 20);
  for (size_t i = 0; i < init.size(); i++) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "p" << i;
    EXPECT_GT((a[i] - init[i]).abs().max().item<double>(), i < 2 ? 1e-3 : -1.0) << "p" << i << " moved";
  }
  EXPECT_TRUE(torch::equal(a[2], init[2]));
  EXPECT_TRUE(torch::equal(b[2], init[2]));
  auto sa = loop.state(), sb = multi.state();
  for (auto& [k, v] : sa) EXPECT_TRUE(torch::allclose(v, sb.at(k), 1e-5, 1e-7)) << k;
  // resumed from the loop's state (and weights), the multi-tensor step continues as the loop does
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < init.size(); i++) b[i].copy_(a[i]);
  }
  multi.load_state(sa, loop.steps());
  for (int step = 0; step < 5; step++) {
    auto g = torch::randn({6, 4});
    a[0].mutable_grad() = g.clone();
    b[0].mutable_grad() = g.clone();
    loop.step(1e-2);
    multi.step(1e-2);
  }
  EXPECT_TRUE(torch::allclose(a[0], b[0], 1e-6, 1e-7));
  EXPECT_EQ(multi.steps(), 25);
  if (!imagine::compat::kHasFusedAdamW) {
    EXPECT_THROW(multi.set_kernel(imagine::AdamW::Kernel::kFused), imagine::Error);
  }
}

TEST(ClipGradNorm, ScalesLikeTorchAndReturnsTheNormOnTheDevice) {
  torch::manual_seed(6);
  auto p = torch::randn({5, 5}).requires_grad_(true), q = torch::randn({7}).requires_grad_(true);
  auto r = torch::randn({2}).requires_grad_(true);  // no gradient: ignored
  p.mutable_grad() = torch::randn({5, 5}) * 3;
  q.mutable_grad() = torch::randn({7}) * 3;
  auto p2 = p.detach().clone().requires_grad_(true), q2 = q.detach().clone().requires_grad_(true);
  p2.mutable_grad() = p.grad().clone();
  q2.mutable_grad() = q.grad().clone();
  const double want = torch::nn::utils::clip_grad_norm_({p2, q2}, 1.0);
  auto got = imagine::clip_grad_norm({p, q, r}, 1.0);
  EXPECT_EQ(got.dim(), 0);
  EXPECT_DOUBLE_EQ(got.item<double>(), want);
  EXPECT_GT(want, 1.0);  // it did clip
  EXPECT_TRUE(torch::equal(p.grad(), p2.grad()));
  EXPECT_TRUE(torch::equal(q.grad(), q2.grad()));
  const double after = std::sqrt(p.grad().pow(2).sum().item<double>() + q.grad().pow(2).sum().item<double>());
  EXPECT_NEAR(after, 1.0, 1e-5);
  // below the limit the gradients are left exactly as they were
  const auto before = p.grad().clone();
  EXPECT_NEAR(imagine::clip_grad_norm({p, q}, 10.0).item<double>(), after, 1e-5);
  EXPECT_TRUE(torch::equal(p.grad(), before));
}

// Evaluation runs inside SavedTorchRng: whatever it draws, the training stream continues
// as if it had not run; ScopedTorchSeed makes the side computation itself repeatable.
TEST(TorchRng, SavedStatesComeBackAndScopedSeedsRepeat) {
  torch::manual_seed(7);
  const auto expected = torch::rand({4});
  torch::manual_seed(7);
  torch::Tensor side1, side2;
  {
    imagine::SavedTorchRng keep;
    torch::randn({1000});  // a sampling evaluation
  }
  {
    imagine::ScopedTorchSeed seeded(99);
    side1 = torch::rand({3});
  }
  {
    imagine::ScopedTorchSeed seeded(99);
    side2 = torch::rand({3});
  }
  EXPECT_TRUE(torch::equal(side1, side2));
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
  // the checkpointed state round-trips through the byte tensor
  auto st = imagine::generator_state(torch::kCPU);
  const auto a = torch::rand({2});
  imagine::set_generator_state(torch::kCPU, st);
  EXPECT_TRUE(torch::equal(torch::rand({2}), a));
}

// ---- training runs ----

std::string shakespeare_path() {
  return std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
}

class TrainRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_train_");
    ASSERT_FALSE(dir_.empty());
    imagine::clear_interrupt();
  }
  void TearDown() override {
    imagine::clear_interrupt();
    fs::remove_all(dir_);
  }
  // The first `bytes` of tinyshakespeare as a corpus file; empty string (after GTEST_SKIP)
  // when the data is missing.
  std::string corpus(size_t bytes) {
    if (!fs::exists(shakespeare_path())) return "";
    std::string text = imagine::read_file(shakespeare_path()).substr(0, bytes);
    const std::string p = dir_ + "/corpus.txt";
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::string dir_;
};

imagine::TextTrainResult train(std::vector<std::string> args,
                               const std::function<void(const std::string&)>& log) {
  auto o = imagine::text_train_table().parse(args);
  return imagine::train_text(o, log);
}

struct Metrics {
  std::map<int64_t, nlohmann::json> steps;  // per logged step
  std::map<int64_t, nlohmann::json> evals;  // per evaluation
};

Metrics read_metrics(const std::string& dir) {
  Metrics m;
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    const int64_t s = j.at("step").get<int64_t>();
    auto& target = j.value("event", "") == "eval" ? m.evals : m.steps;
    EXPECT_EQ(target.count(s), 0u) << "step " << s << " logged twice in " << dir;
    target[s] = j;
  }
  return m;
}

int64_t max_logged_step(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  int64_t best = 0;
  while (std::getline(in, line)) {
    try {
      best = std::max(best, nlohmann::json::parse(line).value("step", int64_t{0}));
    } catch (...) {  // a line being written
    }
  }
  return best;
}

void expect_same_tensors(const std::string& a, const std::string& b) {
  auto ta = imagine::load_safetensors(a).tensors, tb = imagine::load_safetensors(b).tensors;
  ASSERT_EQ(ta.size(), tb.size());
  for (auto& [name, t] : ta) {
    ASSERT_TRUE(tb.count(name)) << name;
    EXPECT_TRUE(torch::allclose(t, tb[name], 0.0, 1e-6)) << name << " differs between " << a << " and " << b;
  }
}

TEST_F(TrainRunTest, ResumeAfterInterruptEqualsUninterruptedRun) {
  const std::string data = corpus(20000);
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available at " << shakespeare_path();
  const std::string a = dir_ + "/A", b = dir_ + "/B";
  auto args = [&](const std::string& out) {
    return std::vector<std::string>{"--data",    data,  "--out",           out,       "--preset",     "tiny",
                                    "--dropout", "0.1", "--samples=false", "--quiet", "--eval-every", "5",
                                    "--steps",   "20",  "--log-every",     "1",       "--seed",       "4242"};
  };
  auto no_log = [](const std::string&) {};
  const auto t0 = std::chrono::steady_clock::now();

  // A: uninterrupted.
  auto ra = train(args(a), no_log);
  EXPECT_EQ(ra.outcome.step, 20);
  EXPECT_FALSE(ra.outcome.interrupted);

  // B, part 1: the interrupt is already pending when training starts (as if Ctrl-C came
  // during set-up), so the run stops after its first step and saves a checkpoint.
  imagine::request_interrupt();
  auto r1 = train(args(b), no_log);
  imagine::clear_interrupt();
  EXPECT_TRUE(r1.outcome.interrupted);
  EXPECT_EQ(r1.outcome.step, 1);
  ASSERT_TRUE(fs::exists(b + "/checkpoint-latest/trainer_state.json"));
  {
    auto st = nlohmann::json::parse(imagine::read_file(b + "/checkpoint-latest/trainer_state.json"));
    EXPECT_EQ(st.at("step").get<int64_t>(), 1);
  }

  // B, part 2: resume (the recorded options supply everything but --out) and interrupt again
  // once step 8 is logged, as Ctrl-C would. Where exactly it lands depends on timing; the
  // continuation must match A wherever it is.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (max_logged_step(b + "/metrics.jsonl") >= 8) {
        imagine::request_interrupt();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  imagine::TextTrainResult r2;
  try {
    r2 = train({"--out", b, "--resume", "--quiet"}, no_log);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "resume failed: " << e.what();
  }
  done = true;
  watcher.join();
  imagine::clear_interrupt();
  EXPECT_GE(r2.outcome.step, 8);
  int64_t second_stop = r2.outcome.step;
  if (r2.outcome.interrupted) {
    EXPECT_LT(r2.outcome.step, 20);
    auto st = nlohmann::json::parse(imagine::read_file(b + "/checkpoint-latest/trainer_state.json"));
    EXPECT_EQ(st.at("step").get<int64_t>(), r2.outcome.step);
    // B, part 3: resume to the end.
    auto r3 = train({"--out", b, "--resume", "--quiet"}, no_log);
    EXPECT_FALSE(r3.outcome.interrupted);
    EXPECT_EQ(r3.outcome.step, 20);
    EXPECT_EQ(r3.outcome.best_val_loss, ra.outcome.best_val_loss);
    EXPECT_EQ(r3.outcome.best_step, ra.outcome.best_step);
  } else {
    EXPECT_EQ(r2.outcome.step, 20);
    EXPECT_EQ(r2.outcome.best_val_loss, ra.outcome.best_val_loss);
  }
  std::printf("[ info     ] resume test: interrupts after steps 1 and %lld, %.1f s in all\n",
              static_cast<long long>(second_stop),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  const Metrics ma = read_metrics(a), mb = read_metrics(b);
  int exact = 0;
  for (auto& [s, ja] : ma.steps)
    exact += mb.steps.count(s) && ja.at("loss").get<double>() == mb.steps.at(s).at("loss").get<double>();
  std::printf("[ info     ] resume test: %d of %zu per-step losses bit-identical\n", exact, ma.steps.size());
  ASSERT_EQ(ma.steps.size(), 20u);
  ASSERT_EQ(mb.steps.size(), 20u);
  for (auto& [s, ja] : ma.steps) {
    ASSERT_TRUE(mb.steps.count(s)) << "B lacks step " << s;
    const auto& jb = mb.steps.at(s);
    EXPECT_NEAR(ja.at("loss").get<double>(), jb.at("loss").get<double>(), 1e-6) << "loss at step " << s;
    EXPECT_DOUBLE_EQ(ja.at("lr").get<double>(), jb.at("lr").get<double>()) << "lr at step " << s;
    EXPECT_NEAR(ja.at("grad_norm").get<double>(), jb.at("grad_norm").get<double>(), 1e-5)
        << "grad_norm at step " << s;
  }
  ASSERT_EQ(ma.evals.size(), 4u);  // steps 5, 10, 15, 20
  ASSERT_EQ(mb.evals.size(), 4u);
  for (auto& [s, ja] : ma.evals) {
    ASSERT_TRUE(mb.evals.count(s)) << "B lacks the evaluation at step " << s;
    const auto& jb = mb.evals.at(s);
    for (const char* k : {"val_loss", "train_loss", "val_bpb", "best_val_loss"})
      EXPECT_NEAR(ja.at(k).get<double>(), jb.at(k).get<double>(), 1e-6) << k << " at step " << s;
  }
  // The weights end up the same: best and latest.
  expect_same_tensors(a + "/model.safetensors", b + "/model.safetensors");
  expect_same_tensors(a + "/checkpoint-latest/model.safetensors", b + "/checkpoint-latest/model.safetensors");
  auto ca = nlohmann::json::parse(imagine::read_file(a + "/config.json"));
  auto cb = nlohmann::json::parse(imagine::read_file(b + "/config.json"));
  EXPECT_EQ(ca["training"]["best_step"], cb["training"]["best_step"]);
  EXPECT_EQ(ca["training"]["seed"], cb["training"]["seed"]);
  EXPECT_EQ(ca["architecture"], cb["architecture"]);
  EXPECT_DOUBLE_EQ(ca["architecture"]["dropout"].get<double>(), 0.1);  // the torch RNG mattered
}

TEST_F(TrainRunTest, ResumeRefusesArchitectureChangesAndNeedsACheckpoint) {
  const std::string data = corpus(12000);
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  const std::string out = dir_ + "/M";
  auto no_log = [](const std::string&) {};
  // nothing to resume yet
  EXPECT_THROW(train({"--data", data, "--out", out, "--resume", "--quiet"}, no_log), imagine::Error);
  train({"--data", data, "--out", out, "--preset", "tiny", "--steps", "3", "--eval-every", "0",
         "--samples=false", "--quiet"},
        no_log);
  EXPECT_THROW(train({"--out", out, "--resume", "--n-embd", "64", "--quiet"}, no_log), imagine::Error);
  // without --resume the existing model is not overwritten
  EXPECT_THROW(train({"--data", data, "--out", out, "--preset", "tiny", "--steps", "3", "--quiet"}, no_log),
               imagine::Error);
  // more steps on resume continue the same run
  auto r = train({"--out", out, "--resume", "--steps", "5", "--quiet"}, no_log);
  EXPECT_EQ(r.outcome.step, 5);
  auto m = read_metrics(out);
  EXPECT_TRUE(m.evals.count(3));
  EXPECT_TRUE(m.evals.count(5));
}

double unigram_entropy_nats(const std::string& text) {
  std::vector<double> count(256, 0);
  for (unsigned char c : text) count[c]++;
  double h = 0;
  for (double c : count)
    if (c > 0) h -= c / text.size() * std::log(c / text.size());
  return h;
}

TEST_F(TrainRunTest, TinyModelLearnsWellBelowUnigramEntropy) {
  const std::string data = corpus(80000);
  if (data.empty()) GTEST_SKIP() << "tinyshakespeare not available";
  const std::string text = imagine::read_file(data);
  const std::string train_part = text.substr(0, static_cast<size_t>(std::floor(text.size() * 0.9)));
  const std::string val_part = text.substr(train_part.size());
  const double h_train = unigram_entropy_nats(train_part);
  // Cross-entropy of the validation split under the training split's unigram model: the
  // loss a model that ignores context would reach at best.
  std::vector<double> count(256, 0);
  for (unsigned char c : train_part) count[c]++;
  double h_cross = 0;
  for (unsigned char c : val_part) h_cross -= std::log((count[c] + 0.5) / (train_part.size() + 128.0));
  h_cross /= val_part.size();

  const auto t0 = std::chrono::steady_clock::now();
  auto r = train({"--data", data, "--out", dir_ + "/S", "--preset", "tiny", "--steps", "600", "--eval-every",
                  "300", "--eval-iters", "8", "--samples=false", "--quiet", "--seed", "7"},
                 [](const std::string&) {});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "[ info     ] unigram entropy %.4f nats (train), unigram cross-entropy on val %.4f; "
      "best val loss %.4f at step %lld; %.1f s\n",
      h_train, h_cross, r.outcome.best_val_loss, static_cast<long long>(r.outcome.best_step), secs);
  EXPECT_EQ(r.outcome.step, 600);
  EXPECT_TRUE(std::isfinite(r.outcome.best_val_loss));
  EXPECT_GT(h_train, 2.5);  // sanity of the reference: English text is around 3 nats/byte
  // Seen: 2.39-2.42 nats at 600 steps against a unigram entropy of 3.29 (seeds 1, 2, 3, 7;
  // 1 or 2 threads). At 250-300 steps the tiny model is only just leaving the unigram
  // plateau (2.9-3.0), hence 600 steps (about 2 s).
  EXPECT_LT(r.outcome.best_val_loss, h_train - 0.5);
  EXPECT_LT(r.outcome.best_val_loss, h_cross - 0.5);
  // the metrics record the same best
  auto m = read_metrics(dir_ + "/S");
  ASSERT_FALSE(m.evals.empty());
  EXPECT_NEAR(m.evals.rbegin()->second.at("best_val_loss").get<double>(), r.outcome.best_val_loss, 1e-12);
  EXPECT_LT(m.steps.rbegin()->second.at("loss").get<double>(),
            m.steps.begin()->second.at("loss").get<double>() - 1.0);
}

}  // namespace

namespace {

// An empty prompt starts where documents start in the training data: after a "%" line for
// fortune files, after a newline for plain text.
TEST_F(TrainRunTest, RecordsWhereDocumentsStart) {
  std::string fortunes;
  for (int i = 0; i < 400; i++) fortunes += "Fortune number " + std::to_string(i) + " says hello.\n%\n";
  const std::string fortune_file = dir_ + "/fortunes";
  std::ofstream(fortune_file, std::ios::binary) << fortunes;
  const std::string plain_file = dir_ + "/plain.txt";
  std::string plain;
  for (int i = 0; i < 400; i++) plain += "Line number " + std::to_string(i) + " has no separators.\n";
  std::ofstream(plain_file, std::ios::binary) << plain;
  auto quiet = [](const std::string&) {};
  for (auto [data, expected] :
       {std::pair<std::string, std::string>{fortune_file, "%\n"}, {plain_file, "\n"}}) {
    const std::string out = dir_ + "/model-" + std::to_string(expected.size());
    train({"--data", data, "--out", out, "--preset", "tiny", "--steps", "2", "--quiet", "--samples=false"},
          quiet);
    imagine::TextModel m = imagine::load_text_model(out, torch::kCPU);
    EXPECT_EQ(m.start_text, expected) << data;
    EXPECT_EQ(m.config["dataset"]["start_text"], expected);
  }
}

}  // namespace

TEST(ParseDuration, UnitsAndPlainSecondsAndRefusals) {
  EXPECT_DOUBLE_EQ(imagine::parse_duration("90s"), 90);
  EXPECT_DOUBLE_EQ(imagine::parse_duration("5m"), 300);
  EXPECT_DOUBLE_EQ(imagine::parse_duration("1h30m"), 5400);
  EXPECT_DOUBLE_EQ(imagine::parse_duration("2.5m"), 150);
  EXPECT_DOUBLE_EQ(imagine::parse_duration("300"), 300);
  for (const char* bad : {"", "5x", "-1s", "0", "0s", "1h30", "m", "5 m", "1e9h", "nan", "inf"}) {
    try {
      imagine::parse_duration(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const imagine::Error& e) {
      EXPECT_FALSE(e.hint().empty()) << bad;
    }
  }
}
