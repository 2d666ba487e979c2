// The JSB chorales (../shared/data/jsb-chorales/*.json): 382 four-voice chorales with the
// standard train/valid/test split (229/76/77). Each chorale is a list of time steps, each
// step a list of sounding MIDI pitches (up to four voices). As songs: one note per held
// pitch (a pitch repeated on consecutive steps is held), `step_seconds` per step (0 = by the
// file: a 16th note = 0.125 s, a quarter = 0.5 s, i.e. 120 bpm), Church Organ (program 19)
// by default.
#pragma once
#include <string>
#include <vector>

#include "music/song.h"

namespace imagine {

struct Chorales {
  std::vector<Song> train, valid, test;
};

// path: a chorale JSON file (e.g. jsb-chorales-16th.json) or the folder holding them (the
// 16th-note file is preferred). Throws imagine::Error for missing/invalid files.
Chorales load_chorales(const std::string& path, double step_seconds = 0, int program = 19);
bool looks_like_chorales(const std::string& path);  // a .json file / folder with the splits

}  // namespace imagine
