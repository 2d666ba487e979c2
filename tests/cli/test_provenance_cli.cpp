// Responsible generation from the CLI: every output kind carries its watermark and
// manifest; --no-watermark outputs are not detected and say so; signatures verify and any
// change is caught; exiftool and mido read what we write; bad inputs fail cleanly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "image/image.h"
#include "music/midi.h"
#include "provenance/carriers.h"

#include "../support/run_cli.h"
#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using namespace imagine::testing;

namespace {

const std::string kShakespeare = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
const std::string kChorales = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/jsb-chorales/jsb-chorales-16th.json";

nlohmann::json json_line(const std::string& out) { return nlohmann::json::parse(out.substr(0, out.find('\n'))); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

class ProvenanceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("imagine_prov_cli_");
    ASSERT_FALSE(dir_.empty());
    g_tmp = dir_;  // run_imagine's stdout/stderr capture files go here (not /procN at the root)
    const std::vector<std::vector<std::string>> trains = {
        {"train", "text", "--data", kShakespeare, "--out", dir_ + "/text", "--preset", "tiny", "--steps", "60",
         "--quiet", "--no-samples", "--threads", "1"},
        {"train", "image", "--model", "vae", "--out", dir_ + "/vae", "--preset", "tiny", "--threads", "1",
         "--feature-cache", dir_ + "/cache", "--quiet"},
        {"train", "music", "--data", kChorales, "--out", dir_ + "/music", "--preset", "tiny", "--quiet", "--threads",
         "1"}};
    trained_ = run_all(trains, 400, &log_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(trained_) << log_; }

  static ProcResult ok(const std::vector<std::string>& args) {
    auto r = run_imagine(args, 300);
    EXPECT_TRUE(r.exited && r.code == 0) << describe(args, r);
    return r;
  }
  static nlohmann::json detect(const std::string& path, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"detect", path, "--json"};
    a.insert(a.end(), extra.begin(), extra.end());
    return json_line(ok(a).out);
  }
  static nlohmann::json verify(const std::string& path, int want_code, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"verify", path, "--json"};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = run_imagine(a, 120);
    EXPECT_TRUE(r.exited && r.code == want_code) << describe(a, r);
    return json_line(r.out);
  }

  static inline std::string dir_, log_;
  static inline bool trained_ = false;
};

TEST_F(ProvenanceCli, TextIsWatermarkedWithASidecarManifest) {
  const std::string out = dir_ + "/t.txt", plain = dir_ + "/plain.txt";
  ok({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "400", "--seed", "5", "--out", out, "--quiet",
      "--threads", "1", "--prompt", "ROMEO:"});
  ok({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "400", "--seed", "5", "--out", plain, "--quiet",
      "--threads", "1", "--no-watermark"});
  auto d = detect(out);
  EXPECT_EQ(d["verdict"], "watermarked") << d.dump();
  EXPECT_GT(d["z"].get<double>(), 4.0);
  EXPECT_EQ(d["type"], "text");
  auto p = detect(plain);
  EXPECT_EQ(p["verdict"], "not watermarked") << p.dump();
  // The manifests say what happened, prompt only at --provenance full.
  auto m = nlohmann::json::parse(imagine::read_file(out + ".provenance.json"));
  EXPECT_EQ(m["digital_source_type"], "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
  EXPECT_TRUE(m["watermark"]["applied"].get<bool>());
  EXPECT_EQ(m["watermark"]["scheme"], "kgw-selfhash-4");
  EXPECT_EQ(m["model"]["id"].get<std::string>().rfind("sha256:", 0), 0u);
  EXPECT_EQ(m["generation"]["seed"], 5);
  EXPECT_FALSE(m.contains("prompt"));
  EXPECT_FALSE(nlohmann::json::parse(imagine::read_file(plain + ".provenance.json"))["watermark"]["applied"].get<bool>());
  ok({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "20", "--seed", "5", "--out", dir_ + "/full.txt",
      "--quiet", "--threads", "1", "--prompt", "ROMEO:", "--provenance", "full"});
  EXPECT_EQ(nlohmann::json::parse(imagine::read_file(dir_ + "/full.txt.provenance.json"))["prompt"], "ROMEO:");
  // Unsigned but intact; one changed byte is caught.
  auto v = verify(out, 0);
  EXPECT_TRUE(v["intact"].get<bool>());
  EXPECT_EQ(v["signature"], "unsigned");
  std::string text = imagine::read_file(out);
  text[text.size() / 2] ^= 1;
  write_bytes(dir_ + "/t2.txt", text);
  fs::copy_file(out + ".provenance.json", dir_ + "/t2.txt.provenance.json");
  EXPECT_FALSE(verify(dir_ + "/t2.txt", 1)["intact"].get<bool>());
  // Short text is inconclusive, not "human".
  write_bytes(dir_ + "/short.txt", "To be, or not.");
  EXPECT_EQ(detect(dir_ + "/short.txt")["verdict"], "inconclusive");
}

TEST_F(ProvenanceCli, EntropyFilteredDetectionScoresUncertainPositionsOnly) {
  const std::string out = dir_ + "/sweet.txt";
  ok({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "400", "--seed", "9", "--out", out, "--quiet",
      "--threads", "1"});
  const auto all = detect(out, {"--model", dir_ + "/text"});
  const auto filtered = detect(out, {"--model", dir_ + "/text", "--entropy-threshold", "1.0"});
  EXPECT_LE(filtered["scored"].get<int>(), all["scored"].get<int>());
  EXPECT_GT(filtered["scored"].get<int>(), 50);
  // No position is that uncertain: nothing scored, so no verdict either way.
  const auto none = detect(out, {"--model", dir_ + "/text", "--entropy-threshold", "20"});
  EXPECT_EQ(none["scored"], 0);
  EXPECT_EQ(none["verdict"], "inconclusive");
  EXPECT_NE(filtered["note"].get<std::string>().find("entropy >= 1"), std::string::npos) << filtered.dump();
  EXPECT_EQ(filtered["verdict"], "watermarked") << filtered.dump();
  // Human text stays unflagged with the filter too.
  write_bytes(dir_ + "/plays.txt", imagine::read_file(kShakespeare).substr(500000, 3000));
  const auto human = detect(dir_ + "/plays.txt", {"--model", dir_ + "/text", "--entropy-threshold", "1.0"});
  EXPECT_EQ(human["verdict"], "not watermarked") << human.dump();
  // The filter needs the model.
  expect_clean_failure({"detect", out, "--entropy-threshold", "1"}, 1);
}

TEST_F(ProvenanceCli, SignedOutputsVerifyAndAnyChangeFails) {
  const std::string keys = dir_ + "/keys";
  ok({"keygen", "--out", keys});
  EXPECT_EQ(fs::status(keys + "/signing.key").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  expect_clean_failure({"keygen", "--out", keys}, 1);  // never overwrites
  const std::string png = dir_ + "/signed.png";
  ok({"generate", "image", "--model", dir_ + "/vae", "--count", "1", "--seed", "2", "--out", png, "--sign-key",
      keys + "/signing.key", "--quiet", "--threads", "1"});
  auto v = verify(png, 0);
  EXPECT_EQ(v["signature"], "valid");
  EXPECT_FALSE(v["trusted"].get<bool>());
  EXPECT_TRUE(verify(png, 0, {"--trusted-keys", keys + "/signing.pub"})["trusted"].get<bool>());
  // Flip every 7th byte of the file in turn: each either fails to decode cleanly or fails
  // verification; none passes as intact.
  const std::string bytes = imagine::read_file(png);
  int refused = 0, caught = 0;
  // (Each check spawns imagine, so 40 positions spread over the file, not every byte.)
  for (size_t i = 8; i < bytes.size(); i += std::max<size_t>(1, bytes.size() / 40)) {
    std::string b = bytes;
    b[i] ^= 0x20;
    write_bytes(dir_ + "/flip.png", b);
    auto r = run_imagine({"verify", dir_ + "/flip.png", "--json"}, 60);
    ASSERT_TRUE(r.exited) << i;
    if (r.code == 0) {
      // Only bytes outside content and manifest (another chunk's text, CRC of an
      // ancillary chunk libpng skips) may leave the file intact.
      auto j = json_line(r.out);
      EXPECT_TRUE(j["intact"].get<bool>());
      continue;
    }
    if (has(r.err, "error: ")) refused++; else caught++;
    EXPECT_FALSE(has(r.err, "terminate called"));
  }
  EXPECT_GT(refused + caught, 0);
  // The manifest itself: changing a digit of the seed breaks the signature.
  ok({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "50", "--seed", "6", "--out", dir_ + "/s.txt",
      "--sign-key", keys + "/signing.key", "--quiet", "--threads", "1"});
  std::string side = imagine::read_file(dir_ + "/s.txt.provenance.json");
  EXPECT_EQ(verify(dir_ + "/s.txt", 0)["signature"], "valid");
  side.replace(side.find("\"seed\": 6"), 9, "\"seed\": 7");
  write_bytes(dir_ + "/s.txt.provenance.json", side);
  EXPECT_EQ(verify(dir_ + "/s.txt", 1)["signature"], "invalid");
  // A truncated manifest and a wrong key file are clean errors.
  write_bytes(dir_ + "/s.txt.provenance.json", side.substr(0, side.size() / 2));
  expect_clean_failure({"verify", dir_ + "/s.txt"}, 1);
  expect_clean_failure({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "5", "--out", dir_ + "/k.txt",
                        "--sign-key", keys + "/signing.pub", "--quiet"}, 1);
  expect_clean_failure({"generate", "text", "--model", dir_ + "/text", "--max-tokens", "5", "--out", dir_ + "/k.txt",
                        "--watermark-key", keys + "/signing.key", "--quiet"}, 1);
}

TEST_F(ProvenanceCli, ImagesCarryMarkXmpAndManifest) {
  const std::string png = dir_ + "/img.png", plain = dir_ + "/img-plain.png";
  ok({"generate", "image", "--model", dir_ + "/vae", "--count", "1", "--seed", "4", "--out", png, "--quiet", "--threads", "1"});
  ok({"generate", "image", "--model", dir_ + "/vae", "--count", "1", "--seed", "4", "--out", plain, "--no-watermark",
      "--quiet", "--threads", "1"});
  EXPECT_EQ(detect(png)["verdict"], "watermarked");
  EXPECT_EQ(detect(plain)["verdict"], "not watermarked");
  EXPECT_TRUE(verify(png, 0)["intact"].get<bool>());
  bool params = false;
  for (auto& [k, v] : imagine::read_png_text(png)) params = params || (k == "parameters" && has(v, "Seed: 4"));
  EXPECT_TRUE(params);
  if (std::system("command -v exiftool >/dev/null 2>&1") != 0) GTEST_SKIP() << "exiftool not installed";
  const std::string cmd = "exiftool -s3 -XMP-iptcExt:DigitalSourceType " + png + " > " + dir_ + "/exif.txt";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  EXPECT_TRUE(has(imagine::read_file(dir_ + "/exif.txt"), "trainedAlgorithmicMedia")) << imagine::read_file(dir_ + "/exif.txt");
}

TEST_F(ProvenanceCli, MusicAndAudioCarryProvenance) {
  // Sampling keeps the event stream canonical, so the written .mid re-encodes to the tokens
  // that were sampled and the token watermark is found in the file.
  const std::string mid = dir_ + "/p.mid", plain = dir_ + "/p-plain.mid";
  ok({"generate", "music", "--model", dir_ + "/music", "--out", mid, "--seconds", "60", "--seed", "2", "--quiet",
      "--threads", "1"});
  auto d = detect(mid);
  EXPECT_EQ(d["type"], "midi");
  EXPECT_EQ(d["note"], "event vocabulary from the file's manifest");
  EXPECT_GT(d["scored"].get<int>(), 200);
  EXPECT_GT(d["z"].get<double>(), 8) << d.dump();
  EXPECT_EQ(d["verdict"], "watermarked");
  ok({"generate", "music", "--model", dir_ + "/music", "--out", plain, "--seconds", "60", "--seed", "2", "--quiet",
      "--threads", "1", "--no-watermark"});
  auto dp = detect(plain);
  EXPECT_LT(dp["z"].get<double>(), 4) << dp.dump();
  EXPECT_EQ(dp["verdict"], "not watermarked");
  // The piano roll of a generated piece is marked too, its manifest pointing at the piece's.
  ok({"roll", "music", mid, "--png", dir_ + "/p-roll.png"});
  EXPECT_EQ(detect(dir_ + "/p-roll.png")["verdict"], "watermarked");
  const nlohmann::json rm = imagine::read_provenance(dir_ + "/p-roll.png").manifest;
  EXPECT_EQ(rm["verb"], "roll");
  EXPECT_EQ(rm["source"]["content"], imagine::read_provenance(mid).manifest["content"]);
  ok({"export", "music", "--data", kChorales, "--out", dir_ + "/ex", "--count", "1", "--quiet"});
  ASSERT_TRUE(fs::exists(dir_ + "/ex/test-0.mid"));
  const std::string wav = dir_ + "/p.wav";
  ok({"render", "music", mid, "--wav", wav, "--quiet"});
  EXPECT_TRUE(verify(mid, 0)["intact"].get<bool>());
  auto w = verify(wav, 0);
  EXPECT_TRUE(w["intact"].get<bool>());
  EXPECT_EQ(detect(wav)["verdict"], "no audio watermark");
  // Our reader still reads the piece, and so does mido.
  EXPECT_GT(imagine::read_midi(mid).notes.size(), 0u);
  EXPECT_EQ(detect(dir_ + "/ex/test-0.mid")["verdict"], "not watermarked");
  if (std::system("/usr/bin/python3 -c 'import mido' 2>/dev/null") == 0) {
    const std::string cmd = "/usr/bin/python3 -c 'import mido,sys; f=mido.MidiFile(sys.argv[1]); "
                            "sys.exit(0 if sum(1 for m in f if m.type==\"note_on\") > 0 else 3)' " + mid;
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  }
  // generate --wav writes the audio through the same path.
  ok({"generate", "music", "--model", dir_ + "/music", "--out", dir_ + "/q.mid", "--wav", dir_ + "/q.wav", "--seconds",
      "5", "--seed", "1", "--quiet", "--threads", "1"});
  EXPECT_TRUE(verify(dir_ + "/q.wav", 0)["intact"].get<bool>());
  // A MIDI file without provenance (a dataset export) renders to a plain WAV.
  ok({"render", "music", dir_ + "/ex/test-0.mid", "--wav", dir_ + "/plain.wav", "--quiet"});
  EXPECT_FALSE(verify(dir_ + "/plain.wav", 1)["manifest"].get<bool>());
}

TEST_F(ProvenanceCli, BadInputsFailCleanly) {
  expect_clean_failure({"detect", dir_ + "/missing.png"}, 1);
  expect_clean_failure({"verify", dir_ + "/missing.png"}, 1);
  write_bytes(dir_ + "/bad.png", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage");
  expect_clean_failure({"detect", dir_ + "/bad.png"}, 1);
  write_bytes(dir_ + "/bad.mid", std::string("MThd\0\0\0\6\0\1\0\2\0\x60MTrk\0\0\0\xff", 26));
  expect_clean_failure({"detect", dir_ + "/bad.mid"}, 1);
  expect_clean_failure({"verify", dir_ + "/bad.mid"}, 1);
  write_bytes(dir_ + "/bin.dat", std::string("\0\1\2\3", 4));
  expect_clean_failure({"detect", dir_ + "/bin.dat"}, 1);
  expect_clean_failure({"detect"}, 2);
  expect_clean_failure({"generate", "text", "--model", dir_ + "/text", "--provenance", "most"}, 2);
  expect_clean_failure({"generate", "text", "--model", dir_ + "/text", "--watermark-context", "3"}, 2);
}

}  // namespace
