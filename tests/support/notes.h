// Building notes in music tests.
#pragma once
#include "music/song.h"

namespace imagine::testing {

inline Note make_note(int pitch, double start, double end, int velocity = 80, int program = 0,
                      bool drum = false) {
  Note n;
  n.pitch = pitch;
  n.start = start;
  n.end = end;
  n.velocity = velocity;
  n.program = program;
  n.drum = drum;
  return n;
}

}  // namespace imagine::testing
