// Performance-event encoding: Song <-> token ids on a fixed time grid. Everything the
// encoder cannot express (sub-step timing, fine velocities, drum lengths, which of two
// overlapping same-pitch notes ends first) is settled by quantise(), so that
// decode(encode(song)) == quantise(song) exactly. No tensors and no MIDI here.
#include "music/events.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <tuple>

#include "core/error.h"

namespace imagine {
namespace {

const char* kKind = "performance-events-v1";
const int kDefaultVelocity = 80;  // before any VELOCITY token (model output may omit it)

// A note on the grid: integer steps, so comparisons and sorting are exact.
struct GridNote {
  int pitch = 0;
  int velocity = 0;
  int program = 0;
  bool drum = false;
  int64_t start = 0;
  int64_t end = 0;
};

double to_seconds(int64_t step, double step_seconds) { return double(step) * step_seconds; }

Song to_song(const std::vector<GridNote>& grid, double step_seconds) {
  Song song;
  song.notes.reserve(grid.size());
  for (const GridNote& g : grid) {
    Note n;
    n.pitch = g.pitch;
    n.velocity = g.velocity;
    n.program = g.program;
    n.drum = g.drum;
    n.start = to_seconds(g.start, step_seconds);
    n.end = to_seconds(g.end, step_seconds);
    song.notes.push_back(n);
  }
  song.sort();
  return song;
}

}  // namespace

void EventVocab::validate() const {
  const char* hint = "check the event vocabulary (vocab.json in the model directory)";
  IMAGINE_CHECK(std::isfinite(step_seconds) && step_seconds > 0.001 && step_seconds <= 1, hint,
                "event vocab: step_seconds must be in (0.001, 1], got ", step_seconds);
  IMAGINE_CHECK(max_shift_steps >= 1 && max_shift_steps <= 10000, hint,
                "event vocab: max_shift_steps must be in 1..10000, got ", max_shift_steps);
  IMAGINE_CHECK(velocity_bins >= 1 && velocity_bins <= 128, hint,
                "event vocab: velocity_bins must be in 1..128, got ", velocity_bins);
}

int EventVocab::size() const {
  return 2 + 128 + 128 + max_shift_steps + velocity_bins + (programs ? 128 : 0) + (drums ? 128 : 0);
}

int EventVocab::velocity_bin(int v) const {
  v = std::clamp(v, 1, 127);
  return int((int64_t(v) - 1) * velocity_bins / 127);
}

int EventVocab::bin_velocity(int bin) const {
  bin = std::clamp(bin, 0, velocity_bins - 1);
  // Bin b holds the velocities v with floor((v-1) * bins / 127) == b, i.e. from
  // 1 + ceil(127 b / bins) up to one below the next bin's lower edge.
  auto lower = [&](int b) { return 1 + int((int64_t(127) * b + velocity_bins - 1) / velocity_bins); };
  int lo = lower(bin);
  int hi = lower(bin + 1) - 1;
  if (hi < lo) return std::clamp(lo, 1, 127);  // only the last of 128 bins is empty
  return std::clamp(lo + (hi - lo) / 2, 1, 127);
}

int EventVocab::drum_steps() const { return std::max(1, int(std::lround(0.1 / step_seconds))); }

std::string EventVocab::describe(int token) const {
  if (token == bos()) return "BOS";
  if (token == eos()) return "EOS";
  if (token < 0 || token >= size()) return str("INVALID(", token, ")");
  int t = token - 2;
  if (t < 128) return str("NOTE_ON(", t, ")");
  t -= 128;
  if (t < 128) return str("NOTE_OFF(", t, ")");
  t -= 128;
  if (t < max_shift_steps) return str("TIME_SHIFT(", t + 1, ")");
  t -= max_shift_steps;
  if (t < velocity_bins) return str("VELOCITY(", t, ")");
  t -= velocity_bins;
  if (programs) {
    if (t < 128) return str("PROGRAM(", t, ")");
    t -= 128;
  }
  return str("DRUM_ON(", t, ")");
}

Song EventVocab::quantise(const Song& song) const {
  validate();
  std::vector<GridNote> grid;
  grid.reserve(song.notes.size());
  for (const Note& n : song.notes) {
    IMAGINE_CHECK(n.pitch >= 0 && n.pitch <= 127, "MIDI pitches are 0..127", "note pitch ", n.pitch,
                  " out of range");
    IMAGINE_CHECK(n.program >= 0 && n.program <= 127, "General MIDI programs are 0..127", "note program ",
                  n.program, " out of range");
    IMAGINE_CHECK(std::isfinite(n.start) && std::isfinite(n.end), "", "note with a non-finite time");
    if (n.drum && !drums) continue;  // a vocabulary without DRUM_ON cannot say them
    GridNote g;
    g.pitch = n.pitch;
    g.drum = n.drum;
    g.velocity = bin_velocity(velocity_bin(n.velocity));
    g.program = (n.drum || !programs) ? 0 : n.program;
    g.start = std::max<int64_t>(0, std::llround(n.start / step_seconds));
    g.end = g.drum ? g.start + drum_steps() : std::llround(n.end / step_seconds);
    if (g.end <= g.start) g.end = g.start + 1;  // zero-length after rounding: one step
    grid.push_back(g);
  }

  // NOTE_OFF names only a pitch, and decode() closes the oldest open note of that pitch.
  // When same-pitch notes overlap, hand their end times out in that order: the k-th note to
  // start (ties by program, velocity, the order encode() emits them) gets the k-th end. The
  // k-th smallest end is still after the k-th smallest start, so no note becomes empty.
  std::vector<std::vector<size_t>> by_pitch(128);
  for (size_t i = 0; i < grid.size(); i++) {
    if (!grid[i].drum) by_pitch[grid[i].pitch].push_back(i);
  }
  for (std::vector<size_t>& idx : by_pitch) {
    if (idx.size() < 2) continue;
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
      return std::tie(grid[a].start, grid[a].program, grid[a].velocity) <
             std::tie(grid[b].start, grid[b].program, grid[b].velocity);
    });
    std::vector<int64_t> ends;
    for (size_t i : idx) ends.push_back(grid[i].end);
    std::sort(ends.begin(), ends.end());
    for (size_t k = 0; k < idx.size(); k++) grid[idx[k]].end = ends[k];
  }

  Song out = to_song(grid, step_seconds);
  out.tempos = song.tempos;
  out.name = song.name;
  return out;
}

std::vector<int> EventVocab::encode(const Song& song, bool eos_token) const {
  Song q = quantise(song);

  struct Event {
    int64_t step;
    int kind;  // 0 = note-off, 1 = note-on / drum hit: offs first so a repeated pitch re-strikes
    const Note* note;
  };
  std::vector<Event> events;
  events.reserve(q.notes.size() * 2);
  for (const Note& n : q.notes) {
    events.push_back({std::llround(n.start / step_seconds), 1, &n});
    if (!n.drum) events.push_back({std::llround(n.end / step_seconds), 0, &n});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    const Note& x = *a.note;
    const Note& y = *b.note;
    return std::tie(a.step, a.kind, x.pitch, x.drum, x.program, x.velocity) <
           std::tie(b.step, b.kind, y.pitch, y.drum, y.program, y.velocity);
  });

  std::vector<int> tokens{bos()};
  int64_t now = 0;
  int cur_velocity = -1;  // unknown: the first note always states its velocity
  int cur_program = 0;    // decode() starts at program 0, so piano needs no PROGRAM token
  for (const Event& e : events) {
    for (int64_t gap = e.step - now; gap > 0;) {
      int shift = int(std::min<int64_t>(gap, max_shift_steps));
      tokens.push_back(time_shift(shift));
      gap -= shift;
    }
    now = e.step;
    const Note& n = *e.note;
    if (e.kind == 0) {
      tokens.push_back(note_off(n.pitch));
      continue;
    }
    if (!n.drum && programs && n.program != cur_program) {
      tokens.push_back(program(n.program));
      cur_program = n.program;
    }
    int bin = velocity_bin(n.velocity);
    if (bin != cur_velocity) {
      tokens.push_back(velocity(bin));
      cur_velocity = bin;
    }
    tokens.push_back(n.drum ? drum_on(n.pitch) : note_on(n.pitch));
  }
  if (eos_token) tokens.push_back(eos());
  return tokens;
}

Song EventVocab::decode(const std::vector<int>& tokens) const {
  validate();
  const int n_tokens = size();
  std::vector<GridNote> notes;
  std::vector<std::deque<size_t>> open(128);  // per pitch, oldest first
  int64_t now = 0;
  int cur_velocity = bin_velocity(velocity_bin(kDefaultVelocity));
  int cur_program = 0;

  const int shift0 = time_shift(1);
  const int velocity0 = velocity(0);
  const int program0 = 258 + max_shift_steps + velocity_bins;
  const int drum0 = program0 + (programs ? 128 : 0);

  for (int t : tokens) {
    IMAGINE_CHECK(t >= 0 && t < n_tokens, "the tokens do not belong to this vocabulary (check the model)",
                  "event token ", t, " out of range 0..", n_tokens - 1);
    if (t == eos()) break;
    if (t == bos()) continue;
    if (t < 130) {
      GridNote g;
      g.pitch = t - 2;
      g.velocity = cur_velocity;
      g.program = cur_program;
      g.start = now;
      g.end = -1;  // still sounding
      open[g.pitch].push_back(notes.size());
      notes.push_back(g);
    } else if (t < shift0) {
      std::deque<size_t>& q = open[t - 130];
      if (q.empty()) continue;  // an unmatched NOTE_OFF says nothing
      GridNote& g = notes[q.front()];
      q.pop_front();
      g.end = std::max(now, g.start + 1);
    } else if (t < velocity0) {
      now += t - shift0 + 1;
    } else if (t < program0) {
      cur_velocity = bin_velocity(t - velocity0);
    } else if (t < drum0) {
      cur_program = t - program0;
    } else {
      GridNote g;
      g.pitch = t - drum0;
      g.drum = true;
      g.velocity = cur_velocity;
      g.start = now;
      g.end = now + drum_steps();
      notes.push_back(g);
    }
  }
  for (GridNote& g : notes) {
    if (g.end < 0) g.end = std::max(now, g.start + 1);
  }
  return to_song(notes, step_seconds);
}

EventGrammar::EventGrammar(const EventVocab& vocab) : v_(vocab) {
  v_.validate();
  for (int p = 0; p < 128; p++) {
    open_start_[p] = -1;
    open_capped_[p] = false;
  }
}

void EventGrammar::push(int t) {
  const int shift0 = v_.time_shift(1), velocity0 = v_.velocity(0), program0 = v_.program(0), drum0 = v_.drum_on(0);
  partial_shift_ = false;
  if (t == v_.bos() || t == v_.eos() || t < 0 || t >= v_.size()) {
    last_ = t;
    return;
  }
  if (t < 130) {  // NOTE_ON
    const int p = t - 2;
    open_start_[p] = now_;
    open_capped_[p] = cap_ > 0;
    onsets_++;
    step_has_on_ = true;
    last_on_key_ = p * 2;
    program_pending_ = velocity_pending_ = false;
  } else if (t < shift0) {  // NOTE_OFF
    const int p = t - 130;
    open_start_[p] = -1;
    open_capped_[p] = false;
    last_off_ = p;
  } else if (t < velocity0) {  // TIME_SHIFT
    const int k = t - shift0 + 1;
    now_ += k;
    partial_shift_ = k < v_.max_shift_steps;
    step_has_on_ = false;
    last_off_ = -1;
    last_on_key_ = -1;
  } else if (t < program0) {
    velocity_ = t - velocity0;
    velocity_pending_ = true;
  } else if (t < drum0) {
    program_ = t - program0;
    program_pending_ = true;
  } else {  // DRUM_ON
    onsets_++;
    step_has_on_ = true;
    last_on_key_ = (t - drum0) * 2 + 1;
    program_pending_ = velocity_pending_ = false;
  }
  last_ = t;
}

int64_t EventGrammar::shift_room() const {
  int64_t room = INT64_MAX;
  for (int p = 0; p < 128; p++)
    if (open_start_[p] >= 0 && open_capped_[p]) room = std::min(room, open_start_[p] + cap_ - now_);
  return room;
}

int EventGrammar::min_due_pitch() const {
  for (int p = 0; p < 128; p++)
    if (open_start_[p] >= 0 && open_capped_[p] && open_start_[p] + cap_ <= now_) return p;
  return 128;
}

bool EventGrammar::onset_possible(bool drum_ok, bool note_ok) const {
  for (int p = 0; p < 128; p++) {
    if (note_ok && open_start_[p] < 0 && p * 2 > last_on_key_) return true;
    if (drum_ok && p * 2 + 1 > last_on_key_) return true;
  }
  return false;
}

bool EventGrammar::allowed(int t) const {
  const int shift0 = v_.time_shift(1), velocity0 = v_.velocity(0), program0 = v_.program(0), drum0 = v_.drum_on(0);
  if (t < 0 || t >= v_.size() || t == v_.bos()) return false;
  const bool pending = program_pending_ || velocity_pending_;
  const bool due = min_due_pitch() < 128;  // a capped note must close in this step
  if (t == v_.eos()) {
    if (pending || partial_shift_ || (last_ >= shift0 && last_ < velocity0)) return false;
    for (int p = 0; p < 128; p++)
      if (open_start_[p] >= 0) return false;
    return true;
  }
  if (t < 130) {  // NOTE_ON
    const int p = t - 2;
    return !due && velocity_ >= 0 && open_start_[p] < 0 && p * 2 > last_on_key_;
  }
  if (t < shift0) {  // NOTE_OFF
    const int p = t - 130;
    return !pending && !step_has_on_ && open_start_[p] >= 0 && open_start_[p] < now_ && p > last_off_ &&
           p <= min_due_pitch();
  }
  if (t < velocity0) {  // TIME_SHIFT
    const int k = t - shift0 + 1;
    return !pending && !partial_shift_ && !due && k <= shift_room();
  }
  if (t < program0) {  // VELOCITY
    const int bin = t - velocity0;
    return !due && !velocity_pending_ && bin != velocity_ && onset_possible(!program_pending_, true);
  }
  if (t < drum0) {  // PROGRAM
    const int p = t - program0;
    return !due && !pending && p != program_ && onset_possible(false, true);
  }
  // DRUM_ON
  const int k = t - drum0;
  return !due && !program_pending_ && velocity_ >= 0 && k * 2 + 1 > last_on_key_;
}

void EventGrammar::mask(std::vector<float>& logits) const {
  const int n = std::min<int>(static_cast<int>(logits.size()), v_.size());
  std::vector<char> ok(static_cast<size_t>(n));
  bool any = false;
  for (int t = 0; t < n; t++) any |= (ok[t] = allowed(t)) != 0;
  if (!any) return;  // cannot happen by construction; never leave the sampler nothing to draw
  for (int t = 0; t < n; t++)
    if (!ok[t]) logits[t] = -std::numeric_limits<float>::infinity();
}

nlohmann::json EventVocab::to_json() const {
  return nlohmann::json{{"kind", kKind},
                        {"step_seconds", step_seconds},
                        {"max_shift_steps", max_shift_steps},
                        {"velocity_bins", velocity_bins},
                        {"programs", programs},
                        {"drums", drums}};
}

EventVocab EventVocab::from_json(const nlohmann::json& j) {
  const std::string hint = "the event vocabulary (vocab.json) is damaged or from another version; retrain";
  IMAGINE_CHECK(j.is_object(), hint, "event vocab: expected a JSON object");
  IMAGINE_CHECK(j.contains("kind") && j["kind"].is_string() && j["kind"].get<std::string>() == kKind, hint,
                "event vocab: \"kind\" must be \"", kKind, "\"");
  // A misspelt key would otherwise silently fall back to a default.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    IMAGINE_CHECK(k == "kind" || k == "step_seconds" || k == "max_shift_steps" || k == "velocity_bins" ||
                      k == "programs" || k == "drums",
                  hint, "event vocab: unknown key \"", k, "\"");
  }
  auto need = [&](const char* key, bool ok) {
    IMAGINE_CHECK(j.contains(key), hint, "event vocab: missing \"", key, "\"");
    IMAGINE_CHECK(ok, hint, "event vocab: \"", key, "\" has the wrong type");
  };
  need("step_seconds", j.contains("step_seconds") && j["step_seconds"].is_number());
  need("max_shift_steps", j.contains("max_shift_steps") && j["max_shift_steps"].is_number_integer());
  need("velocity_bins", j.contains("velocity_bins") && j["velocity_bins"].is_number_integer());
  need("programs", j.contains("programs") && j["programs"].is_boolean());
  need("drums", j.contains("drums") && j["drums"].is_boolean());

  // Read the integers wide so a huge value is reported, not wrapped into range.
  int64_t shift = j["max_shift_steps"].get<int64_t>();
  int64_t bins = j["velocity_bins"].get<int64_t>();
  IMAGINE_CHECK(shift >= 1 && shift <= 10000, hint, "event vocab: max_shift_steps must be in 1..10000, got ",
                shift);
  IMAGINE_CHECK(bins >= 1 && bins <= 128, hint, "event vocab: velocity_bins must be in 1..128, got ", bins);
  EventVocab v;
  v.step_seconds = j["step_seconds"].get<double>();
  v.max_shift_steps = int(shift);
  v.velocity_bins = int(bins);
  v.programs = j["programs"].get<bool>();
  v.drums = j["drums"].get<bool>();
  v.validate();
  return v;
}

}  // namespace imagine
