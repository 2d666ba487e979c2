// Music datasets: the JSB chorales (their own train/valid/test split) or a folder of MIDI
// files (recursive; unreadable files skipped and counted with the reason; 10% of the files
// held out, chosen by a hash of their path). Augmentation (transposition, tempo stretch)
// turns every training piece into several encoded variants.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/skipped.h"
#include "music/events.h"
#include "music/song.h"

namespace imagine {

// The bundled default: Debian's openttd-openmsx MIDI songs.
constexpr const char* kDefaultMusicData = "/usr/share/games/openttd/baseset/openmsx";

struct MusicData {
  std::vector<Song> train, valid, test;  // test: chorales only (MIDI folders have none)
  std::string format;                    // "chorales" or "midi"
  std::string path;
  double grid_seconds = 0;               // the chorales' time step (0 for MIDI)
  int64_t files_used = 0;
  std::vector<SkippedFile> skipped;
};

MusicData load_music_data(const std::string& path, double valid_fraction = 0.1);

struct Augmentation {
  int transpose = 3;          // every shift in [-transpose, +transpose] semitones (drums stay)
  double stretch = 0.1;       // tempo factors 1 - stretch, 1, 1 + stretch (0 = off)
};

// The q-quantile (0..1) of the lengths of the pitched notes of `songs`, in seconds (0 if none).
double note_length_quantile(const std::vector<Song>& songs, double q);

// Token stream of `songs` (each BOS ... EOS), every augmented variant of every song when
// `aug` is given. Variants that would push a pitch outside 0..127 are left out.
std::vector<int64_t> encode_songs(const std::vector<Song>& songs, const EventVocab& vocab,
                                  const Augmentation* aug = nullptr);

}  // namespace imagine
