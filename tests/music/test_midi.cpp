// Tests for music/midi and music/render: a Song survives encode -> parse; MIDI files written
// byte by byte here (tempo changes, running status, velocity-0 note-offs, the drum channel)
// parse to the notes a musician would read off them; every openttd-openmsx song parses;
// corrupt files either parse or throw imagine::Error, never crash or hang; FluidSynth
// renders an audible WAV of the right length; the piano roll is a PNG of the expected size.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "image/image.h"
#include "music/midi.h"
#include "music/render.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::Image;
using imagine::Note;
using imagine::Song;

namespace {

class MidiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_midi_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

Note note(int pitch, int velocity, int program, double start, double end, bool drum = false) {
  Note n;
  n.pitch = pitch;
  n.velocity = velocity;
  n.program = program;
  n.drum = drum;
  n.start = start;
  n.end = end;
  return n;
}

// Compares two note lists after sorting; times within `tol` seconds, program ignored for drums.
void expect_same_notes(std::vector<Note> want, std::vector<Note> got, double tol) {
  auto order = [](const Note& a, const Note& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.pitch != b.pitch) return a.pitch < b.pitch;
    return a.drum < b.drum;
  };
  std::sort(want.begin(), want.end(), order);
  std::sort(got.begin(), got.end(), order);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); i++) {
    SCOPED_TRACE(::testing::Message() << "note " << i << " (pitch " << want[i].pitch << ")");
    EXPECT_EQ(want[i].pitch, got[i].pitch);
    EXPECT_EQ(want[i].velocity, got[i].velocity);
    EXPECT_EQ(want[i].drum, got[i].drum);
    if (!want[i].drum) {
      EXPECT_EQ(want[i].program, got[i].program);
    }
    EXPECT_NEAR(want[i].start, got[i].start, tol);
    EXPECT_NEAR(want[i].end, got[i].end, tol);
  }
}

// ---- writing MIDI by hand ----

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(char(b));
  return s;
}
std::string be(uint32_t v, int n) {
  std::string s;
  for (int i = n - 1; i >= 0; i--) s.push_back(char((v >> (8 * i)) & 0xFF));
  return s;
}
std::string vlq(uint32_t v) {
  std::string s(1, char(v & 0x7F));
  while (v >>= 7) s.insert(s.begin(), char(0x80 | (v & 0x7F)));
  return s;
}
std::string header(int format, int ntracks, int division) {
  return "MThd" + be(6, 4) + be(format, 2) + be(ntracks, 2) + be(division, 2);
}
std::string chunk(const std::string& id, const std::string& body) { return id + be(uint32_t(body.size()), 4) + body; }

// Format 0, 96 ticks a beat. 120 bpm until tick 96 (0.5 s), then 60 bpm (a beat = 1 s).
std::string format0_file() {
  std::string t;
  t += bytes({0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20});        // tempo 500000 us/beat
  t += bytes({0x00, 0xFF, 0x01}) + vlq(130) + std::string(130, 'a');  // text longer than 127 bytes
  t += bytes({0x00, 0xF0, 0x03, 0x7E, 0x7F, 0xF7});              // SysEx, skipped
  t += bytes({0x00, 0xC0, 0x05});                                // channel 0: program 5
  t += bytes({0x00, 0x90, 0x3C, 0x64});                          // C4 on, velocity 100
  t += bytes({0x00, 0x40, 0x50});                                // running status: E4 on, 80
  t += bytes({0x60, 0x3C, 0x00});                                // tick 96, running: C4 velocity 0 = off
  t += bytes({0x00, 0xFF, 0x51, 0x03, 0x0F, 0x42, 0x40});        // tick 96: 1000000 us/beat
  t += bytes({0x60, 0x80, 0x40, 0x40});                          // tick 192 (1.5 s): E4 off
  t += bytes({0x00, 0x99, 0x24, 0x70});                          // drum 36 on, 112
  t += bytes({0x30, 0x89, 0x24, 0x00});                          // tick 240 (2.0 s): off
  t += bytes({0x00, 0xC1, 0x20});                                // channel 1: program 32
  t += bytes({0x00, 0x91, 0x30, 0x50});                          // C3 on
  t += bytes({0x60, 0x91, 0x30, 0x00});                          // tick 336 (3.0 s): off
  t += bytes({0x00, 0xFF, 0x2F, 0x00});
  return header(0, 1, 96) + chunk("MTrk", t);
}
std::vector<Note> format0_notes() {
  return {note(60, 100, 5, 0.0, 0.5), note(64, 80, 5, 0.0, 1.5), note(36, 112, 0, 1.5, 2.0, true),
          note(48, 80, 32, 2.0, 3.0)};
}

// Format 1, 480 ticks a beat: a conductor track (120 bpm, 240 bpm from tick 960 = 1 s),
// a melody and a drum track, with an unknown chunk between them.
std::string format1_file() {
  std::string conductor = bytes({0x00, 0xFF, 0x03, 0x04, 'S', 'o', 'n', 'g'});
  conductor += bytes({0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20});
  conductor += vlq(960) + bytes({0xFF, 0x51, 0x03, 0x03, 0xD0, 0x90});  // 250000 us/beat
  conductor += bytes({0x00, 0xFF, 0x2F, 0x00});
  std::string melody = bytes({0x00, 0xC0, 0x28, 0x00, 0x90, 0x45, 0x60});
  melody += vlq(480) + bytes({0x45, 0x00});       // tick 480 (0.5 s): A4 off by velocity 0
  melody += bytes({0x00, 0x47, 0x50});            // B4 on, running status
  melody += vlq(960) + bytes({0x80, 0x47, 0x00});  // tick 1440: 1.0 s + 480 ticks at 240 bpm = 1.25 s
  melody += bytes({0x00, 0xFF, 0x2F, 0x00});
  std::string drums = vlq(960) + bytes({0x99, 0x26, 0x7F});  // tick 960 (1.0 s): snare
  drums += vlq(120) + bytes({0x99, 0x26, 0x00});             // tick 1080: 1.0625 s
  drums += bytes({0x00, 0xFF, 0x2F, 0x00});
  return header(1, 3, 480) + chunk("MTrk", conductor) + chunk("MTrk", melody) + chunk("XFIH", "junk") +
         chunk("MTrk", drums);
}
std::vector<Note> format1_notes() {
  return {note(69, 96, 40, 0.0, 0.5), note(71, 80, 40, 0.5, 1.25), note(38, 127, 0, 1.0, 1.0625, true)};
}

Song demo_song() {
  Song s;
  s.name = "demo";
  s.notes = {
      note(60, 100, 0, 0.0, 1.0),     note(64, 70, 0, 0.0, 0.5),   note(67, 40, 0, 0.25, 2.0),  // overlapping chord
      note(43, 90, 33, 0.5, 1.75),    note(76, 127, 73, 1.0, 1.2), note(77, 1, 73, 1.1, 1.3),
      note(36, 110, 0, 0.0, 0.1, true), note(42, 60, 0, 0.5, 0.55, true),
      note(72, 85, 0, 95.3, 96.05),  // a late note: long gaps survive
  };
  return s;
}

std::vector<std::string> openmsx_files() {
  std::vector<std::string> files;
  for (const char* root : {"/usr/share/games/openttd", "/usr/share/openttd"}) {
    std::error_code ec;
    if (!fs::is_directory(root, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      const std::string ext = it->path().extension().string();
      if (it->is_regular_file() && (ext == ".mid" || ext == ".MID")) files.push_back(it->path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// A watchdog: a hang inside the parser fails the test run loudly instead of stalling it.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit)
      : thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "watchdog: MIDI parsing did not finish within %lld s\n", (long long)limit.count());
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Parses hostile bytes: success or imagine::Error with a hint are fine; returns the seconds taken.
double parse_or_error(const std::string& data, const std::string& what) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    Song s = imagine::parse_midi(data, what);
    for (const Note& n : s.notes) {
      EXPECT_GT(n.end, n.start) << what;
      EXPECT_GE(n.pitch, 0) << what;
      EXPECT_LE(n.pitch, 127) << what;
    }
  } catch (const imagine::Error& e) {
    EXPECT_FALSE(e.hint().empty()) << what << ": " << e.what();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// ---- tests ----

TEST_F(MidiTest, RoundTripKeepsNotesProgramsDrumsAndVelocities) {
  const Song song = demo_song();
  const std::string data = imagine::encode_midi(song);
  ASSERT_TRUE(imagine::is_midi(data));
  const Song back = imagine::parse_midi(data, "demo.mid");
  expect_same_notes(song.notes, back.notes, 0.001);
  ASSERT_FALSE(back.tempos.empty());
  EXPECT_NEAR(back.tempos[0].bpm, 120, 1e-9);

  imagine::write_midi(path("demo.mid"), song);
  const Song from_file = imagine::read_midi(path("demo.mid"));
  expect_same_notes(song.notes, from_file.notes, 0.001);
  EXPECT_EQ(from_file.name, "demo");
}

TEST_F(MidiTest, SamePitchOverlapEndsTheEarlierNote) {
  Song song;
  song.notes = {note(60, 90, 0, 0.0, 1.0), note(60, 50, 0, 0.5, 1.5)};
  const Song back = imagine::parse_midi(imagine::encode_midi(song), "overlap");
  expect_same_notes({note(60, 90, 0, 0.0, 0.5), note(60, 50, 0, 0.5, 1.5)}, back.notes, 0.001);
}

TEST_F(MidiTest, ManyProgramsShareChannelsButKeepTheirPrograms) {
  Song song;
  for (int p = 0; p < 20; p++) song.notes.push_back(note(40 + p, 64, p * 5, p * 0.25, p * 0.25 + 0.2));
  expect_same_notes(song.notes, imagine::parse_midi(imagine::encode_midi(song), "many").notes, 0.001);
}

TEST_F(MidiTest, LongSongsSplitAcrossTracksRoundTrip) {
  // More than 4096 events per program: encode_midi spreads them over several tracks.
  Song song;
  for (int i = 0; i < 6000; i++) {
    song.notes.push_back(note(40 + (i * 7) % 48, 1 + i % 127, 24, i * 0.05, i * 0.05 + 0.05 + (i % 5) * 0.01));
  }
  expect_same_notes(song.notes, imagine::parse_midi(imagine::encode_midi(song), "long").notes, 0.001);
}

TEST_F(MidiTest, EncodeRefusesInvalidNotes) {
  Song song;
  song.notes = {note(128, 64, 0, 0, 1)};
  EXPECT_THROW(imagine::encode_midi(song), imagine::Error);
  song.notes = {note(60, 64, 0, 1, 1)};
  EXPECT_THROW(imagine::encode_midi(song), imagine::Error);
  song.notes = {note(60, 0, 0, 0, 1)};
  EXPECT_THROW(imagine::encode_midi(song), imagine::Error);
}

TEST_F(MidiTest, Format0WithTempoChangeRunningStatusAndDrums) {
  const Song s = imagine::parse_midi(format0_file(), "format0.mid");
  expect_same_notes(format0_notes(), s.notes, 1e-6);
  ASSERT_EQ(s.tempos.size(), 2u);
  EXPECT_NEAR(s.tempos[0].bpm, 120, 1e-9);
  EXPECT_NEAR(s.tempos[1].bpm, 60, 1e-9);
  EXPECT_NEAR(s.tempos[1].time, 0.5, 1e-9);
  EXPECT_NEAR(s.duration(), 3.0, 1e-6);
}

TEST_F(MidiTest, Format1TempoTrackAppliesToEveryTrack) {
  const Song s = imagine::parse_midi(format1_file(), "format1.mid");
  expect_same_notes(format1_notes(), s.notes, 1e-6);
  ASSERT_EQ(s.tempos.size(), 2u);
  EXPECT_NEAR(s.tempos[1].bpm, 240, 1e-9);
  EXPECT_NEAR(s.tempos[1].time, 1.0, 1e-9);
}

TEST_F(MidiTest, UnclosedNotesEndWithTheFile) {
  std::string t = bytes({0x00, 0x90, 0x3C, 0x40, 0x60, 0x90, 0x40, 0x40, 0x60, 0x80, 0x40, 0x00, 0x00, 0xFF, 0x2F, 0x00});
  const Song s = imagine::parse_midi(header(0, 1, 96) + chunk("MTrk", t), "unclosed");
  expect_same_notes({note(60, 64, 0, 0.0, 1.0), note(64, 64, 0, 0.5, 1.0)}, s.notes, 1e-6);
}

TEST_F(MidiTest, EveryOpenMsxSongParses) {
  const std::vector<std::string> files = openmsx_files();
  ASSERT_FALSE(files.empty()) << "no .mid files under /usr/share/games/openttd: install openttd-openmsx "
                                 "(scripts/install-deps.sh)";
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    Song s;
    ASSERT_NO_THROW(s = imagine::read_midi(f));
    EXPECT_GT(s.notes.size(), 10u);
    EXPECT_GT(s.duration(), 10.0);
    EXPECT_LT(s.duration(), 1800.0);
    EXPECT_FALSE(s.tempos.empty());
  }
}

TEST_F(MidiTest, HostileHeadersThrowWithHints) {
  auto expect_error = [](const std::string& data, const std::string& what) {
    try {
      imagine::parse_midi(data, what);
      ADD_FAILURE() << what << ": parsed";
    } catch (const imagine::Error& e) {
      EXPECT_FALSE(e.hint().empty()) << what;
    }
  };
  expect_error("", "empty");
  expect_error("This is not a MIDI file, just some text.\n", "text");
  expect_error(std::string(100, '\xFF'), "ones");
  expect_error(header(2, 1, 96) + chunk("MTrk", bytes({0x00, 0xFF, 0x2F, 0x00})), "format 2");
  expect_error(header(0, 1, 0xE728) + chunk("MTrk", bytes({0x00, 0xFF, 0x2F, 0x00})), "SMPTE");
  expect_error(header(0, 1, 0) + chunk("MTrk", bytes({0x00, 0xFF, 0x2F, 0x00})), "division 0");
  expect_error(header(0, 0, 96), "no tracks");
  expect_error(header(1, 2, 96) + chunk("MTrk", bytes({0x00, 0xFF, 0x2F, 0x00})), "missing track");
  std::string past_end = format0_file();
  past_end.replace(18, 4, be(uint32_t(past_end.size() - 22 + 100), 4));  // the MTrk length
  expect_error(past_end, "chunk past end");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x81, 0x82})), "VLQ off the end");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x81, 0x82, 0x83, 0x84, 0x05, 0x90, 1, 2})), "5-byte VLQ");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0x3C, 0x40, 0x00, 0xFF, 0x2F, 0x00})), "no status");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0x90, 0x3C, 0x40})), "no end of track");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0xFF, 0x01, 0x7F, 'a', 0x00, 0xFF, 0x2F, 0x00})),
               "meta past chunk");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0xFF, 0x51, 0x02, 0x07, 0xA1, 0x00, 0xFF, 0x2F, 0x00})),
               "short tempo");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0x90, 0x3C, 0xC0, 0x00, 0xFF, 0x2F, 0x00})),
               "data byte with top bit");
  expect_error(header(0, 1, 96) + chunk("MTrk", bytes({0x00, 0xF8, 0x00, 0xFF, 0x2F, 0x00})), "realtime byte");
}

TEST_F(MidiTest, TruncatedAndMutatedFilesNeverCrashOrHang) {
  std::vector<std::string> bases = {format0_file(), format1_file(), imagine::encode_midi(demo_song())};
  const std::vector<std::string> files = openmsx_files();
  if (!files.empty()) {
    // The smallest song keeps the run short while still covering a real-world file.
    std::string smallest;
    for (const std::string& f : files) {
      std::string b = imagine::read_file(f);
      if (smallest.empty() || b.size() < smallest.size()) smallest = b;
    }
    bases.push_back(smallest);
  }
  Watchdog watchdog(std::chrono::seconds(120));
  double worst = 0;
  for (size_t bi = 0; bi < bases.size(); bi++) {
    const std::string& base = bases[bi];
    const size_t step = std::max<size_t>(1, base.size() / 400);
    for (size_t len = 0; len < base.size(); len += step) {
      worst = std::max(worst, parse_or_error(base.substr(0, len), "truncated"));
    }
  }
  std::mt19937 rng(20240611);
  for (int i = 0; i < 800; i++) {
    std::string data = bases[rng() % bases.size()];
    const int kind = int(rng() % 4);
    const int edits = 1 + int(rng() % 4);
    for (int e = 0; e < edits && !data.empty(); e++) {
      const size_t at = rng() % data.size();
      if (kind == 0) data[at] = char(data[at] ^ (1 << (rng() % 8)));  // a bit flip
      else if (kind == 1) data[at] = char(rng() & 0xFF);             // a random byte
      else if (kind == 2) data.erase(at, 1 + rng() % 8);             // lost bytes
      else data.insert(at, 1 + rng() % 8, char(rng() & 0xFF));       // extra bytes
    }
    worst = std::max(worst, parse_or_error(data, "mutated"));
  }
  EXPECT_LT(worst, 2.0) << "the slowest corrupt file took " << worst << " s";
}

TEST_F(MidiTest, RenderWavIsAudibleAndTheRightLength) {
  ASSERT_FALSE(imagine::default_soundfont().empty()) << "install fluid-soundfont-gm (scripts/install-deps.sh)";
  Song song;
  song.notes = {note(60, 100, 0, 0.0, 0.8), note(64, 90, 0, 0.2, 1.0), note(67, 80, 40, 0.5, 1.6),
                note(36, 120, 0, 0.0, 0.1, true), note(38, 100, 0, 1.0, 1.1, true)};
  const std::string wav = path("song.wav");
  const imagine::RenderResult r = imagine::render_wav(song, wav);
  EXPECT_NEAR(r.seconds, song.duration() + 1.5, 0.1);
  EXPECT_GT(r.peak, 0.01);
  EXPECT_LE(r.peak, 1.0);
  EXPECT_GT(r.render_seconds, 0.0);

  const std::string b = imagine::read_file(wav);
  ASSERT_GE(b.size(), 44u);
  auto le = [&](size_t at, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | uint8_t(b[at + i]);
    return v;
  };
  EXPECT_EQ(b.substr(0, 4), "RIFF");
  EXPECT_EQ(le(4, 4), b.size() - 8);
  EXPECT_EQ(b.substr(8, 8), "WAVEfmt ");
  EXPECT_EQ(le(16, 4), 16u);
  EXPECT_EQ(le(20, 2), 1u);      // PCM
  EXPECT_EQ(le(22, 2), 2u);      // stereo
  EXPECT_EQ(le(24, 4), 44100u);
  EXPECT_EQ(le(28, 4), 44100u * 4);
  EXPECT_EQ(le(32, 2), 4u);
  EXPECT_EQ(le(34, 2), 16u);
  EXPECT_EQ(b.substr(36, 4), "data");
  EXPECT_EQ(le(40, 4), b.size() - 44);
  EXPECT_NEAR((b.size() - 44) / 4.0 / 44100.0, song.duration() + 1.5, 0.1);
  int peak = 0;
  for (size_t i = 44; i + 1 < b.size(); i += 2) peak = std::max(peak, std::abs(int(int16_t(le(i, 2)))));
  EXPECT_NEAR(peak / 32768.0, r.peak, 1e-9);
  std::printf("[ rendered  ] %.2f s of audio in %.2f s (%.1fx real time, soundfont load included)\n", r.seconds,
              r.render_seconds, r.seconds / r.render_seconds);
}

TEST_F(MidiTest, RenderWithoutSoundfontThrowsWithInstallHint) {
  Song song;
  song.notes = {note(60, 100, 0, 0.0, 0.5)};
  try {
    imagine::render_wav(song, path("x.wav"), path("missing.sf2"));
    ADD_FAILURE() << "rendered without a soundfont";
  } catch (const imagine::Error& e) {
    EXPECT_NE(e.hint().find("fluid-soundfont-gm"), std::string::npos) << e.hint();
  }
  EXPECT_FALSE(fs::exists(path("x.wav")));
  imagine::write_file_atomic(path("junk.sf2"), "not a soundfont at all");
  EXPECT_THROW(imagine::render_wav(song, path("y.wav"), path("junk.sf2")), imagine::Error);
}

TEST_F(MidiTest, PianoRollHasTheExpectedSize) {
  Song song;
  song.notes = {note(48, 100, 0, 0.0, 1.0), note(72, 30, 40, 1.0, 4.0), note(36, 127, 0, 2.0, 2.1, true)};
  const std::string png = path("roll.png");
  imagine::write_piano_roll(song, png, 50);
  const Image img = imagine::read_image(png);
  EXPECT_EQ(img.width, 4 * 50 + 16);               // 4 s at 50 px/s plus 8 px margins
  EXPECT_EQ(img.height, (72 - 36 + 1) * 4 + 16);   // 4 px per semitone over 36..72
  EXPECT_EQ(img.channels, 3);
  bool found = false;
  for (const auto& [k, v] : imagine::read_png_text(png)) found |= k == "Software" && v == "imagine";
  EXPECT_TRUE(found);

  // A long piece is squeezed, not refused.
  song.notes.push_back(note(60, 80, 0, 990, 1000));
  imagine::write_piano_roll(song, png, 50);
  EXPECT_LE(imagine::read_image(png).width, 8000);
}

}  // namespace
