// Tests for music/chorales: the real JSB files (split sizes, the first chorale's notes, an
// independent per-pitch rebuild of every chorale, the exact event round trip on the
// chorale grid), small hand-written files for duplicates and rests, and corrupt files that
// must throw imagine::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"
#include "music/chorales.h"
#include "music/events.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::Chorales;
using imagine::Note;
using imagine::Song;

namespace {

const std::string kDataDir = IMAGINE_SOURCE_DIR "/../shared/data/jsb-chorales";
const std::string k16th = kDataDir + "/jsb-chorales-16th.json";
const std::string kQuarter = kDataDir + "/jsb-chorales-quarter.json";

class ChoralesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_chorales_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) const {
    std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static bool have_data() { return fs::exists(k16th) && fs::exists(kQuarter); }

  std::string dir_;
};

void expect_note(const Note& n, int pitch, double start, double end) {
  EXPECT_EQ(n.pitch, pitch);
  EXPECT_EQ(n.start, start);
  EXPECT_EQ(n.end, end);
  EXPECT_EQ(n.program, 19);
  EXPECT_FALSE(n.drum);
}

// An independent rebuild: for each pitch, scan the steps for maximal runs where it sounds.
std::vector<Note> rebuild(const nlohmann::json& chorale, double step) {
  std::vector<Note> out;
  const size_t n = chorale.size();
  for (int p = 0; p < 128; p++) {
    std::vector<bool> on(n, false);
    for (size_t i = 0; i < n; i++) {
      for (const auto& v : chorale[i]) on[i] = on[i] || v.get<double>() == p;
    }
    for (size_t i = 0; i < n;) {
      if (!on[i]) {
        i++;
        continue;
      }
      size_t j = i;
      while (j < n && on[j]) j++;
      Note note;
      note.pitch = p;
      note.start = i * step;
      note.end = j * step;
      out.push_back(note);
      i = j;
    }
  }
  return out;
}

void expect_same_notes(const std::vector<Note>& got, const std::vector<Note>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++) {
    SCOPED_TRACE("note " + std::to_string(i));
    EXPECT_EQ(got[i].pitch, want[i].pitch);
    EXPECT_EQ(got[i].start, want[i].start);
    EXPECT_EQ(got[i].end, want[i].end);
    EXPECT_EQ(got[i].velocity, want[i].velocity);
    EXPECT_EQ(got[i].program, want[i].program);
    EXPECT_EQ(got[i].drum, want[i].drum);
  }
}

}  // namespace

TEST_F(ChoralesTest, SplitSizesOfBothFiles) {
  if (!have_data()) GTEST_SKIP() << "no JSB chorales under " << kDataDir;
  for (const std::string& file : {k16th, kQuarter}) {
    Chorales c = imagine::load_chorales(file);
    EXPECT_EQ(c.train.size(), 229u) << file;
    EXPECT_EQ(c.valid.size(), 76u) << file;
    EXPECT_EQ(c.test.size(), 77u) << file;
    EXPECT_EQ(c.train[0].name, "train-0");
    EXPECT_EQ(c.valid[75].name, "valid-75");
    EXPECT_EQ(c.test[3].name, "test-3");
    // The shortest chorale is 12.5 s and the longest 80 s at 120 bpm in both files.
    for (const auto* split : {&c.train, &c.valid, &c.test}) {
      for (const Song& s : *split) {
        EXPECT_GE(s.duration(), 12.5) << s.name;
        EXPECT_LE(s.duration(), 80.0) << s.name;
        EXPECT_FALSE(s.notes.empty());
      }
    }
  }
}

TEST_F(ChoralesTest, FirstTrainChoraleNotes) {
  if (!have_data()) GTEST_SKIP() << "no JSB chorales under " << kDataDir;
  // The 16th file starts [58 65 70 74] x4, [55 58 70 75] x2, [55 60 70 75] x2, [50 62 69 77].
  Song s = imagine::load_chorales(k16th).train[0];
  ASSERT_GE(s.notes.size(), 7u);
  expect_note(s.notes[0], 58, 0.0, 0.75);
  expect_note(s.notes[1], 65, 0.0, 0.5);
  expect_note(s.notes[2], 70, 0.0, 1.0);
  expect_note(s.notes[3], 74, 0.0, 0.5);
  expect_note(s.notes[4], 55, 0.5, 1.0);
  expect_note(s.notes[5], 75, 0.5, 1.0);
  expect_note(s.notes[6], 60, 0.75, 1.0);
  EXPECT_EQ(s.duration(), 192 * 0.125);
  EXPECT_EQ(s.notes[0].velocity, 80);

  // The quarter file starts [60 72 79 88], [72 79 88], [67 70 76 84].
  Song q = imagine::load_chorales(kQuarter).train[0];
  ASSERT_GE(q.notes.size(), 4u);
  expect_note(q.notes[0], 60, 0.0, 0.5);
  expect_note(q.notes[1], 72, 0.0, 1.0);
  expect_note(q.notes[2], 79, 0.0, 1.0);
  expect_note(q.notes[3], 88, 0.0, 1.0);
  EXPECT_EQ(q.duration(), 129 * 0.5);
}

TEST_F(ChoralesTest, MatchesIndependentRebuild) {
  if (!have_data()) GTEST_SKIP() << "no JSB chorales under " << kDataDir;
  nlohmann::json j = nlohmann::json::parse(imagine::read_file(k16th));
  Chorales c = imagine::load_chorales(k16th, 0.2, 5);  // explicit step and program
  const char* names[] = {"train", "valid", "test"};
  const std::vector<Song>* splits[] = {&c.train, &c.valid, &c.test};
  for (int s = 0; s < 3; s++) {
    for (size_t k = 0; k < splits[s]->size(); k++) {
      SCOPED_TRACE(std::string(names[s]) + "-" + std::to_string(k));
      Song want;
      want.notes = rebuild(j[names[s]][k], 0.2);
      for (Note& n : want.notes) n.program = 5;
      want.sort();
      expect_same_notes((*splits[s])[k].notes, want.notes);
    }
  }
}

TEST_F(ChoralesTest, FolderPrefersSixteenthNotes) {
  if (!have_data()) GTEST_SKIP() << "no JSB chorales under " << kDataDir;
  Chorales c = imagine::load_chorales(kDataDir);
  EXPECT_EQ(c.train[0].duration(), 192 * 0.125);
  EXPECT_TRUE(imagine::looks_like_chorales(kDataDir));
  EXPECT_TRUE(imagine::looks_like_chorales(k16th));
  EXPECT_TRUE(imagine::looks_like_chorales(kQuarter));
}

TEST_F(ChoralesTest, EventRoundTripOnTheChoraleGrid) {
  if (!have_data()) GTEST_SKIP() << "no JSB chorales under " << kDataDir;
  for (const auto& [file, step] : {std::pair{k16th, 0.125}, std::pair{kQuarter, 0.5}}) {
    Chorales c = imagine::load_chorales(file);
    imagine::EventVocab vocab;
    vocab.step_seconds = step;
    vocab.max_shift_steps = 16;
    vocab.velocity_bins = 128;  // velocities survive unchanged, so the song itself comes back
    vocab.drums = false;
    for (const auto* split : {&c.train, &c.valid, &c.test}) {
      for (const Song& s : *split) {
        SCOPED_TRACE(file + " " + s.name);
        std::vector<int> tokens = vocab.encode(s);
        for (int t : tokens) ASSERT_LT(t, vocab.size());
        expect_same_notes(vocab.decode(tokens).notes, s.notes);
      }
    }
  }
}

TEST_F(ChoralesTest, DuplicatesAndRests) {
  // A doubled voice is one note; an empty step is a rest that ends every note.
  std::string p = write("jsb-chorales-quarter.json",
                        R"({"train": [[[60, 60.0, 64], [60], [], [60]], []], "valid": [], "test": [[[]]]})");
  Chorales c = imagine::load_chorales(p);
  ASSERT_EQ(c.train.size(), 2u);
  const Song& s = c.train[0];
  ASSERT_EQ(s.notes.size(), 3u);
  expect_note(s.notes[0], 60, 0.0, 1.0);
  expect_note(s.notes[1], 64, 0.0, 0.5);
  expect_note(s.notes[2], 60, 1.5, 2.0);
  EXPECT_TRUE(c.train[1].notes.empty());
  EXPECT_TRUE(c.valid.empty());
  ASSERT_EQ(c.test.size(), 1u);
  EXPECT_EQ(c.test[0].duration(), 0.0);
  EXPECT_TRUE(imagine::looks_like_chorales(p));
  EXPECT_TRUE(imagine::looks_like_chorales(dir_));
}

TEST_F(ChoralesTest, CorruptFilesThrow) {
  const std::vector<std::string> bad = {
      R"({"train": [[[60, 64]], "valid": [], "test": []})",     // truncated / unbalanced
      "",
      R"([1, 2, 3])",                                           // not an object
      R"({"train": [], "valid": []})",                          // missing split
      R"({"train": {}, "valid": [], "test": []})",              // split not a list
      R"({"train": [5], "valid": [], "test": []})",             // chorale not a list
      R"({"train": [[60]], "valid": [], "test": []})",          // step not a list
      R"({"train": [[["60"]]], "valid": [], "test": []})",      // pitch not a number
      R"({"train": [[[200]]], "valid": [], "test": []})",       // not a MIDI key
      R"({"train": [[[-1]]], "valid": [], "test": []})",
      R"({"train": [[[60.5]]], "valid": [], "test": []})",      // not a whole key
  };
  for (size_t i = 0; i < bad.size(); i++) {
    std::string p = write("bad" + std::to_string(i) + "-16th.json", bad[i]);
    try {
      imagine::load_chorales(p);
      ADD_FAILURE() << "accepted: " << bad[i];
    } catch (const imagine::Error& e) {
      EXPECT_FALSE(e.hint().empty()) << bad[i];
    }
  }
  EXPECT_THROW(imagine::load_chorales(dir_ + "/missing.json"), imagine::Error);
  // A name that does not tell the grid needs an explicit step.
  std::string plain = write("chorales.json", R"({"train": [], "valid": [], "test": []})");
  EXPECT_THROW(imagine::load_chorales(plain), imagine::Error);
  EXPECT_NO_THROW(imagine::load_chorales(plain, 0.25));
  EXPECT_THROW(imagine::load_chorales(plain, 0.25, 128), imagine::Error);
  // A folder without chorale files.
  std::string empty_dir = dir_ + "/empty";
  fs::create_directory(empty_dir);
  EXPECT_THROW(imagine::load_chorales(empty_dir), imagine::Error);
}

TEST_F(ChoralesTest, LooksLikeChorales) {
  EXPECT_FALSE(imagine::looks_like_chorales(dir_));  // empty folder
  EXPECT_FALSE(imagine::looks_like_chorales(dir_ + "/missing.json"));
  EXPECT_FALSE(imagine::looks_like_chorales(write("other.json", R"({"a": 1})")));
  EXPECT_FALSE(imagine::looks_like_chorales(write("broken.json", "{")));
  EXPECT_FALSE(imagine::looks_like_chorales(write("vocab.json", R"({"train": 1, "valid": [], "test": []})")));
  EXPECT_FALSE(imagine::looks_like_chorales(write("splits.txt", R"({"train": [], "valid": [], "test": []})")));
  EXPECT_TRUE(imagine::looks_like_chorales(write("splits.json", R"({"train": [], "valid": [], "test": []})")));
}
