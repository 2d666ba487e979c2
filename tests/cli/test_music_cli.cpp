// End-to-end tests of the music verbs: a tiny GPT learns the JSB chorales (validation loss
// falls), generates MIDI that re-parses, continues a primer keeping it, renders audible WAV
// and a piano roll, evaluates, and fails cleanly on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "../support/metrics.h"
#include "../support/run_cli.h"
#include "../support/temp_dir.h"
#include "core/files.h"
#include "image/image.h"
#include "music/midi.h"
#include "provenance/carriers.h"

namespace fs = std::filesystem;
using namespace imagine::testing;

namespace {

const std::string kChorales =
    std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/jsb-chorales/jsb-chorales-16th.json";

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// The validation losses of a model's evaluations, in order.
std::vector<double> val_losses(const std::string& model) {
  std::vector<double> out;
  for (auto& j : read_metrics_lines(model))
    if (j.value("event", "") == "eval") out.push_back(j["val_loss"].get<double>());
  return out;
}

class MusicCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_tmp = make_temp_dir("imagine_music_cli_");
    ASSERT_FALSE(g_tmp.empty());
    model_ = g_tmp + "/chorales";
    const std::vector<std::string> args = {"train",    "music", "--data",    kChorales, "--out",  model_,
                                           "--preset", "tiny",  "--threads", "1",       "--quiet"};
    auto r = run_imagine(args, 600);
    trained_ = r.exited && r.code == 0;
    log_ = describe(args, r);
  }
  static void TearDownTestSuite() { fs::remove_all(g_tmp); }
  void SetUp() override { ASSERT_TRUE(trained_) << log_; }
  static ProcResult ok(const std::vector<std::string>& args) {
    auto r = run_imagine(args, 300);
    EXPECT_TRUE(r.exited && r.code == 0) << describe(args, r);
    return r;
  }
  static inline std::string model_, log_;
  static inline bool trained_ = false;
};

TEST_F(MusicCli, ValidationLossFallsOnTheChorales) {
  const std::vector<double> evals = val_losses(model_);
  ASSERT_GE(evals.size(), 2u);
  const auto cfg = nlohmann::json::parse(slurp(model_ + "/config.json"));
  const double uniform = std::log(cfg["architecture"]["vocab_size"].get<double>());
  EXPECT_LT(evals.back(), evals.front());
  EXPECT_LT(evals.back(), uniform - 1.5) << "uniform guessing scores " << uniform;
  EXPECT_EQ(cfg["family"], "gpt-music");
  EXPECT_EQ(cfg["dataset"]["train_pieces"], 229);
  EXPECT_EQ(cfg["dataset"]["valid_pieces"], 76);
  EXPECT_EQ(cfg["dataset"]["test_pieces"], 77);
}

TEST_F(MusicCli, GeneratedMidiReparsesAndRendersToAudibleWav) {
  const std::string mid = g_tmp + "/piece.mid", wav = g_tmp + "/piece.wav";
  auto r = ok({"generate", "music", "--model", model_, "--out", mid, "--wav", wav, "--seconds", "6", "--seed",
               "3", "--threads", "1", "--quiet"});
  auto song = imagine::read_midi(mid);
  EXPECT_GT(song.notes.size(), 0u) << r.out;
  EXPECT_LE(song.duration(), 6.5);
  // Same seed, same piece.
  ok({"generate", "music", "--model", model_, "--out", g_tmp + "/again.mid", "--seconds", "6", "--seed", "3",
      "--threads", "1", "--quiet"});
  // Same bytes but the manifest's creation time.
  auto a = imagine::split_midi_manifest(slurp(mid), "a"),
       b = imagine::split_midi_manifest(slurp(g_tmp + "/again.mid"), "b");
  EXPECT_EQ(a.first, b.first);
  auto ma = nlohmann::json::parse(a.second), mb = nlohmann::json::parse(b.second);
  ma.erase("created");
  mb.erase("created");
  EXPECT_EQ(ma, mb);
  // 16-bit stereo 44.1 kHz: the piece plus a release tail, and not silence.
  const std::string w = slurp(wav);
  ASSERT_GT(w.size(), 44u);
  EXPECT_EQ(w.substr(0, 4), "RIFF");
  const double seconds = static_cast<double>(w.size() - 44) / (44100 * 4);
  EXPECT_GT(seconds, song.duration());
  EXPECT_LT(seconds, song.duration() + 3.0);
  int peak = 0;
  for (size_t i = 44; i + 1 < w.size(); i += 2)
    peak = std::max(peak, std::abs(int(int16_t(uint8_t(w[i]) | (uint8_t(w[i + 1]) << 8)))));
  EXPECT_GT(peak, 300);
}

TEST_F(MusicCli, GeneratedNotesAreCutToTheLengthCap) {
  const auto cfg = nlohmann::json::parse(slurp(model_ + "/config.json"));
  const double p99 = cfg["dataset"]["note_seconds_p99"].get<double>();
  EXPECT_GT(p99, 0.1);  // chorale notes: a few 16ths up to whole notes
  EXPECT_LT(p99, 10.0);
  for (const std::string cap : {"0.5", "-1"}) {
    const std::string mid = g_tmp + "/capped" + cap + ".mid";
    ok({"generate", "music", "--model", model_, "--out", mid, "--seconds", "10", "--seed", "5",
        "--max-note-seconds", cap, "--threads", "1", "--quiet"});
    const double limit = cap == "-1" ? p99 : 0.5;
    for (auto& n : imagine::read_midi(mid).notes) EXPECT_LE(n.end - n.start, limit + 0.01) << "cap " << cap;
  }
}

TEST_F(MusicCli, ContinueKeepsThePrimerAndRecordsSeeds) {
  ok({"export", "music", "--data", kChorales, "--out", g_tmp + "/primers", "--count", "1", "--quiet"});
  const std::string primer = g_tmp + "/primers/test-0.mid";
  ASSERT_TRUE(fs::exists(primer));
  auto r = ok({"continue", "music", "--model", model_, "--primer", primer, "--primer-seconds", "4", "--count",
               "2", "--seconds", "4", "--seed", "10", "--out", g_tmp + "/cont", "--threads", "1", "--quiet"});
  for (int s : {10, 11}) {
    const std::string path = g_tmp + "/cont/continuation-s" + std::to_string(s) + ".mid";
    ASSERT_TRUE(fs::exists(path)) << r.out;
    auto song = imagine::read_midi(path);
    auto primer_song = imagine::read_midi(primer);
    // Every primer note that ends within the first 4 s is still there.
    int kept = 0, expected = 0;
    for (auto& p : primer_song.notes) {
      if (p.end > 4.0) continue;
      expected++;
      for (auto& n : song.notes)
        if (n.pitch == p.pitch && std::fabs(n.start - p.start) < 0.07) {
          kept++;
          break;
        }
    }
    EXPECT_GT(expected, 0);
    EXPECT_EQ(kept, expected);
    // The new part runs to the requested 4 s (the end marker waits; the last events may be
    // a rest, so the notes can end sooner) and not beyond.
    EXPECT_LE(song.duration(), 8.0 + 1e-9) << r.out;
  }
  EXPECT_EQ(count_of(r.out, "events (seconds)"), 2)
      << "both continuations stop at the length asked for: " << r.out;
}

// Without a preset, music gets the text family's recipe: RoPE, RMSNorm, QK-norm, ReLU², a
// logit soft-cap, Muon and the trapezoid schedule. At a small size it learns the chorales,
// records every option, and plays well past its context (the RoPE ring cache) into MIDI
// that re-parses.
TEST_F(MusicCli, DefaultRecipeLearnsRecordsItsOptionsAndPlaysPastItsContext) {
  const std::string out = g_tmp + "/recipe", mid = g_tmp + "/recipe.mid";
  ok({"train",     "music", "--data",       kChorales, "--out",        out,  "--n-layer",    "2",
      "--n-head",  "2",     "--n-embd",     "32",      "--block-size", "32", "--batch-size", "8",
      "--steps",   "60",    "--eval-every", "30",      "--eval-iters", "4",  "--dropout",    "0",
      "--threads", "1",     "--quiet"});
  const auto cfg = nlohmann::json::parse(slurp(out + "/config.json"));
  const auto& arch = cfg["architecture"];
  EXPECT_EQ(arch["pos"], "rope");
  EXPECT_EQ(arch["norm"], "rmsnorm");
  EXPECT_EQ(arch["qk_norm"], true);
  EXPECT_EQ(arch["mlp"], "relu2");
  EXPECT_EQ(arch["logit_softcap"], 15.0);
  EXPECT_EQ(arch["block_size"], 32);
  const auto& recipe = cfg["training"]["recipe"];
  EXPECT_EQ(recipe["optimizer"], "muon");
  EXPECT_EQ(recipe["schedule"], "trapezoid");
  const std::vector<double> evals = val_losses(out);
  ASSERT_GE(evals.size(), 2u);
  const double uniform = std::log(arch["vocab_size"].get<double>());
  EXPECT_LT(evals.back(), evals.front());
  EXPECT_LT(evals.back(), uniform - 1.0) << "uniform guessing scores " << uniform;
  // 12 seconds of chorale is a few hundred events: many times the 32-event context.
  auto r = ok({"generate", "music", "--model", out, "--out", mid, "--seconds", "12", "--seed", "2",
               "--threads", "1", "--quiet"});
  auto song = imagine::read_midi(mid);
  EXPECT_GT(song.notes.size(), 8u) << r.out;
  EXPECT_GT(song.duration(), 4.0) << "the piece stopped near its context's length";
  EXPECT_LE(song.duration(), 12.5);
  auto info = ok({"info", out});
  EXPECT_NE(info.out.find("rope"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("Muon"), std::string::npos) << info.out;
}

TEST_F(MusicCli, RenderRollEvalAndInfo) {
  ok({"export", "music", "--data", kChorales, "--out", g_tmp + "/ex", "--split", "train", "--count", "1",
      "--quiet"});
  const std::string mid = g_tmp + "/ex/train-0.mid";
  auto r = ok({"render", "music", mid, "--wav", g_tmp + "/r.wav"});
  EXPECT_NE(r.out.find("real time"), std::string::npos) << r.out;
  ok({"roll", "music", mid, "--png", g_tmp + "/roll.png"});
  EXPECT_GT(imagine::read_image(g_tmp + "/roll.png").width, 100);
  auto e = ok({"eval", model_, "--pieces", "2", "--seconds", "5", "--json", "--threads", "1", "--quiet"});
  auto j = nlohmann::json::parse(e.out);
  EXPECT_EQ(j["split"], "test");
  EXPECT_GT(j["loss_per_event"].get<double>(), 0);
  EXPECT_GE(j["pitch_class_distance"].get<double>(), 0);
  EXPECT_LE(j["pitch_class_distance"].get<double>(), 1);
  EXPECT_GT(j["train_stats"]["polyphony"].get<double>(), 2.0);  // four-voice chorales
  auto i = ok({"info", model_});
  EXPECT_NE(i.out.find("music GPT"), std::string::npos) << i.out;
}

TEST_F(MusicCli, TrainsOnTheBundledMidiSongsByDefault) {
  const std::string out = g_tmp + "/openmsx";
  auto r = ok({"train", "music", "--out", out, "--preset", "tiny", "--steps", "4", "--eval-every", "4",
               "--threads", "1"});
  EXPECT_NE(r.err.find("used 31 file(s)"), std::string::npos) << r.err;
  const auto cfg = nlohmann::json::parse(slurp(out + "/config.json"));
  EXPECT_EQ(cfg["dataset"]["format"], "midi");
  EXPECT_EQ(cfg["dataset"]["train_pieces"].get<int>() + cfg["dataset"]["valid_pieces"].get<int>(), 31);
  EXPECT_GE(cfg["dataset"]["valid_pieces"].get<int>(), 1);
  EXPECT_DOUBLE_EQ(cfg["dataset"]["augmentation"]["stretch"].get<double>(), 0.1);
}

TEST_F(MusicCli, BadInputFailsCleanly) {
  imagine::write_file_atomic(g_tmp + "/bad.mid", std::string("MThd\0\0\0\6\0\1\0\2", 12));
  expect_clean_failure(
      {"continue", "music", "--model", model_, "--primer", g_tmp + "/bad.mid", "--out", g_tmp + "/c"}, 1);
  expect_clean_failure({"render", "music", g_tmp + "/missing.mid", "--wav", g_tmp + "/x.wav"}, 1);
  expect_clean_failure({"roll", "music", g_tmp + "/bad.mid", "--png", g_tmp + "/x.png"}, 1);
  fs::create_directories(g_tmp + "/nomidi");
  imagine::write_file_atomic(g_tmp + "/nomidi/a.mid", "not midi at all");
  expect_clean_failure(
      {"train", "music", "--data", g_tmp + "/nomidi", "--out", g_tmp + "/m", "--preset", "tiny"}, 1);
  expect_clean_failure(
      {"generate", "music", "--model", model_, "--out", g_tmp + "/x.mid", "--temperature", "-1"}, 2);
  expect_clean_failure({"generate", "music", "--model", g_tmp + "/nomidi", "--out", g_tmp + "/x.mid"}, 1);
}

}  // namespace
