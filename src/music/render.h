// Listening and looking: MIDI -> WAV through FluidSynth with a General MIDI soundfont, and a
// piano-roll PNG. Both are for people; the model never sees them.
#pragma once
#include <string>

#include "image/image.h"
#include "music/song.h"

namespace imagine {

// The General MIDI soundfont Debian's fluid-soundfont-gm installs; "" when missing.
std::string default_soundfont();

struct RenderResult {
  double seconds = 0;        // audio length written
  double render_seconds = 0; // wall time spent rendering
  double peak = 0;           // largest absolute sample, 0..1 (0 = silence)
};
// Renders `song` (16-bit stereo, 44.1 kHz, with a short release tail) to `wav_path`
// atomically. Throws imagine::Error when the soundfont is missing or unreadable.
RenderResult render_wav(const Song& song, const std::string& wav_path, const std::string& soundfont = "",
                        int sample_rate = 44100);

// The same, returning the WAV file's bytes instead of writing them (for the provenance
// layer, which adds its chunks before the atomic write). `out` receives the figures.
std::string render_wav_bytes(const Song& song, RenderResult* out, const std::string& soundfont = "",
                             int sample_rate = 44100);

// A piano roll: time left to right (`pixels_per_second`), pitch bottom to top over the
// piece's range, one colour per instrument (drums grey), velocity as brightness.
void write_piano_roll(const Song& song, const std::string& png_path, int pixels_per_second = 50);
Image piano_roll(const Song& song, int pixels_per_second = 50);

}  // namespace imagine
