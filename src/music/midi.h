// Standard MIDI Files (format 0 and 1) through libsmf: tempo changes, several tracks,
// program changes, the drum channel and velocities. Reading is fuzz-robust: a truncated or
// corrupt file throws imagine::Error with a hint (never crashes or hangs). Writing is a
// format-1 file (one track per instrument / drum kit) at 120 bpm, written atomically.
#pragma once
#include <string>

#include "music/song.h"

namespace imagine {

Song read_midi(const std::string& path);
Song parse_midi(const std::string& bytes, const std::string& what);  // bytes of a .mid file
bool is_midi(const std::string& bytes);                               // "MThd" header
std::string encode_midi(const Song& song);                            // .mid bytes
void write_midi(const std::string& path, const Song& song);           // atomic

}  // namespace imagine
