// Standard MIDI Files through libsmf.
//
// libsmf trusts its input: it reads a meta event's length as one byte, treats SysEx as
// "until the next status byte", asserts on some malformed events and reports problems with
// g_critical on stderr. So reading happens in two steps. First our own walk over the chunk
// layout checks every length, variable-length quantity and status byte, and re-encodes the
// file into a small canonical SMF that holds only what we use: one format-0 track with the
// tempo changes and channel messages of every source track merged by time, each message
// with an explicit status byte, closed by an end-of-track. libsmf then only ever parses
// that canonical data, and computes the seconds of every event from the tempo map.
//
// One merged track also keeps libsmf linear: it looks tempos up by scanning back from the
// newest, and picks each next event by scanning every track, so tempo changes on a track of
// their own, or hundreds of tracks, would make a large file cost minutes.
#include "music/midi.h"

#include <glib.h>
#include <smf.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/signals.h"

namespace imagine {
namespace {

// Caps that keep a hostile file from costing gigabytes or minutes. libsmf allocates about
// a hundred bytes per event.
constexpr size_t kMaxEvents = 2'000'000;
constexpr uint32_t kMaxTicks = 0x0FFFFFFF;    // the largest 4-byte VLQ: any delta we re-encode fits
constexpr size_t kEventsPerTrack = 4096;      // written files: see encode_midi
constexpr int kWritePpqn = 480;               // written files: 480 ticks a beat at 120 bpm...
constexpr double kWriteTicksPerSecond = 960;  // ...so a tick is 1/960 s
// A note-on and its note-off on the same tick (common for drums) still becomes a note
// with end > start.
constexpr double kMinNoteSeconds = 0.005;

const char* const kCorruptHint =
    "the file is truncated or is not a valid Standard MIDI File; re-export it from a MIDI editor";

void silence_libsmf() {
  // libsmf reports through glib's log in the "libsmf" domain; our validator already turns
  // every problem into an Error, so its messages would only be noise on stderr.
  static std::once_flag once;
  std::call_once(once, [] {
    g_log_set_handler(
        "libsmf", GLogLevelFlags(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
        [](const gchar*, GLogLevelFlags, const gchar*, gpointer) {}, nullptr);
  });
}

// smf_delete frees events one by one through smf_event_remove_from_track, which searches
// the track's array and renumbers every later event: quadratic, minutes for a 100k-event
// file. Events detached first (track = NULL) are simply freed, so we detach them all and
// empty each track's array before letting libsmf free the rest.
struct SmfDeleter {
  void operator()(smf_t* smf) const {
    for (int t = 1; t <= smf->number_of_tracks; t++) {
      smf_track_t* track = smf_get_track_by_number(smf, t);
      if (!track) continue;
      for (guint i = 0; i < track->events_array->len; i++) {
        auto* event = static_cast<smf_event_t*>(g_ptr_array_index(track->events_array, i));
        event->track = nullptr;
        smf_event_delete(event);
      }
      g_ptr_array_set_size(track->events_array, 0);
      track->number_of_events = 0;
    }
    smf_delete(smf);
  }
};
using SmfPtr = std::unique_ptr<smf_t, SmfDeleter>;

// ---- validation and canonical re-encoding ----

struct TimedEvent {
  uint32_t tick = 0;
  std::array<uint8_t, 6> bytes{};  // a channel message (2-3 bytes) or a tempo meta (6 bytes)
  int size = 0;
};

class SmfWalker {
 public:
  SmfWalker(const std::string& bytes, const std::string& what)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), size_(bytes.size()), what_(what) {}

  // Returns the canonical file; throws Error for anything malformed.
  std::string canonical() {
    check(size_ >= 14, "too short for a MIDI header (", size_, " bytes)");
    check(std::equal(p_, p_ + 4, "MThd"), "no \"MThd\" header: not a Standard MIDI File");
    check(be32(4) == 6, "MThd chunk length is ", be32(4), ", should be 6");
    const int format = be16(8);
    const int ntracks = be16(10);
    const int division = be16(12);
    if (format == 2) {
      throw Error(str(what_, ": MIDI format 2 (independent sequences) is not supported"),
                  "convert the file to format 1 with a MIDI editor");
    }
    check(format == 0 || format == 1, "unknown MIDI format ", format);
    check(ntracks >= 1, "the header declares no tracks");
    if (division & 0x8000) {
      throw Error(str(what_, ": SMPTE time division is not supported"),
                  "re-export the file with musical (ticks per quarter note) timing");
    }
    check(division > 0, "time division is 0 ticks per quarter note");
    ppqn_ = division;

    size_t pos = 14;
    int found = 0;
    while (found < ntracks) {
      check(pos + 8 <= size_, "the header declares ", ntracks, " tracks but the file ends after ", found);
      const uint32_t length = be32(pos + 4);
      check(length <= size_ - pos - 8, "chunk at byte ", pos, " is ", length, " bytes long but only ",
            size_ - pos - 8, " bytes follow");
      const size_t body = pos + 8;
      if (std::equal(p_ + pos, p_ + pos + 4, "MTrk")) walk_track(body, body + length, found++);
      // Unknown chunk types are skipped, as the standard asks.
      pos = body + length;
    }
    return encode();
  }

  int ppqn() const { return ppqn_; }

 private:
  template <typename... Args>
  void check(bool cond, const Args&... parts) const {
    if (!cond) throw Error(str(what_, ": ", parts...), kCorruptHint);
  }
  uint32_t be32(size_t at) const {
    return uint32_t(p_[at]) << 24 | uint32_t(p_[at + 1]) << 16 | uint32_t(p_[at + 2]) << 8 | p_[at + 3];
  }
  int be16(size_t at) const { return p_[at] << 8 | p_[at + 1]; }

  // A variable-length quantity of at most 4 bytes that must end before `end`.
  uint32_t vlq(size_t& pos, size_t end, int track) const {
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
      check(pos < end, "track ", track, ": a variable-length number runs past the end of its chunk");
      const uint8_t b = p_[pos++];
      value = value << 7 | (b & 0x7F);
      if (!(b & 0x80)) return value;
    }
    check(false, "track ", track, ": a variable-length number is longer than 4 bytes");
    return 0;
  }

  void walk_track(size_t pos, size_t end, int track) {
    uint64_t tick = 0;
    uint8_t running = 0;  // 0: no running status yet
    bool ended = false;
    while (!ended) {
      check(pos < end, "track ", track, " has no end-of-track event (the file may be truncated)");
      tick += vlq(pos, end, track);
      check(tick <= kMaxTicks, "track ", track, " runs past ", kMaxTicks, " ticks");
      check(pos < end, "track ", track, ": an event time is not followed by an event");
      check(++events_ <= kMaxEvents, "more than ", kMaxEvents, " events");
      const uint8_t b = p_[pos];
      if (b == 0xFF) {  // meta event: type, length, data
        pos++;
        check(pos < end, "track ", track, ": a meta event is cut off");
        const uint8_t type = p_[pos++];
        const uint32_t length = vlq(pos, end, track);
        check(length <= end - pos, "track ", track, ": a meta event of ", length,
              " bytes runs past its chunk");
        if (type == 0x2F) {
          ended = true;  // anything after the end-of-track in this chunk is ignored
        } else if (type == 0x51) {
          check(length == 3, "track ", track, ": a tempo event has ", length, " data bytes instead of 3");
          const uint32_t usec = uint32_t(p_[pos]) << 16 | uint32_t(p_[pos + 1]) << 8 | p_[pos + 2];
          check(usec > 0, "track ", track, ": a tempo of 0 microseconds per beat");
          TimedEvent e;
          e.tick = uint32_t(tick);
          e.bytes = {0xFF, 0x51, 0x03, p_[pos], p_[pos + 1], p_[pos + 2]};
          e.size = 6;
          merged_.push_back(e);
        }
        // Other meta events (names, lyrics, signatures) carry nothing the Song keeps.
        // Running status survives meta events: the standard cancels it, but files in the
        // wild rely on it, and a data byte here can mean nothing else.
        pos += length;
      } else if (b == 0xF0 || b == 0xF7) {  // SysEx (or a SysEx continuation): length, data
        pos++;
        const uint32_t length = vlq(pos, end, track);
        check(length <= end - pos, "track ", track, ": a SysEx event of ", length,
              " bytes runs past its chunk");
        pos += length;
      } else {
        if (b & 0x80) {
          check(b < 0xF0, "track ", track, ": status byte 0x", std::hex, int(b),
                " is not allowed in a MIDI file");
          running = b;
          pos++;
        } else {
          check(running != 0, "track ", track, ": running status used before any status byte");
        }
        const int data = (running & 0xF0) == 0xC0 || (running & 0xF0) == 0xD0 ? 1 : 2;
        check(end - pos >= size_t(data), "track ", track, ": a channel message is cut off");
        TimedEvent e;
        e.tick = uint32_t(tick);
        e.bytes[0] = running;
        for (int i = 0; i < data; i++) {
          check(p_[pos + i] < 0x80, "track ", track, ": data byte 0x", std::hex, int(p_[pos + i]),
                " has its top bit set");
          e.bytes[1 + i] = p_[pos + i];
        }
        e.size = 1 + data;
        pos += data;
        merged_.push_back(e);
      }
    }
  }

  static void put_vlq(std::string& out, uint32_t v) {
    char buf[4];
    int n = 0;
    buf[n++] = char(v & 0x7F);
    while (v >>= 7) buf[n++] = char(0x80 | (v & 0x7F));
    while (n > 0) out.push_back(buf[--n]);
  }
  static void put_be(std::string& out, uint32_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; i--) out.push_back(char((v >> (8 * i)) & 0xFF));
  }
  static void put_track(std::string& out, const std::vector<TimedEvent>& events) {
    std::string body;
    uint32_t last = 0;
    for (const TimedEvent& e : events) {
      put_vlq(body, e.tick - last);
      last = e.tick;
      body.append(reinterpret_cast<const char*>(e.bytes.data()), e.size);
    }
    body.append("\x00\xFF\x2F\x00", 4);
    out.append("MTrk");
    put_be(out, uint32_t(body.size()), 4);
    out += body;
  }

  // Tracks were appended whole, one after another, so a stable sort by tick merges them and
  // keeps file order among events at the same tick (track 1's before track 2's, as a
  // multi-track player would).
  std::string encode() {
    std::stable_sort(merged_.begin(), merged_.end(),
                     [](const TimedEvent& a, const TimedEvent& b) { return a.tick < b.tick; });
    std::string out("MThd", 4);
    put_be(out, 6, 4);
    put_be(out, 0, 2);
    put_be(out, 1, 2);
    put_be(out, uint32_t(ppqn_), 2);
    put_track(out, merged_);
    return out;
  }

  const uint8_t* p_;
  size_t size_;
  std::string what_;
  int ppqn_ = 0;
  size_t events_ = 0;
  std::vector<TimedEvent> merged_;  // tempo changes and channel messages of every track
};

}  // namespace

bool is_midi(const std::string& bytes) { return bytes.size() >= 4 && bytes.compare(0, 4, "MThd") == 0; }

Song parse_midi(const std::string& bytes, const std::string& what) {
  silence_libsmf();
  const std::string canonical = SmfWalker(bytes, what).canonical();
  SmfPtr smf(smf_load_from_memory(canonical.data(), int(canonical.size())));
  // Unreachable for data the walker produced; kept so a libsmf surprise is an Error, not a crash.
  IMAGINE_CHECK(smf != nullptr, kCorruptHint, what, ": libsmf could not parse the file");

  Song song;
  song.name = std::filesystem::path(what).stem().string();

  struct Open {
    double start;
    int velocity;
    int program;
  };
  std::array<int, 16> program{};             // current program per channel
  std::map<std::pair<int, int>, Open> open;  // (channel, pitch) -> sounding note
  double last_time = 0;
  auto close = [&](int ch, int pitch, const Open& o, double t) {
    Note n;
    n.pitch = pitch;
    n.velocity = o.velocity;
    n.program = o.program;
    n.drum = ch == 9;
    n.start = o.start;
    n.end = std::max(t, o.start + kMinNoteSeconds);
    song.notes.push_back(n);
  };

  smf_rewind(smf.get());
  while (smf_event_t* ev = smf_get_next_event(smf.get())) {
    if (smf_event_is_metadata(ev) || ev->midi_buffer_length < 2) continue;
    const double t = ev->time_seconds;
    last_time = std::max(last_time, t);
    const int status = ev->midi_buffer[0] & 0xF0;
    const int ch = ev->midi_buffer[0] & 0x0F;
    const int d1 = ev->midi_buffer[1];
    const int d2 = ev->midi_buffer_length > 2 ? ev->midi_buffer[2] : 0;
    if (status == 0xC0) {
      program[ch] = d1;
    } else if (status == 0x90 && d2 > 0) {
      const auto key = std::make_pair(ch, d1);
      auto it = open.find(key);
      // The same key struck again before its note-off: the earlier note ends here.
      if (it != open.end()) {
        close(ch, d1, it->second, t);
        open.erase(it);
      }
      open.emplace(key, Open{t, d2, program[ch]});
    } else if (status == 0x80 || status == 0x90) {
      auto it = open.find(std::make_pair(ch, d1));
      if (it != open.end()) {
        close(ch, d1, it->second, t);
        open.erase(it);
      }
    }
  }
  // Notes still sounding when the file ends stop with its last event.
  for (const auto& [key, o] : open) close(key.first, key.second, o, last_time);

  for (int i = 0;; i++) {
    const smf_tempo_t* tempo = smf_get_tempo_by_number(smf.get(), i);
    if (!tempo) break;
    const double bpm = 60e6 / tempo->microseconds_per_quarter_note;
    if (!song.tempos.empty() && song.tempos.back().bpm == bpm) continue;
    song.tempos.push_back(TempoChange{tempo->time_seconds, bpm});
  }
  song.sort();
  return song;
}

Song read_midi(const std::string& path) { return parse_midi(read_file(path), path); }

std::string encode_midi(const Song& song) {
  silence_libsmf();
  // Ticks at 480 ppqn and 120 bpm; notes become (on, off) tick pairs per channel and pitch.
  struct Span {
    long on, off;
    int velocity;
  };
  // Channels: drums on 9; each program gets its own channel from 0..15 without 9, in
  // program order. Past 15 programs, channels are shared and each note-on is preceded by
  // its program change (exact for libsmf-style readers, approximate where they overlap).
  std::map<int, std::vector<std::pair<int, Span>>> by_program;  // program (-1 = drums) -> (pitch, span)
  for (const Note& n : song.notes) {
    IMAGINE_CHECK(n.pitch >= 0 && n.pitch <= 127, "notes must have MIDI pitches 0..127",
                  "cannot write MIDI: pitch ", n.pitch);
    IMAGINE_CHECK(n.velocity >= 1 && n.velocity <= 127, "note velocities must be 1..127",
                  "cannot write MIDI: velocity ", n.velocity);
    IMAGINE_CHECK(n.drum || (n.program >= 0 && n.program <= 127), "programs must be 0..127",
                  "cannot write MIDI: program ", n.program);
    IMAGINE_CHECK(std::isfinite(n.start) && std::isfinite(n.end) && n.start >= 0 && n.end > n.start &&
                      n.end * kWriteTicksPerSecond < kMaxTicks,
                  "notes need 0 <= start < end (and under three days)", "cannot write MIDI: a note from ",
                  n.start, " s to ", n.end, " s");
    const long on = std::lround(n.start * kWriteTicksPerSecond);
    const long off = std::max(on + 1, std::lround(n.end * kWriteTicksPerSecond));
    by_program[n.drum ? -1 : n.program].push_back({n.pitch, Span{on, off, n.velocity}});
  }

  SmfPtr smf(smf_new());
  IMAGINE_CHECK(smf != nullptr, "", "libsmf could not allocate a song");
  IMAGINE_CHECK(smf_set_ppqn(smf.get(), kWritePpqn) == 0, "", "libsmf refused ppqn ", kWritePpqn);

  auto add = [](smf_track_t* track, long tick, int b0, int b1, int b2) {
    smf_event_t* e = smf_event_new_from_bytes(b0, b1, b2);
    IMAGINE_CHECK(e != nullptr, "", "libsmf could not create a MIDI event");
    smf_track_add_event_pulses(track, e, int(tick));
  };

  // A conductor track states the tempo that the seconds-to-ticks mapping assumes.
  smf_track_t* conductor = smf_track_new();
  IMAGINE_CHECK(conductor != nullptr, "", "libsmf could not allocate a track");
  smf_add_track(smf.get(), conductor);
  {
    const unsigned char tempo[] = {0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20};  // 500000 us per beat
    smf_event_t* e = smf_event_new_from_pointer(const_cast<unsigned char*>(tempo), sizeof tempo);
    IMAGINE_CHECK(e != nullptr, "", "libsmf could not create the tempo event");
    smf_track_add_event_pulses(conductor, e, 0);
  }

  const int melodic = int(by_program.size()) - (by_program.count(-1) ? 1 : 0);
  int slot = 0;
  for (auto& [prog, notes] : by_program) {
    const bool drum = prog < 0;
    const int ch = drum ? 9 : (slot % 15 < 9 ? slot % 15 : slot % 15 + 1);
    const bool shared = !drum && melodic > 15;
    if (!drum) slot++;

    // Same pitch overlapping itself: the earlier note ends where the later begins, which is
    // exactly what a reader (ours included) makes of it; identical onsets keep one note.
    std::sort(notes.begin(), notes.end(), [](const auto& a, const auto& b) {
      return a.first != b.first
                 ? a.first < b.first
                 : (a.second.on != b.second.on ? a.second.on < b.second.on : a.second.off > b.second.off);
    });
    struct Ev {
      long tick;
      int order;  // at one tick: offs, then program changes, then ons
      int b0, b1, b2;
    };
    std::vector<Ev> evs;
    for (size_t i = 0; i < notes.size(); i++) {
      const int pitch = notes[i].first;
      Span s = notes[i].second;
      if (i > 0 && notes[i - 1].first == pitch && notes[i - 1].second.on == s.on) continue;
      if (i + 1 < notes.size() && notes[i + 1].first == pitch && notes[i + 1].second.on < s.off) {
        s.off = notes[i + 1].second.on;
      }
      if (shared) evs.push_back({s.on, 1, 0xC0 | ch, prog, -1});
      evs.push_back({s.on, 2, 0x90 | ch, pitch, s.velocity});
      evs.push_back({s.off, 0, 0x80 | ch, pitch, 64});
    }
    std::stable_sort(evs.begin(), evs.end(), [](const Ev& a, const Ev& b) {
      return a.tick != b.tick ? a.tick < b.tick : a.order < b.order;
    });

    // smf_save reads the file back to check it and frees that copy one event at a time,
    // which is quadratic in a track's length; tracks of at most kEventsPerTrack events keep
    // it linear. Consecutive tracks hold consecutive stretches of time, and readers take
    // tracks in order at equal ticks, so the split changes nothing for them.
    for (size_t first = 0; first == 0 || first < evs.size(); first += kEventsPerTrack) {
      smf_track_t* track = smf_track_new();
      IMAGINE_CHECK(track != nullptr, "", "libsmf could not allocate a track");
      smf_add_track(smf.get(), track);
      if (first == 0) add(track, 0, 0xC0 | ch, drum ? 0 : prog, -1);
      for (size_t i = first; i < std::min(evs.size(), first + kEventsPerTrack); i++) {
        add(track, evs[i].tick, evs[i].b0, evs[i].b1, evs[i].b2);
      }
    }
  }

  // libsmf saves only to a named file, so the bytes take a detour through a temp file.
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/imagine_midi_XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  const TempFileGuard removed_if_stopped(name.data());
  IMAGINE_CHECK(fd >= 0, "check that the temp directory (TMPDIR) is writable", "cannot create a temp file ",
                tmpl);
  close(fd);
  const int rc = smf_save(smf.get(), name.data());
  std::string bytes;
  try {
    IMAGINE_CHECK(rc == 0, "check free space in the temp directory", "libsmf could not write ", name.data());
    bytes = read_file(name.data());
  } catch (...) {
    unlink(name.data());
    throw;
  }
  unlink(name.data());
  return bytes;
}

void write_midi(const std::string& path, const Song& song) { write_file_atomic(path, encode_midi(song)); }

}  // namespace imagine
