// Song helpers: the ordering every converter and test relies on.
#include "music/song.h"

#include <algorithm>
#include <tuple>

namespace imagine {

double Song::duration() const {
  // Sorted by start, the last note need not end last (a long pedal under short notes).
  double end = 0;
  for (const Note& n : notes) end = std::max(end, n.end);
  return end;
}

void Song::sort() {
  // Beyond (start, pitch, end) the remaining fields break ties so that the order is total:
  // two songs with the same notes then compare equal element by element.
  std::sort(notes.begin(), notes.end(), [](const Note& a, const Note& b) {
    return std::tie(a.start, a.pitch, a.end, a.drum, a.program, a.velocity) <
           std::tie(b.start, b.pitch, b.end, b.drum, b.program, b.velocity);
  });
}

}  // namespace imagine
