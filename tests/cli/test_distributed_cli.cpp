// `imagine train ... --nproc 2` end to end (loopback Gloo): the launcher starts the ranks,
// rank 0 alone reports and writes; a rank killed with SIGKILL, or one that hangs, makes the
// others exit non-zero within --dist-timeout with the rank named, and the checkpoint still
// loads and continues on one rank; Ctrl-C stops every rank after one checkpoint; bad
// distributed flags get error + hint.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/run_cli.h"
#include "../support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

using namespace imagine::testing;

class DistCli : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    g_tmp = make_temp_dir("imagine_dist_");
    ASSERT_FALSE(g_tmp.empty());
    corpus_ = g_tmp + "/corpus.txt";
    const std::string shakes = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
    std::string text;
    if (fs::exists(shakes)) {
      text = slurp(shakes).substr(0, 30000);
    } else {
      std::mt19937 gen(5);
      const char* words[] = {"the", "king", "and", "queen", "of", "a", "fair", "day", "to", "my", "lord"};
      while (text.size() < 30000) text += std::string(words[gen() % 11]) + (gen() % 9 == 0 ? ".\n" : " ");
    }
    std::ofstream(corpus_, std::ios::binary) << text;
  }
  static std::vector<std::string> text_args(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {"train", "text",     "--data", corpus_,       "--out",
                                  out,     "--preset", "tiny",   "--no-samples"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::string corpus_;
};
std::string DistCli::corpus_;

// The launcher's children and their RANK.
std::vector<std::pair<pid_t, int>> ranks_of(pid_t launcher) {
  std::vector<std::pair<pid_t, int>> out;
  std::ifstream children("/proc/" + std::to_string(launcher) + "/task/" + std::to_string(launcher) +
                         "/children");
  pid_t pid;
  while (children >> pid) {
    std::string env = slurp("/proc/" + std::to_string(pid) + "/environ");
    std::istringstream vars(env);
    std::string kv;
    int rank = -1;
    while (std::getline(vars, kv, '\0'))
      if (kv.rfind("RANK=", 0) == 0) rank = std::stoi(kv.substr(5));
    out.push_back({pid, rank});
  }
  return out;
}

int64_t checkpoint_step(const std::string& dir) {
  const std::string f = dir + "/checkpoint-latest/trainer_state.json";
  if (!fs::exists(f)) return -1;
  try {
    return nlohmann::json::parse(slurp(f)).at("step").get<int64_t>();
  } catch (...) {
    return -1;
  }
}

// Starts a long --nproc 2 run and waits until it has written a checkpoint and both ranks run.
pid_t start_long_run(const std::string& dir, const std::string& base, std::vector<std::string> extra,
                     std::vector<std::pair<pid_t, int>>* ranks) {
  std::vector<std::string> more = {"--nproc",      "2",  "--steps",   "1000000",
                                   "--eval-every", "20", "--threads", "1"};
  more.insert(more.end(), extra.begin(), extra.end());
  const pid_t pid = spawn_imagine(DistCli::text_args(dir, more), base + ".out", base + ".err");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (std::chrono::steady_clock::now() < deadline &&
         (checkpoint_step(dir) < 20 || ranks_of(pid).size() < 2))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  *ranks = ranks_of(pid);
  return pid;
}

TEST_F(DistCli, TwoRanksTrainTextAndRankZeroAloneReports) {
  const std::string dir = g_tmp + "/two";
  const auto args = text_args(dir, {"--nproc", "2", "--steps", "40"});
  auto r = run_imagine(args, 180);
  ASSERT_EQ(r.code, 0) << describe(args, r);
  // One summary and one model line: rank 1 is silent.
  size_t summaries = 0;
  for (size_t p = r.out.find("trained 40 steps"); p != std::string::npos;
       p = r.out.find("trained 40 steps", p + 1))
    summaries++;
  EXPECT_EQ(summaries, 1u) << r.out;
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  const auto cfg = nlohmann::json::parse(slurp(dir + "/config.json"));
  EXPECT_EQ(cfg["training"]["world_size"], 2);
  EXPECT_EQ(cfg["training"]["dist_backend"], "gloo");
  EXPECT_EQ(cfg["training"]["step"], 40);
  // Loss fell, and the model generates.
  std::ifstream metrics(dir + "/metrics.jsonl");
  std::vector<double> losses;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
  }
  ASSERT_EQ(losses.size(), 4u) << "one line per --log-every, written once";
  EXPECT_LT(losses.back(), losses.front() - 0.5);
  auto g = run_imagine({"generate", "text", "--model", dir, "--max-tokens", "20", "--seed", "1"});
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_GE(g.out.size(), 10u);
}

TEST_F(DistCli, TwoRanksTrainTheGanWithBothOptimizerGroups) {
  const std::string dir = g_tmp + "/gan";
  const std::vector<std::string> args = {"train",          "image", "--model", "gan", "--out",        dir,
                                         "--preset",       "tiny",  "--steps", "6",   "--eval-every", "6",
                                         "--eval-samples", "64",    "--nproc", "2",   "--threads",    "1"};
  auto r = run_imagine(args, 300);
  ASSERT_EQ(r.code, 0) << describe(args, r);
  const auto st = nlohmann::json::parse(slurp(dir + "/checkpoint-latest/trainer_state.json"));
  EXPECT_EQ(st["world_size"], 2);
  EXPECT_EQ(st["optimizer_steps"]["d"], 6);
  EXPECT_EQ(st["optimizer_steps"]["g"], 6);
  auto s = run_imagine(
      {"generate", "image", "--model", dir, "--count", "2", "--out", g_tmp + "/gan-out", "--quiet"});
  EXPECT_EQ(s.code, 0) << s.err;
}

// A rank that dies: the launcher names it, the other rank fails within --dist-timeout, the
// checkpoint is intact and the run continues on one rank (2 -> 1 with the same recipe).
TEST_F(DistCli, AKilledRankStopsTheOthersInTimeAndTheRunResumesOnOneRank) {
  const std::string dir = g_tmp + "/killed";
  std::vector<std::pair<pid_t, int>> ranks;
  const pid_t pid = start_long_run(dir, g_tmp + "/killed", {"--dist-timeout", "10"}, &ranks);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ranks.size(), 2u) << slurp(g_tmp + "/killed.err");
  pid_t victim = -1;
  for (auto [p, r] : ranks)
    if (r == 1) victim = p;
  ASSERT_GT(victim, 0);
  const auto t0 = std::chrono::steady_clock::now();
  kill(victim, SIGKILL);
  ProcResult r;
  wait_for(pid, r, 60);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.err = slurp(g_tmp + "/killed.err");
  EXPECT_FALSE(r.timed_out);
  EXPECT_TRUE(r.exited);
  EXPECT_NE(r.code, 0);
  EXPECT_LT(took, 10.0 + 5.0) << "within --dist-timeout";
  EXPECT_TRUE(has(r.err, "error: rank 1 of 2 was killed by signal 9")) << r.err;
  EXPECT_TRUE(has(r.err, "error: rank 0 of 2: ")) << "the survivor says what failed: " << r.err;
  EXPECT_TRUE(has(r.err, "hint: ")) << r.err;
  EXPECT_FALSE(has(r.err, "terminate called")) << r.err;
  const int64_t step = checkpoint_step(dir);
  ASSERT_GE(step, 20);
  // Resume on one rank: the checkpoint loads (checksums verified) and training continues.
  const auto args = text_args(dir, {"--resume", "--nproc", "1", "--steps", std::to_string(step + 20)});
  auto resumed = run_imagine(args, 120);
  ASSERT_EQ(resumed.code, 0) << describe(args, resumed);
  EXPECT_TRUE(has(resumed.err, "resuming")) << resumed.err;
  EXPECT_EQ(checkpoint_step(dir), step + 20);
  const auto st = nlohmann::json::parse(slurp(dir + "/checkpoint-latest/trainer_state.json"));
  EXPECT_EQ(st["world_size"], 1);
  EXPECT_EQ(st["recipe"]["batch_size"], 8) << "the same global batch";
}

// A rank that hangs (stopped): the other rank's collective times out after --dist-timeout.
TEST_F(DistCli, AHungRankMakesTheOthersFailAfterTheTimeout) {
  const std::string dir = g_tmp + "/hung";
  std::vector<std::pair<pid_t, int>> ranks;
  const pid_t pid = start_long_run(dir, g_tmp + "/hung", {"--dist-timeout", "3"}, &ranks);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ranks.size(), 2u) << slurp(g_tmp + "/hung.err");
  for (auto [p, r] : ranks)
    if (r == 1) kill(p, SIGSTOP);
  const auto t0 = std::chrono::steady_clock::now();
  ProcResult r;
  wait_for(pid, r, 60);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.err = slurp(g_tmp + "/hung.err");
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.code, 0);
  EXPECT_GE(took, 2.5);
  EXPECT_LT(took, 3.0 + 5.0 + 5.0) << "timeout, then the launcher stops the hung rank";
  EXPECT_TRUE(has(r.err, "error: rank 0 of 2: ")) << r.err;
  EXPECT_TRUE(has(r.err, "rank 1 did not stop")) << r.err;
  EXPECT_GE(checkpoint_step(dir), 20) << "the checkpoint survived";
}

// Ctrl-C reaches the launcher; every rank stops at the same step after one checkpoint.
TEST_F(DistCli, CtrlCStopsEveryRankAfterACheckpoint) {
  const std::string dir = g_tmp + "/ctrlc";
  std::vector<std::pair<pid_t, int>> ranks;
  const pid_t pid = start_long_run(dir, g_tmp + "/ctrlc", {}, &ranks);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(ranks.size(), 2u);
  const ProcResult r = interrupt(pid, g_tmp + "/ctrlc.out", g_tmp + "/ctrlc.err", 60);
  EXPECT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.code, 128 + SIGINT) << r.err;
  EXPECT_TRUE(has(r.err, "interrupted at step")) << r.err;
  EXPECT_FALSE(has(r.err, "error:")) << r.err;
  const auto st = nlohmann::json::parse(slurp(dir + "/checkpoint-latest/trainer_state.json"));
  const std::string said = r.err.substr(r.err.find("interrupted at step ") + 20);
  EXPECT_EQ(st["step"].get<int64_t>(), std::stoll(said)) << "the checkpoint is the step it stopped at";
  for (auto [p, rank] : ranks) EXPECT_NE(kill(p, 0), 0) << "rank " << rank << " still runs";
}

TEST_F(DistCli, BadDistributedFlagsAreRefusedBeforeAnyRankStarts) {
  expect_clean_failure(text_args(g_tmp + "/bad1", {"--nproc", "3"}), 1);  // batch 8
  expect_clean_failure(text_args(g_tmp + "/bad2", {"--nproc", "zero"}), 1);
  expect_clean_failure(text_args(g_tmp + "/bad3", {"--nproc", "0"}), 1);
  expect_clean_failure(text_args(g_tmp + "/bad4", {"--nproc", "2", "--dist-backend", "nccl"}), 1);
  expect_clean_failure(text_args(g_tmp + "/bad5", {"--nproc", "2", "--dist-backend", "mpi"}), 2);
  EXPECT_FALSE(fs::exists(g_tmp + "/bad1/config.json"));
}

}  // namespace
