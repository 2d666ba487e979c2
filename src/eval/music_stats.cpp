// See music_stats.h.
#include "eval/music_stats.h"

#include <algorithm>
#include <cmath>

namespace imagine {

nlohmann::json MusicStats::to_json() const {
  return {{"pitch_classes", pitch_classes}, {"notes_per_second", notes_per_second}, {"polyphony", polyphony},
          {"pitch_range", pitch_range},     {"mean_pitch", mean_pitch},             {"pieces", pieces},
          {"notes", notes},                 {"seconds", seconds}};
}

MusicStats music_stats(const std::vector<Song>& songs) {
  MusicStats s;
  double pc_total = 0, pitch_sum = 0, range_sum = 0, sound_time = 0, note_time = 0;
  int64_t pitched = 0, ranged = 0;
  for (const Song& song : songs) {
    s.pieces++;
    s.notes += static_cast<int64_t>(song.notes.size());
    s.seconds += song.duration();
    int lo = 128, hi = -1;
    // Polyphony: a sweep over note starts and ends; time with >= 1 sounding note counts.
    std::vector<std::pair<double, int>> edges;
    for (const Note& n : song.notes) {
      if (n.drum) continue;
      s.pitch_classes[n.pitch % 12] += 1;
      pc_total += 1;
      pitch_sum += n.pitch;
      pitched++;
      lo = std::min(lo, n.pitch);
      hi = std::max(hi, n.pitch);
      edges.push_back({n.start, +1});
      edges.push_back({n.end, -1});
    }
    if (hi >= lo) {
      range_sum += hi - lo;
      ranged++;
    }
    std::sort(edges.begin(), edges.end());
    int sounding = 0;
    for (size_t i = 0; i + 1 < edges.size(); i++) {
      sounding += edges[i].second;
      const double dt = edges[i + 1].first - edges[i].first;
      if (sounding > 0) {
        sound_time += dt;
        note_time += dt * sounding;
      }
    }
  }
  if (pc_total > 0)
    for (auto& v : s.pitch_classes) v /= pc_total;
  s.notes_per_second = s.seconds > 0 ? static_cast<double>(s.notes) / s.seconds : 0;
  s.polyphony = sound_time > 0 ? note_time / sound_time : 0;
  s.pitch_range = ranged > 0 ? range_sum / ranged : 0;
  s.mean_pitch = pitched > 0 ? pitch_sum / pitched : 0;
  return s;
}

double pitch_class_distance(const MusicStats& a, const MusicStats& b) {
  double d = 0;
  for (int i = 0; i < 12; i++) d += std::fabs(a.pitch_classes[i] - b.pitch_classes[i]);
  return 0.5 * d;
}

}  // namespace imagine
