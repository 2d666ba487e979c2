// Musical statistics of a set of pieces, to compare generated music with the training data:
// the pitch-class histogram (distance = total variation, 0 = same, 1 = disjoint), note
// density (notes per second), polyphony (mean sounding notes while anything sounds) and
// pitch range (mean over pieces of highest minus lowest pitch). Drums are left out of the
// pitch statistics.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "music/song.h"

namespace imagine {

struct MusicStats {
  std::array<double, 12> pitch_classes{};  // normalised histogram, C = 0
  double notes_per_second = 0;
  double polyphony = 0;
  double pitch_range = 0;
  double mean_pitch = 0;
  int64_t pieces = 0, notes = 0;
  double seconds = 0;
  nlohmann::json to_json() const;
};

MusicStats music_stats(const std::vector<Song>& songs);
double pitch_class_distance(const MusicStats& a, const MusicStats& b);

}  // namespace imagine
