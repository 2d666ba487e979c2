// The event vocabulary of the music family, in the spirit of performance encoding
// (Oore et al.): a piece is a stream of events
//   NOTE_ON(pitch), NOTE_OFF(pitch), TIME_SHIFT(k steps), VELOCITY(bin), PROGRAM(p), DRUM_ON(key)
// on a fixed time grid. The vocabulary is parameterised (time step, longest shift, velocity
// bins) and stored in the model directory as JSON. Encoding then decoding reproduces every
// note's pitch, program, drum flag, quantised onset/offset and quantised velocity exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "music/song.h"

namespace imagine {

struct EventVocab {
  double step_seconds = 0.01;   // time grid (10 ms)
  int max_shift_steps = 100;    // longest single TIME_SHIFT (1 s); longer gaps use several
  int velocity_bins = 32;       // velocities quantised to this many levels
  bool programs = true;         // PROGRAM events (instrument changes) in the vocabulary
  bool drums = true;            // DRUM_ON events (drum channel; no note-off needed)

  // Token layout: [BOS, EOS, NOTE_ON x128, NOTE_OFF x128, TIME_SHIFT x max_shift_steps,
  //                VELOCITY x velocity_bins, PROGRAM x128 (if programs), DRUM_ON x128 (if drums)]
  int size() const;
  int bos() const { return 0; }
  int eos() const { return 1; }
  std::string describe(int token) const;  // "NOTE_ON(60)", "TIME_SHIFT(25)", ...

  // Token ids of each event kind (arguments in range; see the layout above).
  int note_on(int pitch) const { return 2 + pitch; }
  int note_off(int pitch) const { return 130 + pitch; }
  int time_shift(int steps) const { return 258 + steps - 1; }  // steps 1..max_shift_steps
  int velocity(int bin) const { return 258 + max_shift_steps + bin; }
  int program(int p) const { return 258 + max_shift_steps + velocity_bins + p; }  // needs programs
  int drum_on(int key) const { return 258 + max_shift_steps + velocity_bins + (programs ? 128 : 0) + key; }

  // Velocity bins split 1..127 as evenly as integers allow; a bin decodes to the middle of
  // its range, which maps back to the same bin (with 128 bins the last one is empty and
  // decodes to 127).
  int velocity_bin(int velocity) const;
  int bin_velocity(int bin) const;
  // Drums carry no NOTE_OFF, so every drum hit lasts a fixed 0.1 s (at least one step).
  int drum_steps() const;
  void validate() const;  // throws imagine::Error for parameters out of range

  // Quantises times to the grid and velocities to the bins (what a round trip preserves).
  Song quantise(const Song& song) const;
  // BOS + events (+ EOS when `eos`). Notes of the same onset are ordered by pitch.
  std::vector<int> encode(const Song& song, bool eos = true) const;
  // Tolerant of model output: unmatched NOTE_OFFs are ignored, notes still sounding at the
  // end are closed at the last time, tokens after EOS ignored. Throws only for ids out of range.
  Song decode(const std::vector<int>& tokens) const;

  nlohmann::json to_json() const;
  static EventVocab from_json(const nlohmann::json& j);  // validates; throws imagine::Error
};

}  // namespace imagine
