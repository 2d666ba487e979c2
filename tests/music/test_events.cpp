// Tests for music/events: the exact round trip decode(encode(song)) == quantise(song) on
// hand-built songs that use every event kind and on random songs, token streams checked
// against hand-written expectations, the velocity bins, the vocabulary's JSON, and decode's
// tolerance of arbitrary model output.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "../support/notes.h"
#include "core/error.h"
#include "music/events.h"
#include "music/song.h"

using imagine::EventVocab;
using imagine::Note;
using imagine::Song;

namespace {

using imagine::testing::make_note;

// Field-by-field equality with doubles compared exactly: the grid makes times reproducible.
void expect_same_notes(const Song& got, const Song& want) {
  ASSERT_EQ(got.notes.size(), want.notes.size());
  for (size_t i = 0; i < want.notes.size(); i++) {
    const Note& a = got.notes[i];
    const Note& b = want.notes[i];
    SCOPED_TRACE("note " + std::to_string(i));
    EXPECT_EQ(a.pitch, b.pitch);
    EXPECT_EQ(a.velocity, b.velocity);
    EXPECT_EQ(a.program, b.program);
    EXPECT_EQ(a.drum, b.drum);
    EXPECT_EQ(a.start, b.start);
    EXPECT_EQ(a.end, b.end);
  }
}

// Every event kind: three programs, drums, changing velocities, a chord, a gap longer than
// several maximal shifts, same-pitch overlaps across programs (nested and staggered), a
// re-struck pitch, a note at time 0, a zero-length note and one that rounds to zero length.
Song rich_song() {
  Song s;
  s.name = "rich";
  s.notes = {
      make_note(60, 0.0, 0.5),                 // at time 0
      make_note(64, 0.0, 0.5, 100),            // chord, another velocity
      make_note(67, 0.0, 1.0, 100, 40),        // chord, another program
      make_note(36, 0.0, 0.0, 120, 0, true),   // drum at time 0
      make_note(42, 0.25, 0.25, 60, 0, true),  // drum, quiet
      make_note(60, 0.5, 0.75),                // re-struck pitch right at the previous note's end
      make_note(72, 0.3333, 0.9876, 33, 19),   // off-grid times, organ
      make_note(64, 1.0, 3.0, 90, 0),          // long note ...
      make_note(64, 1.5, 2.0, 50, 40),         // ... with a shorter same-pitch note nested inside
      make_note(65, 2.0, 2.6, 70, 19),         // staggered same-pitch overlap across programs
      make_note(65, 2.3, 3.1, 71, 40),
      make_note(50, 2.5, 2.5, 10),             // zero length
      make_note(51, 2.7001, 2.7032, 127),      // rounds to zero length on a 10 ms grid
      make_note(48, 6.42, 7.0, 1, 127),        // after a 3.3 s gap (several TIME_SHIFTs)
      make_note(38, 6.42, 6.5, 127, 0, true),  // drum together with a note
      make_note(38, 6.45, 6.9, 64, 0, true),   // drum whose given length is ignored
      make_note(127, 7.0, 7.2, 80, 5),         // extreme keys
      make_note(0, 7.0, 7.2, 80, 5),
  };
  return s;
}

std::vector<EventVocab> vocabs() {
  std::vector<EventVocab> out;
  out.push_back(EventVocab{});
  EventVocab v;
  v.programs = false;
  out.push_back(v);
  v = EventVocab{};
  v.drums = false;
  out.push_back(v);
  v = EventVocab{};
  v.programs = false;
  v.drums = false;
  v.velocity_bins = 1;
  out.push_back(v);
  v = EventVocab{};
  v.step_seconds = 0.05;
  v.max_shift_steps = 1;
  v.velocity_bins = 128;
  out.push_back(v);
  v = EventVocab{};
  v.step_seconds = 0.125;
  v.max_shift_steps = 7;
  v.velocity_bins = 5;
  out.push_back(v);
  return out;
}

void expect_round_trip(const EventVocab& vocab, const Song& song) {
  Song q = vocab.quantise(song);
  std::vector<int> tokens = vocab.encode(song);
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens.front(), vocab.bos());
  EXPECT_EQ(tokens.back(), vocab.eos());
  for (int t : tokens) {
    ASSERT_GE(t, 0);
    ASSERT_LT(t, vocab.size());
  }
  expect_same_notes(vocab.decode(tokens), q);
  // The quantised song is a fixed point: quantising again or re-encoding changes nothing.
  expect_same_notes(vocab.quantise(q), q);
  EXPECT_EQ(vocab.encode(q), tokens);
}

}  // namespace

TEST(EventVocab, SizeMatchesLayout) {
  EventVocab v;
  EXPECT_EQ(v.size(), 2 + 128 + 128 + 100 + 32 + 128 + 128);
  v.programs = false;
  v.drums = false;
  v.max_shift_steps = 7;
  v.velocity_bins = 3;
  EXPECT_EQ(v.size(), 2 + 128 + 128 + 7 + 3);
  // The token helpers tile the layout without gaps.
  EventVocab d;
  EXPECT_EQ(d.note_on(0), 2);
  EXPECT_EQ(d.note_off(0), d.note_on(127) + 1);
  EXPECT_EQ(d.time_shift(1), d.note_off(127) + 1);
  EXPECT_EQ(d.velocity(0), d.time_shift(d.max_shift_steps) + 1);
  EXPECT_EQ(d.program(0), d.velocity(d.velocity_bins - 1) + 1);
  EXPECT_EQ(d.drum_on(0), d.program(127) + 1);
  EXPECT_EQ(d.drum_on(127), d.size() - 1);
}

TEST(EventVocab, RichSongRoundTripsExactly) {
  for (const EventVocab& vocab : vocabs()) {
    SCOPED_TRACE(vocab.to_json().dump());
    expect_round_trip(vocab, rich_song());
  }
}

TEST(EventVocab, QuantiseSettlesWhatTokensCannotSay) {
  EventVocab v;  // 10 ms grid, drums last 0.1 s = 10 steps
  Song q = v.quantise(rich_song());
  for (const Note& n : q.notes) {
    EXPECT_GT(n.end, n.start);
    if (n.drum) {
      EXPECT_EQ(n.program, 0);
      EXPECT_EQ(n.end, double(std::llround(n.start / v.step_seconds) + 10) * v.step_seconds);
    }
  }
  // The zero-length note and the one that rounds to zero last one step.
  bool saw50 = false, saw51 = false;
  for (const Note& n : q.notes) {
    if (n.pitch == 50) {
      saw50 = true;
      EXPECT_EQ(n.start, 250 * 0.01);
      EXPECT_EQ(n.end, 251 * 0.01);
    }
    if (n.pitch == 51) {
      saw51 = true;
      EXPECT_EQ(n.start, 270 * 0.01);
      EXPECT_EQ(n.end, 271 * 0.01);
    }
  }
  EXPECT_TRUE(saw50 && saw51);

  // Nested same-pitch notes: the earlier start takes the earlier end (NOTE_OFF closes the
  // oldest open note), the programs and velocities stay with their onsets.
  Song nested;
  nested.notes = {make_note(64, 1.0, 3.0, 90, 0), make_note(64, 1.5, 2.0, 50, 40)};
  Song qn = v.quantise(nested);
  ASSERT_EQ(qn.notes.size(), 2u);
  EXPECT_EQ(qn.notes[0].program, 0);
  EXPECT_EQ(qn.notes[0].end, 200 * 0.01);
  EXPECT_EQ(qn.notes[1].program, 40);
  EXPECT_EQ(qn.notes[1].end, 300 * 0.01);

  // programs = false: everything is program 0; drums = false: drums are dropped.
  EventVocab np;
  np.programs = false;
  for (const Note& n : np.quantise(rich_song()).notes) EXPECT_EQ(n.program, 0);
  EventVocab nd;
  nd.drums = false;
  Song qd = nd.quantise(rich_song());
  for (const Note& n : qd.notes) EXPECT_FALSE(n.drum);
  EXPECT_EQ(qd.notes.size(), rich_song().notes.size() - 4);
}

TEST(EventVocab, TokenStreamForSmallSongs) {
  EventVocab v;
  int vel80 = v.velocity_bin(80);
  Song s;
  s.notes = {make_note(60, 0, 0.5)};
  EXPECT_EQ(v.encode(s), (std::vector<int>{v.bos(), v.velocity(vel80), v.note_on(60), v.time_shift(50),
                                           v.note_off(60), v.eos()}));
  EXPECT_EQ(v.encode(s, false).back(), v.note_off(60));

  // Re-strike: the NOTE_OFF comes before the NOTE_ON at the same time; the velocity is not
  // repeated; a different program is announced once; a chord is ordered by pitch.
  s.notes = {make_note(60, 0, 0.5), make_note(60, 0.5, 1.0), make_note(67, 1.0, 1.1, 80, 19),
             make_note(64, 1.0, 1.1, 80, 19)};
  EXPECT_EQ(v.encode(s),
            (std::vector<int>{v.bos(), v.velocity(vel80), v.note_on(60), v.time_shift(50), v.note_off(60),
                              v.note_on(60), v.time_shift(50), v.note_off(60), v.program(19), v.note_on(64),
                              v.note_on(67), v.time_shift(10), v.note_off(64), v.note_off(67), v.eos()}));

  // A gap of 2.5 s with shifts of at most 1 s; a drum hit carries no NOTE_OFF.
  s.notes = {make_note(36, 2.5, 2.6, 80, 0, true)};
  EXPECT_EQ(v.encode(s), (std::vector<int>{v.bos(), v.time_shift(100), v.time_shift(100), v.time_shift(50),
                                           v.velocity(vel80), v.drum_on(36), v.eos()}));

  Song empty;
  EXPECT_EQ(v.encode(empty), (std::vector<int>{v.bos(), v.eos()}));
  EXPECT_TRUE(v.decode(v.encode(empty)).notes.empty());
}

TEST(EventVocab, RandomSongsRoundTrip) {
  std::mt19937 rng(1234);
  for (const EventVocab& vocab : vocabs()) {
    SCOPED_TRACE(vocab.to_json().dump());
    for (int trial = 0; trial < 40; trial++) {
      Song s;
      int n = std::uniform_int_distribution<int>(0, 60)(rng);
      // A narrow pitch range and few programs make same-pitch overlaps and ties common.
      for (int i = 0; i < n; i++) {
        double start = std::uniform_real_distribution<double>(0, 4)(rng);
        if (rng() % 4 == 0) start = std::round(start * 4) / 4;  // exact ties
        double len = std::uniform_real_distribution<double>(0, 1.5)(rng);
        if (rng() % 8 == 0) len = 0;
        s.notes.push_back(make_note(55 + int(rng() % 8), start, start + len, 1 + int(rng() % 127),
                                    int(rng() % 3) * 20, rng() % 5 == 0));
      }
      expect_round_trip(vocab, s);
    }
  }
}

TEST(EventVocab, VelocityBinsInvertExactly) {
  for (int bins = 1; bins <= 128; bins++) {
    EventVocab v;
    v.velocity_bins = bins;
    int prev = 0;
    for (int vel = 1; vel <= 127; vel++) {
      int b = v.velocity_bin(vel);
      ASSERT_GE(b, 0);
      ASSERT_LT(b, bins);
      ASSERT_GE(b, prev);  // monotone
      prev = b;
      int rep = v.bin_velocity(b);
      ASSERT_GE(rep, 1);
      ASSERT_LE(rep, 127);
      ASSERT_EQ(v.velocity_bin(rep), b) << "bins " << bins << " velocity " << vel;
    }
    EXPECT_EQ(v.velocity_bin(1), 0);
    if (bins <= 127) {
      EXPECT_EQ(v.velocity_bin(127), bins - 1);  // every bin is used
    }
  }
  EventVocab full;
  full.velocity_bins = 128;
  for (int vel = 1; vel <= 127; vel++) EXPECT_EQ(full.bin_velocity(full.velocity_bin(vel)), vel);
  EXPECT_EQ(full.bin_velocity(127), 127);  // the one empty bin still decodes to a velocity
  // Out-of-range velocities are clamped rather than rejected.
  EXPECT_EQ(full.velocity_bin(0), 0);
  EXPECT_EQ(full.velocity_bin(300), full.velocity_bin(127));
}

TEST(EventVocab, DescribeIsReadable) {
  EventVocab v;
  EXPECT_EQ(v.describe(v.bos()), "BOS");
  EXPECT_EQ(v.describe(v.eos()), "EOS");
  EXPECT_EQ(v.describe(v.note_on(60)), "NOTE_ON(60)");
  EXPECT_EQ(v.describe(v.note_off(0)), "NOTE_OFF(0)");
  EXPECT_EQ(v.describe(v.time_shift(25)), "TIME_SHIFT(25)");
  EXPECT_EQ(v.describe(v.time_shift(100)), "TIME_SHIFT(100)");
  EXPECT_EQ(v.describe(v.velocity(31)), "VELOCITY(31)");
  EXPECT_EQ(v.describe(v.program(19)), "PROGRAM(19)");
  EXPECT_EQ(v.describe(v.drum_on(36)), "DRUM_ON(36)");
  EXPECT_EQ(v.describe(v.size()), "INVALID(" + std::to_string(v.size()) + ")");
  EXPECT_EQ(v.describe(-1), "INVALID(-1)");
  EventVocab nop;
  nop.programs = false;
  EXPECT_EQ(nop.describe(nop.drum_on(42)), "DRUM_ON(42)");
  for (int t = 0; t < v.size(); t++) EXPECT_EQ(v.describe(t).find("INVALID"), std::string::npos);
}

TEST(EventVocab, JsonRoundTrip) {
  for (const EventVocab& v : vocabs()) {
    nlohmann::json j = v.to_json();
    EXPECT_EQ(j["kind"], "performance-events-v1");
    EventVocab back = EventVocab::from_json(nlohmann::json::parse(j.dump()));
    EXPECT_EQ(back.step_seconds, v.step_seconds);
    EXPECT_EQ(back.max_shift_steps, v.max_shift_steps);
    EXPECT_EQ(back.velocity_bins, v.velocity_bins);
    EXPECT_EQ(back.programs, v.programs);
    EXPECT_EQ(back.drums, v.drums);
    EXPECT_EQ(back.size(), v.size());
  }
}

TEST(EventVocab, InvalidJsonRefused) {
  nlohmann::json good = EventVocab{}.to_json();
  std::vector<nlohmann::json> bad;
  bad.push_back(nlohmann::json::array());
  bad.push_back(nlohmann::json("performance-events-v1"));
  auto with = [&](const char* key, nlohmann::json value) {
    nlohmann::json j = good;
    j[key] = value;
    bad.push_back(j);
  };
  auto without = [&](const char* key) {
    nlohmann::json j = good;
    j.erase(key);
    bad.push_back(j);
  };
  with("kind", "performance-events-v2");
  with("kind", 1);
  without("kind");
  without("step_seconds");
  without("max_shift_steps");
  without("velocity_bins");
  without("programs");
  without("drums");
  with("step_seconds", 0.0);
  with("step_seconds", 0.001);
  with("step_seconds", 1.5);
  with("step_seconds", -0.01);
  with("step_seconds", "0.01");
  with("max_shift_steps", 0);
  with("max_shift_steps", 10001);
  with("max_shift_steps", 1.5);
  with("max_shift_steps", int64_t(1) << 40);  // would wrap into range as an int
  with("velocity_bins", 0);
  with("velocity_bins", 129);
  with("programs", 1);
  with("drums", "yes");
  with("step_size", 0.01);  // a typo must not fall back to a default
  for (const nlohmann::json& j : bad) {
    EXPECT_THROW(EventVocab::from_json(j), imagine::Error) << j.dump();
  }
  // The edges of the ranges are accepted.
  nlohmann::json edge = good;
  edge["step_seconds"] = 1.0;
  edge["max_shift_steps"] = 10000;
  edge["velocity_bins"] = 128;
  EXPECT_NO_THROW(EventVocab::from_json(edge));
  edge["max_shift_steps"] = 1;
  edge["velocity_bins"] = 1;
  EXPECT_NO_THROW(EventVocab::from_json(edge));
}

TEST(EventVocab, DecodeToleratesModelOutput) {
  EventVocab v;
  // Unmatched NOTE_OFFs are ignored; a NOTE_OFF closes the oldest open note of its pitch
  // whatever its program; tokens after EOS are ignored.
  std::vector<int> t = {v.note_off(60),   v.program(19),   v.note_on(60),  v.time_shift(5), v.program(40),
                        v.note_on(60),    v.time_shift(5), v.note_off(60), v.note_off(60),  v.note_off(60),
                        v.time_shift(10), v.eos(),         v.note_on(70),  v.bos()};
  Song s = v.decode(t);
  ASSERT_EQ(s.notes.size(), 2u);
  EXPECT_EQ(s.notes[0].program, 19);
  EXPECT_EQ(s.notes[0].start, 0.0);
  EXPECT_EQ(s.notes[0].end, 10 * 0.01);
  EXPECT_EQ(s.notes[1].program, 40);
  EXPECT_EQ(s.notes[1].start, 5 * 0.01);
  EXPECT_EQ(s.notes[1].end, 10 * 0.01);

  // No BOS, no VELOCITY: notes still decode (at the default velocity); a note left open is
  // closed at the last time; an ON and OFF at one time give a one-step note.
  t = {v.note_on(50), v.note_on(52), v.note_off(52), v.time_shift(20), v.drum_on(36)};
  s = v.decode(t);
  ASSERT_EQ(s.notes.size(), 3u);
  EXPECT_EQ(s.notes[0].pitch, 50);
  EXPECT_EQ(s.notes[0].end, 20 * 0.01);
  EXPECT_EQ(s.notes[0].velocity, v.bin_velocity(v.velocity_bin(80)));
  EXPECT_EQ(s.notes[1].pitch, 52);
  EXPECT_EQ(s.notes[1].end, 1 * 0.01);
  EXPECT_TRUE(s.notes[2].drum);
  EXPECT_EQ(s.notes[2].start, 20 * 0.01);
  EXPECT_EQ(s.notes[2].end, (20 + v.drum_steps()) * 0.01);
  // A note opened at the very end still gets one step.
  s = v.decode({v.time_shift(3), v.note_on(40)});
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_EQ(s.notes[0].end, 4 * 0.01);

  // Only ids outside the vocabulary throw.
  EXPECT_THROW(v.decode({v.bos(), v.size()}), imagine::Error);
  EXPECT_THROW(v.decode({-1}), imagine::Error);
}

TEST(EventVocab, RandomTokenStreamsNeverThrow) {
  std::mt19937 rng(99);
  for (const EventVocab& vocab : vocabs()) {
    std::uniform_int_distribution<int> any(0, vocab.size() - 1);
    for (int trial = 0; trial < 100; trial++) {
      std::vector<int> tokens(rng() % 400);
      for (int& t : tokens) t = any(rng);
      Song s;
      ASSERT_NO_THROW(s = vocab.decode(tokens));
      for (const Note& n : s.notes) {
        ASSERT_GT(n.end, n.start);
        ASSERT_GE(n.pitch, 0);
        ASSERT_LE(n.pitch, 127);
        ASSERT_GE(n.velocity, 1);
        ASSERT_LE(n.velocity, 127);
      }
      // Whatever came out is a song the vocabulary can say again.
      expect_round_trip(vocab, s);
    }
  }
}

TEST(Song, SortAndDuration) {
  Song s;
  EXPECT_EQ(s.duration(), 0.0);
  s.notes = {make_note(64, 1.0, 1.5), make_note(60, 1.0, 1.2), make_note(60, 1.0, 1.1),
             make_note(72, 0.0, 3.0)};
  s.sort();
  EXPECT_EQ(s.notes[0].pitch, 72);
  EXPECT_EQ(s.notes[1].end, 1.1);
  EXPECT_EQ(s.notes[2].end, 1.2);
  EXPECT_EQ(s.notes[3].pitch, 64);
  EXPECT_EQ(s.duration(), 3.0);  // the longest-sounding note, not the last to start
}
