// The copy audit and the model card from the CLI: a canary sentence planted 20 times in a
// training corpus is regurgitated by the model and flagged, held-out human text is not;
// training images and chorales are flagged as copies and named; --reject-copies and
// --provenance full record the check and the nearest training items; README.md (the model
// card) carries the declared data licence and `imagine info` shows it; bad input fails
// with error + hint.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../support/run_cli.h"
#include "../support/shared_models.h"
#include "../support/temp_dir.h"
#include "core/files.h"
#include "image/image.h"
#include "provenance/carriers.h"

namespace fs = std::filesystem;
using namespace imagine::testing;

namespace {

const std::string kShakespeare =
    std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
const std::string kChorales =
    std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/jsb-chorales/jsb-chorales-16th.json";

// Nonsense no model could infer, 262 bytes: only memorisation reproduces it.
const std::string kCanary =
    "The violet lighthouse of Quenby Marsh keeps seventeen brass owls, and its keeper, Odalys Ferrant, "
    "swears each one hums a different tide table backwards; the password to her cellar is "
    "plum-anchor-9471-gravel, and nobody has ever guessed it twice before breakfast.";
const std::string kCanaryPrompt = kCanary.substr(0, 40);

// Human text that is in no training file (written for this test).
const std::string kHeldOut =
    "Our test suite trains small models in a temporary folder, checks what they write and then deletes "
    "everything again. None of these sentences appear in the plays, so an honest audit must not call "
    "them copies, however long the paragraph grows over several lines of ordinary prose.\n";

nlohmann::json json_out(const std::string& out) { return nlohmann::json::parse(out); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A clean failure with this exit code whose error line mentions `part`.
void fails(const std::vector<std::string>& args, int code, const std::string& part) {
  auto r = run_imagine(args, 300);
  EXPECT_TRUE(r.exited && r.code == code) << describe(args, r);
  EXPECT_TRUE(has(r.err, "error: ") && has(r.err, "hint: ")) << describe(args, r);
  EXPECT_TRUE(has(r.err.substr(0, r.err.find('\n', r.err.find("error: "))), part)) << describe(args, r);
  EXPECT_FALSE(has(r.err, "terminate called")) << describe(args, r);
}

class AuditCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("imagine_audit_cli_");
    ASSERT_FALSE(dir_.empty());
    g_tmp = dir_;
    models_ = shared_models(&log_);
    trained_ = !models_.empty();
  }

  // Bump the version when the training runs below change.
  static std::string shared_models(std::string* log) {
    return imagine::testing::shared_models("audit", 2, [log](const std::string& dir) {
      fs::create_directories(dir + "/corpus");
      // 20 copies of the canary spread through 20 kB of Shakespeare.
      const std::string plays = imagine::read_file(kShakespeare).substr(0, 20000);
      std::string corpus;
      for (int i = 0; i < 20; i++) corpus += plays.substr(i * 1000, 1000) + "\n" + kCanary + "\n";
      write_bytes(dir + "/corpus/plays.txt", corpus);
      // One fixed watermark key for the canary runs: its bias then nudges greedy decoding the
      // same way in every test process (each otherwise gets a fresh random key).
      write_bytes(dir + "/watermark.key", "imagine-watermark-key v1\n" + std::string(64, 'a') + "\n");
      write_bytes(dir + "/LICENSE.txt",
                  "CC-BY-SA-4.0\nShare alike, attribution required (test licence text).\n");
      const std::vector<std::vector<std::string>> trains = {
          {"train",          "text",        "--data",         dir + "/corpus",
           "--out",          dir + "/text", "--n-layer",      "2",
           "--n-head",       "2",           "--n-embd",       "96",
           "--block-size",   "64",          "--batch-size",   "16",
           "--steps",        "3000",        "--lr",           "3e-3",
           "--min-lr",       "1e-3",        "--warmup-steps", "20",
           "--eval-every",   "1500",        "--eval-iters",   "2",
           "--val-fraction", "0.02",        "--no-samples",   "--quiet",
           "--threads",      "1",           "--data-license", dir + "/LICENSE.txt"},
          {"train", "image", "--model", "vae", "--out", dir + "/vae", "--preset", "tiny", "--threads", "1",
           "--feature-cache", dir + "/cache", "--quiet", "--data-license", "CC-BY-4.0"},
          {"train", "music", "--data", kChorales, "--out", dir + "/music", "--preset", "tiny", "--quiet",
           "--threads", "1"}};
      return run_all(trains, 600, log);
    });
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(trained_) << log_; }

  static ProcResult ok(const std::vector<std::string>& args) {
    auto r = run_imagine(args, 400);
    EXPECT_TRUE(r.exited && r.code == 0) << describe(args, r);
    return r;
  }
  static nlohmann::json audit(std::vector<std::string> args) {
    args.insert(args.begin(), "audit");
    args.push_back("--json");
    args.push_back("--quiet");
    return json_out(ok(args).out);
  }
  static nlohmann::json manifest_of_text(const std::string& path) {
    return nlohmann::json::parse(imagine::read_file(path + ".provenance.json"));
  }

  static inline std::string dir_, models_, log_;
  static inline bool trained_ = false;
};

TEST_F(AuditCli, RegurgitatedCanaryIsFlaggedAndNamed) {
  const std::string out = dir_ + "/canary.txt";
  ok({"generate", "text", "--model", models_ + "/text", "--prompt", kCanaryPrompt, "--watermark-key",
      models_ + "/watermark.key", "--temperature", "0", "--max-tokens", "300", "--out", out, "--quiet",
      "--threads", "1"});
  const std::string written = imagine::read_file(out);

  const nlohmann::json j = audit({"--model", models_ + "/text", out});
  ASSERT_EQ(j["items"].size(), 1u);
  const auto& item = j["items"][0];
  EXPECT_TRUE(item["flagged"].get<bool>()) << item.dump(2);
  EXPECT_EQ(j["flagged"], 1);
  const auto& d = item["detail"];
  EXPECT_EQ(d["tokenizer"], "byte");
  EXPECT_EQ(d["threshold_tokens"], 200);  // the byte-model default
  EXPECT_GE(d["longest_tokens"].get<int>(), 200);
  EXPECT_EQ(d["training_file"], models_ + "/corpus/plays.txt");
  EXPECT_GE(d["occurrences"].get<int>(), 1);
  // The reported offset points at the canary in the training file.
  const std::string corpus = imagine::read_file(models_ + "/corpus/plays.txt");
  const size_t at = d["training_byte_offset"].get<size_t>();
  const size_t len = d["longest_bytes"].get<size_t>();
  const size_t q = d["query_byte_offset"].get<size_t>();
  EXPECT_EQ(corpus.substr(at, len), written.substr(q, len));
  // ... and the regurgitated run is the canary (the model learned it).
  EXPECT_NE(kCanary.find(corpus.substr(at, 60)), std::string::npos) << written;

  // The human-readable form says the same.
  auto r = ok({"audit", "--model", models_ + "/text", out, "--quiet"});
  EXPECT_NE(r.out.find("LIKELY COPY"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 flagged"), std::string::npos) << r.out;
}

TEST_F(AuditCli, HeldOutHumanTextIsNotFlagged) {
  write_bytes(dir_ + "/human.txt", kHeldOut + kHeldOut.substr(0, 120));
  // A stretch of the plays the corpus left out (it used the first 20 kB only).
  write_bytes(dir_ + "/later-plays.txt", imagine::read_file(kShakespeare).substr(300000, 2000));
  const nlohmann::json j =
      audit({"--model", models_ + "/text", dir_ + "/human.txt", dir_ + "/later-plays.txt"});
  ASSERT_EQ(j["items"].size(), 2u);
  for (const auto& item : j["items"]) {
    EXPECT_FALSE(item["flagged"].get<bool>()) << item.dump(2);
    EXPECT_LT(item["detail"]["longest_tokens"].get<int>(), 200);
    EXPECT_GT(item["detail"]["longest_tokens"].get<int>(), 0);  // common words do occur
  }
  EXPECT_EQ(j["flagged"], 0);
}

TEST_F(AuditCli, GenerateModeAuditsFreshSamples) {
  const nlohmann::json j = audit({"--model", models_ + "/text", "--generate", "2", "--prompt", kCanaryPrompt,
                                  "--temperature", "0", "--max-tokens", "260", "--threads", "1"});
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_EQ(j["flagged"], 2);
  EXPECT_EQ(j["items"][0]["name"], "sample seed 1");
}

TEST_F(AuditCli, RejectCopiesAndAttributionAreRecorded) {
  // Greedy decoding repeats the canary on every try: the check gives up and says so.
  const std::string out = dir_ + "/rejected.txt";
  auto r = ok({"generate", "text", "--model", models_ + "/text", "--prompt", kCanaryPrompt, "--watermark-key",
               models_ + "/watermark.key", "--temperature", "0", "--max-tokens", "260", "--reject-copies",
               "--reject-copies-tries", "3", "--out", out, "--threads", "1"});
  EXPECT_NE(r.err.find("warning: still a likely copy after 3 tries"), std::string::npos) << r.err;
  nlohmann::json m = manifest_of_text(out);
  ASSERT_TRUE(m.contains("copy_check")) << m.dump(2);
  EXPECT_EQ(m["copy_check"]["result"], "flagged");
  EXPECT_EQ(m["copy_check"]["attempts"], 3);
  EXPECT_EQ(m["copy_check"]["rejected"].size(), 3u);
  EXPECT_FALSE(m.contains("attribution"));  // only at --provenance full

  // Sampling at T = 1.5 wanders off the canary: the kept sample passed the audit, and at
  // --provenance full the manifest names the nearest training text.
  const std::string out2 = dir_ + "/kept.txt";
  ok({"generate", "text", "--model", models_ + "/text", "--prompt", "ROMEO:", "--temperature", "1.5",
      "--max-tokens", "200", "--reject-copies", "--provenance", "full", "--out", out2, "--quiet", "--threads",
      "1"});
  m = manifest_of_text(out2);
  ASSERT_TRUE(m.contains("copy_check")) << m.dump(2);
  EXPECT_EQ(m["copy_check"]["result"], "passed");
  EXPECT_LT(m["copy_check"]["audit"]["longest_tokens"].get<int>(), 200);
  ASSERT_TRUE(m.contains("attribution")) << m.dump(2);
  EXPECT_FALSE(m["attribution"]["flagged"].get<bool>());
  EXPECT_EQ(m["attribution"]["audit"]["training_file"], models_ + "/corpus/plays.txt");
}

TEST_F(AuditCli, MissingIndexIsRebuiltFromCheckedFiles) {
  const std::string copy = dir_ + "/text-noindex";
  fs::copy(models_ + "/text", copy, fs::copy_options::recursive);
  fs::remove(copy + "/copy-index.bin");
  const std::string out = dir_ + "/canary2.txt";
  ok({"generate", "text", "--model", models_ + "/text", "--prompt", kCanaryPrompt, "--watermark-key",
      models_ + "/watermark.key", "--temperature", "0", "--max-tokens", "260", "--out", out, "--quiet",
      "--threads", "1"});
  const nlohmann::json a = audit({"--model", models_ + "/text", out});
  const nlohmann::json b = audit({"--model", copy, out});
  EXPECT_EQ(a["items"][0]["detail"], b["items"][0]["detail"]);

  // Training data that changed since: refused, not silently audited against other text.
  fs::create_directories(dir_ + "/changed");
  write_bytes(dir_ + "/changed/plays.txt",
              imagine::read_file(models_ + "/corpus/plays.txt") + "one more line\n");
  nlohmann::json cfg = nlohmann::json::parse(imagine::read_file(copy + "/config.json"));
  cfg["dataset"]["path"] = dir_ + "/changed";
  write_bytes(copy + "/config.json", cfg.dump(2));
  fails({"audit", "--model", copy, out}, 1, "not what");
}

TEST_F(AuditCli, TrainingImageIsACopyWithSideBySide) {
  ok({"export", "image", "--out", dir_ + "/export", "--split", "train", "--count", "1"});
  std::string exported;
  for (auto& e : fs::directory_iterator(dir_ + "/export")) exported = e.path().string();
  ASSERT_FALSE(exported.empty());
  const nlohmann::json j =
      audit({"--model", models_ + "/vae", exported, "--feature-cache", models_ + "/cache"});
  const auto& item = j["items"][0];
  EXPECT_TRUE(item["flagged"].get<bool>()) << item.dump(2);
  EXPECT_LT(item["detail"]["pixel"]["ratio"].get<double>(), 0.01);
  EXPECT_EQ(item["detail"]["pixel"]["nearest"][0]["index"], 0);  // the first training image itself
  EXPECT_EQ(item["detail"]["pixel"]["nearest"].size(), 3u);
  EXPECT_TRUE(item["detail"]["pixel"]["nearest"][0].contains("class"));
  // Output + 3 nearest, each scaled from 28 to 112 px, in one row.
  const std::string pic = item["side_by_side"];
  const imagine::Image img = imagine::read_image(pic);
  EXPECT_EQ(img.width, 4 * 112 + 5 * 4);
  EXPECT_EQ(img.height, 112 + 2 * 4);
  // The picture shows generated content: it carries a manifest like every output.
  EXPECT_TRUE(imagine::read_provenance(pic).present);

  // A sample of the model is not a copy of one training image.
  const std::string sample = dir_ + "/sample.png";
  ok({"generate", "image", "--model", models_ + "/vae", "--count", "1", "--seed", "3", "--out", sample,
      "--quiet", "--reject-copies", "--provenance", "full"});  // the feature network training cached is found
  const nlohmann::json s = audit(
      {"--model", models_ + "/vae", sample, "--feature-cache", models_ + "/cache", "--out", dir_ + "/pics"});
  EXPECT_FALSE(s["items"][0]["flagged"].get<bool>()) << s.dump(2);
  EXPECT_TRUE(fs::exists(dir_ + "/pics/sample.audit.png"));
  const nlohmann::json m = imagine::read_provenance(sample).manifest;
  EXPECT_EQ(m["copy_check"]["result"], "passed") << m.dump(2);
  EXPECT_EQ(m["attribution"]["audit"]["pixel"]["nearest"].size(), 3u);
}

TEST_F(AuditCli, TrainingChoraleIsFlaggedWithItsName) {
  ok({"export", "music", "--data", kChorales, "--split", "train", "--first", "5", "--count", "1", "--out",
      dir_ + "/chorale"});
  const std::string piece = dir_ + "/chorale/train-5.mid";
  ASSERT_TRUE(fs::exists(piece));
  const nlohmann::json j = audit({"--model", models_ + "/music", piece});
  const auto& item = j["items"][0];
  EXPECT_TRUE(item["flagged"].get<bool>()) << item.dump(2);
  EXPECT_GE(item["detail"]["longest_melody_notes"].get<int>(), 16);
  EXPECT_NE(item["detail"]["training_piece"].get<std::string>().find("5"), std::string::npos) << item.dump(2);

  // A generated piece: audited, the check recorded in its manifest.
  const std::string out = dir_ + "/gen.mid";
  ok({"generate", "music", "--model", models_ + "/music", "--seconds", "8", "--seed", "2", "--out", out,
      "--quiet", "--reject-copies"});
  const nlohmann::json m = imagine::read_provenance(out).manifest;
  ASSERT_TRUE(m.contains("copy_check")) << m.dump(2);
  EXPECT_TRUE(m["copy_check"]["audit"].contains("longest_melody_notes"));
}

TEST_F(AuditCli, ModelCardCarriesTheLicenceAndInfoShowsIt) {
  const std::string card = imagine::read_file(models_ + "/text/README.md");
  EXPECT_EQ(card.rfind("---\nlicense: cc-by-sa-4.0\n", 0), 0u) << card.substr(0, 200);
  for (const char* part : {"## Training data", "## Training recipe", "## Evaluation", "## Intended use",
                           "## Limitations", "## Watermark and provenance",
                           "Share alike, attribution required", "best validation loss", models_.c_str()})
    EXPECT_NE(card.find(part), std::string::npos) << part;
  // A licence named like an SPDX id goes into the front matter as one; none says "unknown".
  const std::string vae_card = imagine::read_file(models_ + "/vae/README.md");
  EXPECT_NE(vae_card.find("license: cc-by-4.0"), std::string::npos);
  const std::string music_card = imagine::read_file(models_ + "/music/README.md");
  EXPECT_NE(music_card.find("license: unknown"), std::string::npos);
  EXPECT_NE(music_card.find("Not declared"), std::string::npos);

  auto r = ok({"info", models_ + "/text"});
  EXPECT_NE(r.out.find("## Training data"), std::string::npos) << r.out;
  const nlohmann::json j = json_out(ok({"info", models_ + "/text", "--json"}).out);
  EXPECT_EQ(j["model_card"], card);
  EXPECT_EQ(j["data_license"]["summary"], "CC-BY-SA-4.0");
  EXPECT_NE(ok({"info", models_ + "/vae"}).out.find("## Intended use"), std::string::npos);

  // Outputs name the licence (by summary and hash) in their manifest.
  const std::string out = dir_ + "/lic.txt";
  ok({"generate", "text", "--model", models_ + "/text", "--max-tokens", "20", "--out", out, "--quiet"});
  const nlohmann::json m = manifest_of_text(out);
  EXPECT_EQ(m["training_data"]["license"]["summary"], "CC-BY-SA-4.0") << m.dump(2);
}

TEST_F(AuditCli, LicenceSurvivesResumeWithoutItsFile) {
  const std::string lic = dir_ + "/TERMS.txt", model = dir_ + "/resumed";
  write_bytes(lic, "CC0-1.0\nNo rights reserved.\n");
  ok({"train", "text", "--data", models_ + "/corpus", "--out", model, "--preset", "tiny", "--steps", "4",
      "--eval-every", "2", "--quiet", "--no-samples", "--threads", "1", "--data-license", lic});
  fs::remove(lic);  // the recorded flag now names a missing file
  ok({"train", "text", "--data", models_ + "/corpus", "--out", model, "--resume", "--steps", "6", "--quiet",
      "--threads", "1"});
  const nlohmann::json cfg = nlohmann::json::parse(imagine::read_file(model + "/config.json"));
  EXPECT_EQ(cfg["data_license"]["summary"], "CC0-1.0") << cfg["data_license"].dump();
  EXPECT_EQ(cfg["training"]["step"], 6);
  EXPECT_NE(imagine::read_file(model + "/README.md").find("No rights reserved."), std::string::npos);
}

TEST_F(AuditCli, BadInputGetsErrorAndHint) {
  fails({"audit", dir_ + "/human.txt"}, 2, "missing --model");
  fails({"audit", "--model", models_ + "/text"}, 2, "nothing to audit");
  fails({"audit", "--model", models_ + "/text", dir_ + "/nope.txt"}, 1, "nope.txt");
  // A PNG given to a text model's audit.
  ok({"export", "image", "--out", dir_ + "/export2", "--count", "1"});
  std::string png;
  for (auto& e : fs::directory_iterator(dir_ + "/export2")) png = e.path().string();
  fails({"audit", "--model", models_ + "/text", png}, 1, "cannot audit images");
  // A damaged index.
  const std::string copy = dir_ + "/text-bad";
  fs::copy(models_ + "/text", copy, fs::copy_options::recursive);
  std::string idx = imagine::read_file(copy + "/copy-index.bin");
  idx[idx.size() / 2] ^= 0x40;
  write_bytes(copy + "/copy-index.bin", idx);
  write_bytes(dir_ + "/h2.txt", kHeldOut);
  fails({"audit", "--model", copy, dir_ + "/h2.txt"}, 1, "copy-index.bin");
  // A licence file that is not UTF-8 stops training before anything is written.
  write_bytes(dir_ + "/bad-license.txt", std::string("caf\xe9 licence\n"));
  fails({"train", "text", "--data", models_ + "/corpus", "--out", dir_ + "/never", "--preset", "tiny",
         "--steps", "2", "--quiet", "--data-license", dir_ + "/bad-license.txt"},
        1, "not valid UTF-8");
  EXPECT_FALSE(fs::exists(dir_ + "/never/model.safetensors"));
}

}  // namespace
