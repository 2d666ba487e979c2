// EventGrammar: every stream sampled under its mask is canonical, i.e. decoding it and
// encoding the piece again (directly, or through a written and re-read MIDI file) gives
// back exactly the sampled tokens; and the mask is not so tight that it forbids what
// encode writes.
#include <gtest/gtest.h>

#include <random>

#include "../support/notes.h"
#include "music/events.h"
#include "music/midi.h"

using namespace imagine;

namespace {

// A random stream under the grammar: uniform over the allowed tokens, EOS only at the end.
// At most 8 instruments, so a MIDI file (16 channels, one program each) can hold them.
bool usable(const EventVocab& v, int t) { return !(t >= v.program(8) && t <= v.program(127)); }

std::vector<int> sample_stream(const EventVocab& v, std::mt19937& rng, int length, int64_t cap) {
  EventGrammar g(v);
  g.push(v.bos());
  if (cap > 0) g.set_note_cap(cap);
  std::vector<int> out{v.bos()};
  for (int i = 0; i < length; i++) {
    std::vector<int> ok;
    for (int t = 0; t < v.size(); t++)
      if (t != v.eos() && usable(v, t) && g.allowed(t)) ok.push_back(t);
    EXPECT_FALSE(ok.empty()) << "dead end after " << i << " tokens";
    if (ok.empty()) break;
    const int t = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
    g.push(t);
    out.push_back(t);
  }
  // Then end: keep drawing (closing notes first, then moving on) until the grammar allows EOS.
  for (int guard = 0; guard < 10000 && !g.allowed(v.eos()); guard++) {
    std::vector<int> offs, shifts, ok;
    for (int t = 0; t < v.size(); t++) {
      if (t == v.eos() || !usable(v, t) || !g.allowed(t)) continue;
      ok.push_back(t);
      if (t >= v.note_off(0) && t <= v.note_off(127)) offs.push_back(t);
      if (t >= v.time_shift(1) && t <= v.time_shift(v.max_shift_steps)) shifts.push_back(t);
    }
    const std::vector<int>& from = !offs.empty() ? offs : !shifts.empty() ? shifts : ok;
    if (from.empty()) break;
    const int t = from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
    g.push(t);
    out.push_back(t);
  }
  EXPECT_TRUE(g.allowed(v.eos()));
  out.push_back(v.eos());
  return out;
}

// Equal token streams, or a failure naming the first difference and its neighbourhood.
::testing::AssertionResult same_tokens(const EventVocab& v, const std::vector<int>& again,
                                       const std::vector<int>& tokens) {
  size_t at = 0;
  while (at < again.size() && at < tokens.size() && again[at] == tokens[at]) at++;
  if (at == again.size() && at == tokens.size()) return ::testing::AssertionSuccess();
  std::string around;
  for (size_t k = at >= 6 ? at - 6 : 0; k < std::min(tokens.size(), at + 4); k++)
    around += v.describe(tokens[k]) + " ";
  around += "| re-encoded: ";
  for (size_t k = at >= 6 ? at - 6 : 0; k < std::min(again.size(), at + 4); k++)
    around += v.describe(again[k]) + " ";
  return ::testing::AssertionFailure()
         << "first difference at token " << at << " of " << tokens.size() << ": " << around;
}

TEST(EventGrammar, SampledStreamsReencodeExactly) {
  EventVocab v;
  v.step_seconds = 0.05;
  v.max_shift_steps = 8;
  v.velocity_bins = 8;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; trial++) {
    const std::vector<int> tokens = sample_stream(v, rng, 400, trial % 2 ? 6 : 0);
    const Song song = v.decode(tokens);
    EXPECT_TRUE(same_tokens(v, v.encode(song), tokens)) << "trial " << trial;
    // And through the bytes of a MIDI file.
    const Song back = parse_midi(encode_midi(song), "round trip");
    EXPECT_TRUE(same_tokens(v, v.encode(back), tokens)) << "trial " << trial << " via MIDI";
  }
}

TEST(EventGrammar, NoteCapClosesNotesInTheStream) {
  EventVocab v;
  v.step_seconds = 0.05;
  v.max_shift_steps = 8;
  std::mt19937 rng(11);
  for (int trial = 0; trial < 10; trial++) {
    const Song song = v.decode(sample_stream(v, rng, 300, 5));
    for (const Note& n : song.notes)
      if (!n.drum) {
        EXPECT_LE(n.end - n.start, 5 * v.step_seconds + 1e-9);
      }
  }
}

TEST(EventGrammar, AllowsEveryTokenEncodeWrites) {
  // A piece with chords, a program change, drums, long gaps and repeated velocities.
  EventVocab v;
  using imagine::testing::make_note;
  Song s;
  s.notes = {make_note(60, 0.0, 0.5, 80),     make_note(64, 0.0, 0.5, 80),
             make_note(67, 0.0, 1.0, 90),     make_note(36, 0.25, 0.35, 100, 0, true),
             make_note(48, 0.5, 3.5, 60, 33), make_note(60, 0.5, 0.75, 60),
             make_note(62, 3.0, 3.2, 70)};
  s.sort();
  const std::vector<int> tokens = v.encode(s);
  EventGrammar g(v);
  for (size_t i = 0; i < tokens.size(); i++) {
    if (i > 0) {
      EXPECT_TRUE(g.allowed(tokens[i])) << "token " << i << " " << v.describe(tokens[i]);
    }
    g.push(tokens[i]);
  }
}

TEST(EventGrammar, RefusesNonCanonicalSteps) {
  EventVocab v;
  EventGrammar g(v);
  g.push(v.bos());
  EXPECT_FALSE(g.allowed(v.note_on(60)));   // the first note states its velocity
  EXPECT_FALSE(g.allowed(v.note_off(60)));  // nothing sounds
  g.push(v.velocity(10));
  EXPECT_FALSE(g.allowed(v.velocity(10)));   // velocity already stated
  EXPECT_FALSE(g.allowed(v.time_shift(3)));  // a VELOCITY must be followed by its note
  g.push(v.note_on(60));
  EXPECT_FALSE(g.allowed(v.note_on(60)));  // sounding already
  EXPECT_FALSE(g.allowed(v.note_on(55)));  // onsets of one step go up in pitch
  EXPECT_TRUE(g.allowed(v.note_on(64)));
  EXPECT_FALSE(g.allowed(v.note_off(60)));  // a note lasts at least one step
  EXPECT_FALSE(g.allowed(v.eos()));         // 60 still sounds
  g.push(v.time_shift(3));
  EXPECT_FALSE(g.allowed(v.time_shift(2)));  // encode merges gaps into one shift
  g.push(v.note_off(60));
  EXPECT_TRUE(g.allowed(v.eos()));
}

}  // namespace
