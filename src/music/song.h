// A piece of music as the music family sees it: notes with absolute times in seconds,
// instruments (General MIDI programs) and the drum channel. MIDI files, the JSB chorales
// and the event vocabulary all convert to and from this. No tensors here.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace imagine {

struct Note {
  int pitch = 60;         // MIDI key 0..127
  int velocity = 80;      // 1..127
  int program = 0;        // General MIDI program 0..127 (ignored for drums)
  bool drum = false;      // on MIDI channel 10 (index 9)
  double start = 0;       // seconds
  double end = 0;         // seconds, > start
};

struct TempoChange {
  double time = 0;        // seconds
  double bpm = 120;
};

struct Song {
  std::vector<Note> notes;          // sorted by (start, pitch)
  std::vector<TempoChange> tempos;  // as read from the file (informational; times are already in seconds)
  std::string name;                 // file or piece name
  double duration() const;          // end of the last note (0 if none)
  void sort();                      // by start, then pitch, then end
};

}  // namespace imagine
