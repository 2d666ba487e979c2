// End-to-end tests of the `imagine` binary: error reporting and exit codes, a tiny
// train -> generate -> info -> eval round trip, reproducibility by seed, --stop and --out,
// refusal to overwrite, damaged model directories, the BPE tokenizer, and Ctrl-C + --resume.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../support/metrics.h"
#include "../support/run_cli.h"
#include "../support/temp_dir.h"
#include "core/files.h"

namespace fs = std::filesystem;

namespace {

using namespace imagine::testing;

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The training corpus: 20 KB of tinyshakespeare, or a synthetic English-like text when the
// data set is not there (these tests need text, not Shakespeare).
std::string make_corpus(const std::string& path, size_t bytes) {
  const std::string shakes = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
  if (fs::exists(shakes)) return write_text(path, slurp(shakes).substr(0, bytes));
  const std::vector<std::string> words = {"the",  "king", "and", "queen", "of",   "a",     "fair",
                                          "day",  "to",   "my",  "lord",  "good", "night", "sweet",
                                          "love", "is",   "not", "what",  "it",   "seems"};
  std::mt19937 gen(5);
  std::string text;
  while (text.size() < bytes) {
    text += words[gen() % words.size()];
    text += gen() % 9 == 0 ? ".\n" : " ";
  }
  return write_text(path, text);
}

std::string sha_of(const std::string& path) { return imagine::sha256_hex(slurp(path)); }

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_tmp = imagine::testing::make_temp_dir("imagine_cli_");
    ASSERT_FALSE(g_tmp.empty());
    corpus_ = make_corpus(g_tmp + "/corpus.txt", 20000);
    model_ = g_tmp + "/model";
    const std::vector<std::string> args = {"train",   "text",         "--data",    corpus_,   "--out",
                                           model_,    "--preset",     "tiny",      "--steps", "30",
                                           "--quiet", "--no-samples", "--threads", "1"};
    const auto t0 = std::chrono::steady_clock::now();
    auto r = run_imagine(args, 300);
    train_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    trained_ = r.exited && r.code == 0;
    train_log_ = describe(args, r);
  }
  static void TearDownTestSuite() { fs::remove_all(g_tmp); }
  void SetUp() override { ASSERT_TRUE(trained_) << "training the shared tiny model failed:\n" << train_log_; }

  // A private copy of the trained model directory (for tests that damage it).
  static std::string copy_model(const std::string& name) {
    const std::string dst = g_tmp + "/" + name;
    fs::remove_all(dst);
    fs::copy(model_, dst, fs::copy_options::recursive);
    return dst;
  }
  static std::vector<std::string> gen(const std::string& model, std::vector<std::string> extra) {
    std::vector<std::string> a = {"generate", "text", "--model", model, "--threads", "1"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  static inline std::string corpus_, model_, train_log_;
  static inline bool trained_ = false;
  static inline double train_seconds_ = 0;
};

}  // namespace

TEST_F(Cli, HelpAndUsage) {
  auto r = run_imagine({"--help"});
  EXPECT_TRUE(r.exited && r.code == 0) << describe({"--help"}, r);
  EXPECT_TRUE(has(r.out, "usage:")) << r.out;
  EXPECT_TRUE(has(r.out, "imagine train text")) << r.out;
  auto t = run_imagine({"train", "text", "--help"});
  EXPECT_EQ(t.code, 0);
  EXPECT_TRUE(has(t.out, "--steps")) << t.out;
  EXPECT_TRUE(has(t.out, "tiny")) << t.out;
  auto g = run_imagine({"generate", "text", "--help"});
  EXPECT_EQ(g.code, 0);
  EXPECT_TRUE(has(g.out, "--temperature")) << g.out;
  auto none = run_imagine({});
  EXPECT_EQ(none.code, 2);  // no command: usage, as an error
  EXPECT_TRUE(has(none.out, "usage:"));
  auto v = run_imagine({"--version"});
  EXPECT_EQ(v.code, 0);
  EXPECT_TRUE(has(v.out, "imagine")) << v.out;
}

TEST_F(Cli, TrainErrorsAreReportedWithHints) {
  const std::string out = g_tmp + "/never";
  const std::string empty = write_text(g_tmp + "/empty.txt", "");
  // runtime errors: exit 1
  expect_clean_failure(
      {"train", "text", "--data", g_tmp + "/no/such/file.txt", "--out", out, "--preset", "tiny"}, 1);
  expect_clean_failure({"train", "text", "--data", empty, "--out", out, "--preset", "tiny"}, 1);
  expect_clean_failure({"train", "text", "--data", corpus_, "--preset", "tiny"}, 1);  // no --out
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", out, "--preset", "tiny", "--n-embd",
                        "30", "--n-head", "4"},
                       1);  // not divisible
  // usage errors: exit 2
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", out, "--steps", "-5"}, 2);
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", out, "--preset", "nope"}, 2);
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", out, "--stesp", "5"}, 2);
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", out, "--tokenizer", "words"}, 2);
  expect_clean_failure({"train", "video", "--data", corpus_, "--out", out}, 2);
  expect_clean_failure({"train", "text", "stray", "--out", out}, 2);
  expect_clean_failure({"frobnicate"}, 2);
  expect_clean_failure({"generate", "text"}, 2);  // no --model
  expect_clean_failure({"info"}, 2);
  expect_clean_failure({"eval", model_}, 2);  // no --data
  // the hints say something useful
  auto r = run_imagine({"train", "text", "--data", corpus_, "--out", out, "--stesp", "5"});
  EXPECT_TRUE(has(r.err, "did you mean --steps?")) << r.err;
  auto p = run_imagine({"train", "text", "--data", corpus_, "--out", out, "--preset", "nope"});
  EXPECT_TRUE(has(p.err, "tiny")) << p.err;
  // nothing was written by the failed runs
  EXPECT_FALSE(fs::exists(out + "/config.json"));
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
}

TEST_F(Cli, GenerateIsReproducibleBySeed) {
  const auto args7 = gen(model_, {"--max-tokens", "40", "--seed", "7"});
  auto a = run_imagine(args7), b = run_imagine(args7);
  ASSERT_EQ(a.code, 0) << describe(args7, a);
  ASSERT_EQ(b.code, 0) << describe(args7, b);
  EXPECT_EQ(a.out, b.out);
  EXPECT_GE(a.out.size(), 40u + 1u);  // 40 byte tokens + newline (empty prompt)
  EXPECT_TRUE(has(a.err, "seed 7")) << a.err;
  auto c = run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "8"}));
  ASSERT_EQ(c.code, 0);
  EXPECT_NE(a.out, c.out);
  // greedy decoding ignores the seed
  auto g1 = run_imagine(gen(model_, {"--max-tokens", "30", "--temperature", "0", "--seed", "1", "--quiet"}));
  auto g2 = run_imagine(gen(model_, {"--max-tokens", "30", "--temperature", "0", "--seed", "2", "--quiet"}));
  ASSERT_EQ(g1.code, 0) << g1.err;
  EXPECT_EQ(g1.out, g2.out);
  EXPECT_EQ(g1.err, "");  // --quiet: nothing on stderr
  // the KV cache does not change greedy output (within one context window)
  auto nk =
      run_imagine(gen(model_, {"--max-tokens", "20", "--temperature", "0", "--quiet", "--prompt", "KING"}));
  auto nn = run_imagine(gen(
      model_, {"--max-tokens", "20", "--temperature", "0", "--quiet", "--prompt", "KING", "--no-kv-cache"}));
  ASSERT_EQ(nk.code, 0) << nk.err;
  EXPECT_EQ(nk.out, nn.out);
  EXPECT_EQ(nk.out.rfind("KING", 0), 0u) << nk.out;  // the prompt is echoed first
  // nor sampled output far past the context (both slide the same window)
  const std::vector<std::string> far = {"--max-tokens", "150", "--seed", "4", "--quiet", "--prompt", "KING"};
  std::vector<std::string> far_nk = far;
  far_nk.push_back("--no-kv-cache");
  auto fk = run_imagine(gen(model_, far));
  auto fn = run_imagine(gen(model_, far_nk));
  ASSERT_EQ(fk.code, 0) << fk.err;
  EXPECT_EQ(fk.out, fn.out);
}

// A model directory written before the architecture options and Muon existed (its
// config.json has none of their keys) loads as the GPT-2 + AdamW model it was and samples
// exactly what the same weights sample with today's config.json; `info` still reads it.
TEST_F(Cli, ModelDirectoryFromBeforeTheOptionsGeneratesAsBefore) {
  const std::string old = copy_model("before-options");
  auto cfg = nlohmann::json::parse(slurp(old + "/config.json"));
  for (const char* k :
       {"pos", "rope_base", "norm", "qk_norm", "mlp", "tied_head", "zero_init", "logit_softcap"})
    ASSERT_EQ(cfg["architecture"].erase(k), 1u) << k;
  for (const char* k : {"optimizer", "schedule", "cooldown", "muon_lr", "muon_momentum", "muon_ns_steps"})
    ASSERT_EQ(cfg["training"]["recipe"].erase(k), 1u) << k;
  write_text(old + "/config.json", cfg.dump(2));
  const std::vector<std::string> sample = {"--max-tokens", "120",      "--seed", "11",
                                           "--quiet",      "--prompt", "KING"};
  auto now = run_imagine(gen(model_, sample)), before = run_imagine(gen(old, sample));
  ASSERT_EQ(now.code, 0) << now.err;
  ASSERT_EQ(before.code, 0) << before.err;
  EXPECT_EQ(before.out, now.out);
  EXPECT_GT(before.out.size(), 120u);
  auto info = run_imagine({"info", old});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_TRUE(has(info.out, "learned positions")) << info.out;
  EXPECT_TRUE(has(info.out, "AdamW")) << info.out;
  EXPECT_FALSE(has(info.out, "Muon")) << info.out;
}

// --count N decodes the samples together in one batch; each is what its seed gives alone
// (sample i: seed + i), printed in order under its header, with a stop string too.
TEST_F(Cli, CountSamplesDecodedTogetherMatchEachSeedAlone) {
  auto batch = run_imagine(
      gen(model_, {"--max-tokens", "30", "--seed", "20", "--count", "3", "--stop", "e", "--quiet"}));
  ASSERT_EQ(batch.code, 0) << batch.err;
  std::string want;
  for (int i = 0; i < 3; i++) {
    auto one = run_imagine(
        gen(model_, {"--max-tokens", "30", "--seed", std::to_string(20 + i), "--stop", "e", "--quiet"}));
    ASSERT_EQ(one.code, 0) << one.err;
    want += (i == 0 ? "" : "\n") + std::string("--- sample ") + std::to_string(i + 1) + " of 3 (seed " +
            std::to_string(20 + i) + ") ---\n" + one.out;
  }
  EXPECT_EQ(batch.out, want);
}

TEST_F(Cli, StopTruncatesAndOutWritesTheFile) {
  auto full = run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "7", "--quiet"}));
  ASSERT_EQ(full.code, 0) << full.err;
  ASSERT_GE(full.out.size(), 2u);
  const std::string text = full.out.substr(0, full.out.size() - 1);  // without the final newline
  // a two-byte stop string taken from the second half of the text
  std::string stop;
  for (size_t i = text.size() / 2; i + 2 <= text.size() && stop.empty(); i++) {
    std::string cand = text.substr(i, 2);
    if (cand.find('\\') == std::string::npos && cand.find('\n') == std::string::npos) stop = cand;
  }
  ASSERT_FALSE(stop.empty()) << text;
  const size_t at = text.find(stop);
  auto cut = run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "7", "--quiet", "--stop", stop}));
  ASSERT_EQ(cut.code, 0) << cut.err;
  EXPECT_EQ(cut.out, text.substr(0, at) + "\n") << "stop '" << stop << "' in '" << text << "'";
  EXPECT_LT(cut.out.size(), full.out.size());
  auto loud = run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "7", "--stop", stop}));
  EXPECT_TRUE(has(loud.err, "stop: stop")) << loud.err;
  // a stop string that never occurs changes nothing
  auto never =
      run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "7", "--quiet", "--stop", "\x01\x02"}));
  EXPECT_EQ(never.out, full.out);
  // --out writes what was printed
  const std::string file = g_tmp + "/sample.txt";
  auto o = run_imagine(gen(model_, {"--max-tokens", "40", "--seed", "7", "--quiet", "--out", file}));
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, full.out);
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(slurp(file), full.out);
}

// Ctrl-C during a long generation ends the sample there and keeps it: the text printed so
// far, the file and its manifest are written, the stop reason says so, exit 128 + SIGINT.
TEST_F(Cli, CtrlCEndsTheSampleAndKeepsTheFile) {
  const std::string out = g_tmp + "/interrupted.txt";
  const auto args = gen(model_, {"--max-tokens", "1000000", "--seed", "3", "--out", out});
  const pid_t pid = spawn_imagine(args, g_tmp + "/gint.out", g_tmp + "/gint.err");
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (slurp(g_tmp + "/gint.out").size() < 2000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_GE(slurp(g_tmp + "/gint.out").size(), 2000u) << "no text streamed: " << slurp(g_tmp + "/gint.err");
  const ProcResult r = interrupt(pid, g_tmp + "/gint.out", g_tmp + "/gint.err", 30);
  EXPECT_TRUE(r.exited) << describe(args, r);
  EXPECT_EQ(r.code, 128 + SIGINT) << describe(args, r);
  EXPECT_TRUE(has(r.err, "stop: interrupted")) << r.err;
  ASSERT_TRUE(fs::exists(out)) << r.err;
  EXPECT_TRUE(fs::exists(out + ".provenance.json"));
  const std::string file = slurp(out);
  EXPECT_GT(file.size(), 1000u);
  EXPECT_LT(file.size(), 1000000u) << "the sample ended at the signal, not at max-tokens";
  EXPECT_EQ(r.out.rfind(file.substr(0, 1000), 0), 0u) << "the file holds what was printed";
}

// --decode-precision bf16: the cached step multiplies by bf16 weights; the text is still
// watermarked text from the model and the manifest says how it was decoded.
TEST_F(Cli, Bf16DecodingWeightsAreRecordedInTheManifest) {
  const std::string out = g_tmp + "/bf16.txt";
  auto r = run_imagine(
      gen(model_, {"--max-tokens", "60", "--seed", "3", "--out", out, "--decode-precision", "bf16"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GE(slurp(out).size(), 20u);
  const auto manifest = slurp(out + ".provenance.json");
  EXPECT_TRUE(has(manifest, "\"decode_precision\": \"bf16\"") ||
              has(manifest, "\"decode_precision\":\"bf16\""))
      << manifest;
  auto plain = run_imagine(gen(model_, {"--max-tokens", "60", "--seed", "3", "--out", g_tmp + "/f32.txt"}));
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_FALSE(has(slurp(g_tmp + "/f32.txt.provenance.json"), "decode_precision"));
  expect_clean_failure(gen(model_, {"--decode-precision", "int4"}), 2);
}

// --time-limit: the run stops at the budget (with --steps far out of reach) after a final
// evaluation and checkpoint, the learning-rate schedule having run its course over the time
// (warm-up, then cosine decay down to --min-lr); the recipe records the budget and the steps
// done. A malformed duration is refused before training.
TEST_F(Cli, TimeLimitLaysTheScheduleOverTheBudgetAndStopsInTime) {
  const std::string dir = g_tmp + "/timed";
  const std::vector<std::string> args = {
      "train",   "text",         "--data",       corpus_, "--out",       dir, "--preset",     "tiny",
      "--steps", "10000000",     "--time-limit", "4s",    "--log-every", "5", "--eval-every", "0",
      "--quiet", "--no-samples", "--threads",    "1"};
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_imagine(args);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.code, 0) << describe(args, r);
  EXPECT_LT(took, 30.0) << "model loading and the final evaluation included";
  const auto cfg = nlohmann::json::parse(slurp(dir + "/config.json"));
  const int64_t steps = cfg["training"]["step"].get<int64_t>();
  EXPECT_GT(steps, 20);
  EXPECT_LT(steps, 10000000);
  EXPECT_EQ(cfg["training"]["recipe"]["time_limit_s"], 4.0);
  const auto st = nlohmann::json::parse(slurp(dir + "/checkpoint-latest/trainer_state.json"));
  EXPECT_EQ(st["step"].get<int64_t>(), steps) << "the checkpoint is the last step";
  std::vector<double> lrs;
  double last_eval_step = -1, last_elapsed = 0;
  for (const auto& j : read_metrics_lines(dir)) {
    if (j.value("event", "") == "eval")
      last_eval_step = j["step"].get<double>();
    else
      lrs.push_back(j["lr"].get<double>());
    last_elapsed = j["elapsed_s"].get<double>();
  }
  EXPECT_EQ(last_eval_step, static_cast<double>(steps)) << "a final evaluation at the last step";
  EXPECT_LT(last_elapsed, 4.5) << "stopped within the budget";
  ASSERT_GE(lrs.size(), 4u);
  const double peak = *std::max_element(lrs.begin(), lrs.end());
  EXPECT_NEAR(peak, 3e-3, 3e-4) << "the warm-up reached the preset's peak";
  EXPECT_LT(lrs.back(), 3e-4 + 0.15 * (3e-3 - 3e-4)) << "the cosine decay ended near --min-lr at the budget";
  EXPECT_GT(lrs[lrs.size() / 2], lrs.back()) << "decaying over time";
  expect_clean_failure({"train", "text", "--data", corpus_, "--out", g_tmp + "/timed2", "--preset", "tiny",
                        "--time-limit", "5 minutes"},
                       1);
}

TEST_F(Cli, InfoAndEval) {
  auto t = run_imagine({"info", model_});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(has(t.out, "2 layers")) << t.out;
  EXPECT_TRUE(has(t.out, "tokenizer:    byte")) << t.out;
  EXPECT_TRUE(has(t.out, "best val:")) << t.out;
  auto r = run_imagine({"info", model_, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out;
  // tiny: V = 256 bytes, C = 32, context 32, 2 layers, no biases
  const int64_t V = 256, C = 32, T = 32, L = 2;
  const int64_t per_layer = C + 3 * C * C + C * C + C + 4 * C * C + 4 * C * C;
  EXPECT_EQ(j.at("parameters").get<int64_t>(), V * C + T * C + L * per_layer + C);
  EXPECT_EQ(j.at("parameters_excluding_positions").get<int64_t>(), V * C + L * per_layer + C);
  EXPECT_EQ(j.at("architecture").at("n_layer"), 2);
  EXPECT_EQ(j.at("architecture").at("n_embd"), 32);
  EXPECT_EQ(j.at("architecture").at("block_size"), 32);
  EXPECT_EQ(j.at("tokenizer").at("kind"), "byte");
  EXPECT_EQ(j.at("family"), "gpt-text");
  ASSERT_TRUE(j.at("best_val_loss").is_number());
  const double best = j["best_val_loss"].get<double>();
  EXPECT_TRUE(std::isfinite(best));
  EXPECT_GT(best, 0.5);
  EXPECT_LT(best, std::log(256.0) + 0.5);
  EXPECT_EQ(j.at("training").at("step"), 30);
  EXPECT_EQ(j.at("dataset").at("bytes"), fs::file_size(corpus_));

  const std::string held_out = write_text(g_tmp + "/held_out.txt", slurp(corpus_).substr(15000, 3000));
  auto e = run_imagine({"eval", model_, "--data", held_out, "--json", "--threads", "1"});
  ASSERT_EQ(e.code, 0) << e.err;
  auto ej = nlohmann::json::parse(e.out);
  const double loss = ej.at("loss").get<double>(), bpb = ej.at("bits_per_byte").get<double>();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_TRUE(std::isfinite(bpb));
  EXPECT_GT(loss, 0.5);
  EXPECT_LT(loss, std::log(256.0) + 0.5);
  EXPECT_EQ(ej.at("bytes").get<int64_t>(), 3000);
  EXPECT_EQ(ej.at("tokens").get<int64_t>(), 2999);  // byte tokens, every one after the first scored
  EXPECT_NEAR(bpb, loss * 2999 / (3000 * std::log(2.0)), 1e-9);
  EXPECT_NEAR(ej.at("perplexity").get<double>(), std::exp(loss), 1e-6 * std::exp(loss));
  // the same text scored twice gives the same number (deterministic)
  auto e2 =
      run_imagine({"eval", model_, "--data", held_out, "--json", "--threads", "1", "--batch-size", "3"});
  ASSERT_EQ(e2.code, 0) << e2.err;
  EXPECT_NEAR(nlohmann::json::parse(e2.out).at("loss").get<double>(), loss,
              1e-5);  // batching does not matter
  // info and eval of a missing directory fail cleanly
  expect_clean_failure({"info", g_tmp + "/missing"}, 1);
  expect_clean_failure({"eval", g_tmp + "/missing", "--data", held_out}, 1);
}

TEST_F(Cli, TrainingRefusesToOverwriteAModel) {
  const std::string dir = copy_model("refuse");
  const std::string before = sha_of(dir + "/model.safetensors"), cfg_before = sha_of(dir + "/config.json");
  const std::vector<std::string> args = {"train",   "text",      "--data", corpus_,   "--out",
                                         dir,       "--preset",  "tiny",   "--steps", "5",
                                         "--quiet", "--threads", "1"};
  auto r = run_imagine(args);
  EXPECT_TRUE(r.exited) << describe(args, r);
  EXPECT_NE(r.code, 0) << describe(args, r);
  EXPECT_TRUE(has(r.err, "error: ")) << r.err;
  EXPECT_TRUE(has(r.err, "--resume")) << r.err;
  EXPECT_EQ(sha_of(dir + "/model.safetensors"), before);
  EXPECT_EQ(sha_of(dir + "/config.json"), cfg_before);
}

TEST_F(Cli, DamagedModelDirectoriesFailCleanly) {
  const auto size = fs::file_size(model_ + "/model.safetensors");
  {
    const std::string d = copy_model("truncated");
    fs::resize_file(d + "/model.safetensors", size / 2);
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
    fs::resize_file(d + "/model.safetensors", 5);  // not even a header length
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
  }
  {
    // one flipped bit in the header (a dtype), in the middle of the data and in its last byte
    const std::string bytes = slurp(model_ + "/model.safetensors");
    ASSERT_GT(bytes.size(), 8u);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
    ASSERT_LT(8 + header_len, bytes.size());
    const size_t dtype_at = bytes.find("F32", 8);
    ASSERT_LT(dtype_at, 8 + header_len);
    const size_t data_start = 8 + header_len;
    for (size_t pos : {dtype_at, data_start + (bytes.size() - data_start) / 2, bytes.size() - 1}) {
      const std::string d = copy_model("flipped");
      std::string b = bytes;
      b[pos] = static_cast<char>(b[pos] ^ 0x10);
      write_text(d + "/model.safetensors", b);
      SCOPED_TRACE("flipped byte " + std::to_string(pos) + " of " + std::to_string(b.size()));
      expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
      expect_clean_failure({"eval", d, "--data", corpus_}, 1);
    }
  }
  {
    const std::string d = copy_model("future");
    auto cfg = nlohmann::json::parse(slurp(d + "/config.json"));
    cfg["format_version"] = 99;
    write_text(d + "/config.json", cfg.dump(2));
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
    auto r = run_imagine(gen(d, {"--max-tokens", "5"}));
    EXPECT_TRUE(has(r.err, "99")) << r.err;
    expect_clean_failure({"info", d}, 1);
  }
  {
    const std::string d = copy_model("badjson");
    write_text(d + "/config.json", "{\"format\": \"imagine.model\", ");
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
  }
  {
    const std::string d = copy_model("noweights");
    fs::remove(d + "/model.safetensors");
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
  }
  {
    const std::string d = copy_model("wrongarch");  // config says 3 layers, the weights have 2
    auto cfg = nlohmann::json::parse(slurp(d + "/config.json"));
    cfg["architecture"]["n_layer"] = 3;
    write_text(d + "/config.json", cfg.dump(2));
    expect_clean_failure(gen(d, {"--max-tokens", "5"}), 1);
  }
}

TEST_F(Cli, BpeTokenizerRoundTrip) {
  const std::string dir = g_tmp + "/bpe";
  const std::vector<std::string> args = {
      "train",    "text", "--data",      corpus_,        "--out",        dir,
      "--preset", "tiny", "--tokenizer", "bpe",          "--vocab-size", "300",
      "--steps",  "10",   "--quiet",     "--no-samples", "--threads",    "1"};
  auto r = run_imagine(args);
  ASSERT_EQ(r.code, 0) << describe(args, r);
  auto info = run_imagine({"info", dir, "--json"});
  ASSERT_EQ(info.code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j.at("tokenizer").at("kind"), "bpe");
  EXPECT_EQ(j.at("tokenizer").at("vocab_size"), 300);
  EXPECT_EQ(j.at("architecture").at("vocab_size"), 300);
  // BPE covers more than a byte per token on the text it was trained on
  EXPECT_LT(j.at("dataset").at("train_tokens").get<int64_t>(),
            j.at("dataset").at("train_bytes").get<int64_t>());
  const auto g = gen(dir, {"--prompt", "ROMEO:\nWhat", "--max-tokens", "30", "--seed", "3", "--quiet"});
  auto a = run_imagine(g), b = run_imagine(g);
  ASSERT_EQ(a.code, 0) << describe(g, a);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.out.rfind("ROMEO:\nWhat", 0), 0u) << a.out;
  EXPECT_GT(a.out.size(), std::string("ROMEO:\nWhat\n").size());
  auto e = run_imagine({"eval", dir, "--data", corpus_, "--json", "--threads", "1"});
  ASSERT_EQ(e.code, 0) << e.err;
  auto ej = nlohmann::json::parse(e.out);
  EXPECT_TRUE(std::isfinite(ej.at("bits_per_byte").get<double>()));
  EXPECT_LT(ej.at("tokens").get<int64_t>(), ej.at("bytes").get<int64_t>() - 1);
  // a BPE model directory without its tokenizer file fails cleanly
  fs::remove_all(g_tmp + "/bpe_broken");
  fs::copy(dir, g_tmp + "/bpe_broken", fs::copy_options::recursive);
  for (auto& entry : fs::directory_iterator(g_tmp + "/bpe_broken"))
    if (entry.path().extension() == ".model") fs::remove(entry.path());
  expect_clean_failure(gen(g_tmp + "/bpe_broken", {"--max-tokens", "5"}), 1);
}

TEST_F(Cli, InterruptSavesACheckpointAndResumeContinues) {
  const std::string dir = g_tmp + "/interrupted";
  const std::vector<std::string> args = {
      "train",        "text", "--data",  corpus_,        "--out",       dir,
      "--preset",     "tiny", "--steps", "100000",       "--log-every", "1",
      "--eval-every", "0",    "--quiet", "--no-samples", "--threads",   "1"};
  const pid_t pid = spawn_imagine(args, g_tmp + "/int.out", g_tmp + "/int.err");
  ASSERT_GT(pid, 0);
  // wait until step 5 is logged
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int64_t logged = 0;
  while (logged < 5 && std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded()) logged = std::max(logged, j.value("step", int64_t{0}));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GE(logged, 5) << "training did not get going: " << slurp(g_tmp + "/int.err");
  const ProcResult r = interrupt(pid, g_tmp + "/int.out", g_tmp + "/int.err", 120);
  EXPECT_TRUE(r.exited) << describe(args, r);
  EXPECT_EQ(r.code, 128 + SIGINT) << describe(args, r);
  EXPECT_TRUE(has(r.err, "interrupt")) << r.err;
  ASSERT_TRUE(fs::exists(dir + "/checkpoint-latest/trainer_state.json"));
  const auto st = nlohmann::json::parse(slurp(dir + "/checkpoint-latest/trainer_state.json"));
  const int64_t stopped = st.at("step").get<int64_t>();
  EXPECT_GE(stopped, 5);
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));  // loadable although never evaluated
  // continue to a few steps past the interrupt
  const std::vector<std::string> resume = {
      "train",   "text",      "--out", dir, "--resume", "--steps", std::to_string(stopped + 3),
      "--quiet", "--threads", "1"};
  auto c = run_imagine(resume);
  ASSERT_EQ(c.code, 0) << describe(resume, c);
  // metrics continue without gaps or repeats
  int64_t expect = 1;
  for (const auto& j : read_metrics_lines(dir)) {
    if (j.value("event", "") == "eval") continue;
    EXPECT_EQ(j.at("step").get<int64_t>(), expect);
    expect++;
  }
  EXPECT_EQ(expect, stopped + 4);
  auto g = run_imagine(gen(dir, {"--max-tokens", "10", "--seed", "1", "--quiet"}));
  EXPECT_EQ(g.code, 0) << g.err;
}
