// Music generation: a new piece from the start marker, or the continuation of a primer
// (kept as it is), until the end marker, a length in seconds or a token budget.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "generate/token_generate.h"
#include "models/music_model.h"
#include "music/song.h"

namespace imagine {

struct MusicRequest {
  double seconds = 30;        // the piece lasts this long: EOS waits for it (0 = no limit)
  int64_t max_tokens = 4096;  // and at most this many new events
  SamplingParams sampling;
  uint64_t seed = 0;
  // Generated notes last at most this long (0 = off): sampling must close a note when it
  // reaches the cap. A small model sometimes opens notes it never closes; the decoder would
  // sustain them to the end of the piece. Default (from the CLI): default_note_cap(model).
  double max_note_seconds = 0;
  LogitHook logit_hook;  // e.g. the watermark's bias (see TokenSampling)
  // Asked after every event: a non-empty answer ends the piece there, with that stop reason
  // (the server's per-request timeout: "timeout"). Null: never.
  std::function<std::string()> stop;
};

struct MusicResult {
  Song song;           // primer + continuation
  int64_t tokens = 0;  // new events sampled
  int64_t primer_tokens = 0;
  std::string stop_reason;  // "end" (the model ended the piece), "seconds", "max_tokens" or stop()'s
  double seconds = 0;       // wall time
};

// `primer` may be empty (a new piece). The primer is quantised to the model's grid.
MusicResult generate_music(MusicModel& m, const Song& primer, const MusicRequest& req);

}  // namespace imagine
