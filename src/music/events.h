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

// The canonical form of an event stream: exactly the streams EventVocab::encode writes, so
// that decode then encode gives back the same tokens. Sampling under this grammar makes a
// generated piece re-encode, after a MIDI write and read, to the very tokens that were
// sampled (the token watermark is detected on them). Within one time step encode writes
// the NOTE_OFFs first (ascending pitch), then each onset as [PROGRAM] [VELOCITY] NOTE_ON or
// DRUM_ON in ascending (pitch, drum) order, PROGRAM / VELOCITY only when they change; gaps
// are TIME_SHIFTs of max_shift_steps and a last shorter one. The grammar also keeps notes
// decodable as written: a key does not start while it sounds, a note lasts at least one
// step, every note is closed before EOS, and (optionally) no new note lasts longer than a
// cap: the stream must close it when it reaches the cap.
class EventGrammar {
 public:
  explicit EventGrammar(const EventVocab& vocab);
  // Notes started from now on are closed after at most this many steps (0 = no cap).
  void set_note_cap(int64_t steps) { cap_ = steps; }
  void push(int token);             // the next token of the stream (any token: state follows decode)
  bool allowed(int token) const;    // would `token` keep the stream canonical?
  void mask(std::vector<float>& logits) const;  // -inf for every token not allowed
  int64_t onsets() const { return onsets_; }  // NOTE_ON and DRUM_ON tokens pushed so far

 private:
  EventVocab v_;
  int64_t now_ = 0;
  int64_t open_start_[128];   // step the sounding note of each pitch started, -1 if none
  bool open_capped_[128];     // started after set_note_cap
  int velocity_ = -1;         // bin in force; -1 before the first VELOCITY (encode states it first)
  int program_ = 0;
  int last_ = -1;             // previous token
  bool partial_shift_ = false;  // previous token was a TIME_SHIFT shorter than the longest
  bool program_pending_ = false, velocity_pending_ = false;
  bool step_has_on_ = false;  // an onset was written in this step
  int last_off_ = -1;         // highest NOTE_OFF pitch of this step
  int last_on_key_ = -1;      // (pitch * 2 + drum) of this step's last onset
  int64_t cap_ = 0;
  int64_t onsets_ = 0;

  int64_t shift_room() const;   // steps the next shift may take before a capped note overruns (INT64_MAX: no limit)
  int min_due_pitch() const;    // lowest pitch of a capped note that must close now, 128 if none
  bool onset_possible(bool drum_ok, bool note_ok) const;
};

}  // namespace imagine
