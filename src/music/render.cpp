// Rendering a Song for people: FluidSynth plays it through a General MIDI soundfont into a
// 16-bit stereo WAV, and a piano roll draws it as a PNG.
//
// The synth runs offline (no audio driver): notes are scheduled by rendering in blocks of
// 64 frames, FluidSynth's own internal block size, so applying the events due within a
// block before rendering it costs no timing precision beyond what the synth has anyway.
#include "music/render.h"

#include <fluidsynth.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "image/image.h"

namespace imagine {
namespace {

constexpr int kBlockFrames = 64;
constexpr double kTailSeconds = 1.5;     // lets the last notes' release and the reverb ring out
constexpr double kMaxRenderSeconds = 1800;  // half an hour of 44.1 kHz float stereo is ~600 MiB
constexpr float kMaxPeak = 0.95f;           // louder mixes are scaled down to this, not clipped
const char* const kSoundfontHint = "install fluid-soundfont-gm or pass --soundfont FILE";

// Once per process, before the first synth: FluidSynth's logging silenced (it prints warnings
// and errors to stderr by default; every failure we care about comes back as a return code
// and becomes an Error), and one idle synth kept for the process's lifetime. Every synth
// initialises libinstpatch (its DLS loader) and every deleted one closes it again, and
// libinstpatch 1.1.6 leaks ~1 KB of GLib type data per init/close cycle (measured with
// valgrind: 2 synths 2.2 KB lost, 6 synths 6.5 KB); while one synth lives, later ones only
// take a reference, so a server rendering WAVs all day does not grow.
void init_fluidsynth() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int level = FLUID_PANIC; level <= FLUID_DBG; level++) {
      fluid_set_log_function(level, [](int, const char*, void*) {}, nullptr);
    }
    static fluid_settings_t* settings = new_fluid_settings();
    static fluid_synth_t* keep = settings ? new_fluid_synth(settings) : nullptr;  // never deleted (see above)
    (void)keep;
  });
}

struct SettingsDeleter {
  void operator()(fluid_settings_t* s) const { delete_fluid_settings(s); }
};
struct SynthDeleter {
  void operator()(fluid_synth_t* s) const { delete_fluid_synth(s); }
};

void put_le(std::string& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; i++) out.push_back(char((v >> (8 * i)) & 0xFF));
}

// The canonical 44-byte RIFF header of 16-bit PCM.
std::string wav_bytes(const std::vector<int16_t>& samples, int sample_rate, int channels) {
  const uint32_t data_bytes = uint32_t(samples.size() * 2);
  std::string out;
  out.reserve(44 + data_bytes);
  out += "RIFF";
  put_le(out, 36 + data_bytes, 4);
  out += "WAVEfmt ";
  put_le(out, 16, 4);                              // fmt chunk size
  put_le(out, 1, 2);                               // PCM
  put_le(out, uint32_t(channels), 2);
  put_le(out, uint32_t(sample_rate), 4);
  put_le(out, uint32_t(sample_rate * channels * 2), 4);  // byte rate
  put_le(out, uint32_t(channels * 2), 2);          // block align
  put_le(out, 16, 2);                              // bits per sample
  out += "data";
  put_le(out, data_bytes, 4);
  for (int16_t s : samples) put_le(out, uint16_t(s), 2);
  return out;
}

// MIDI channels for a song: drums on 9, distinct programs on 0..15 without 9 in program
// order. Past 15 programs channels are shared, and each note-on re-sends its program.
struct ChannelMap {
  std::map<int, int> channel;  // program -> channel
  bool shared = false;
  explicit ChannelMap(const Song& song) {
    for (const Note& n : song.notes) {
      if (!n.drum) channel[n.program] = 0;
    }
    int slot = 0;
    for (auto& [prog, ch] : channel) {
      ch = slot % 15 < 9 ? slot % 15 : slot % 15 + 1;
      slot++;
    }
    shared = channel.size() > 15;
  }
  int of(const Note& n) const { return n.drum ? 9 : channel.at(n.program); }
};

}  // namespace

std::string default_soundfont() {
  for (const char* path : {"/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return path;
  }
  return "";
}

std::string render_wav_bytes(const Song& song, RenderResult* out, const std::string& soundfont, int sample_rate) {
  const auto t0 = std::chrono::steady_clock::now();
  init_fluidsynth();
  IMAGINE_CHECK(sample_rate >= 8000 && sample_rate <= 192000, "use a sample rate such as 44100 or 48000",
                "sample rate ", sample_rate, " Hz is out of range");
  const std::string sf = soundfont.empty() ? default_soundfont() : soundfont;
  IMAGINE_CHECK(!sf.empty(), kSoundfontHint, "no General MIDI soundfont found");
  std::error_code ec;
  IMAGINE_CHECK(std::filesystem::is_regular_file(sf, ec), kSoundfontHint, "soundfont not found: ", sf);
  for (const Note& n : song.notes) {
    IMAGINE_CHECK(n.pitch >= 0 && n.pitch <= 127 && n.velocity >= 1 && n.velocity <= 127 &&
                      (n.drum || (n.program >= 0 && n.program <= 127)) && std::isfinite(n.start) &&
                      std::isfinite(n.end) && n.start >= 0 && n.end >= n.start,
                  "notes need pitch, velocity and program in MIDI range and 0 <= start <= end",
                  "cannot render an invalid note (pitch ", n.pitch, ", velocity ", n.velocity, ", ", n.start, "-",
                  n.end, " s)");
  }
  const double song_seconds = song.duration();
  IMAGINE_CHECK(song_seconds <= kMaxRenderSeconds, "render a shorter excerpt", "the song lasts ", song_seconds,
                " s; rendering is limited to ", kMaxRenderSeconds, " s");

  std::unique_ptr<fluid_settings_t, SettingsDeleter> settings(new_fluid_settings());
  IMAGINE_CHECK(settings != nullptr, "", "FluidSynth could not create its settings");
  fluid_settings_setnum(settings.get(), "synth.sample-rate", double(sample_rate));
  fluid_settings_setnum(settings.get(), "synth.gain", 0.5);  // GM mixes of many voices clip at 1.0
  fluid_settings_setint(settings.get(), "synth.reverb.active", 1);
  fluid_settings_setint(settings.get(), "synth.chorus.active", 0);
  fluid_settings_setint(settings.get(), "synth.polyphony", 256);
  fluid_settings_setint(settings.get(), "synth.cpu-cores", 1);
  // One thread drives the synth, so its API lock is pure overhead; and the soundfont need
  // not be pinned in RAM for an offline render.
  fluid_settings_setint(settings.get(), "synth.threadsafe-api", 0);
  fluid_settings_setint(settings.get(), "synth.lock-memory", 0);
  std::unique_ptr<fluid_synth_t, SynthDeleter> synth(new_fluid_synth(settings.get()));
  IMAGINE_CHECK(synth != nullptr, "", "FluidSynth could not create a synthesizer");
  // Checked before loading: FluidSynth hands files it does not recognise to libinstpatch,
  // which complains on stderr through glib before failing.
  IMAGINE_CHECK(fluid_is_soundfont(sf.c_str()), std::string("the file is not a SoundFont 2 (.sf2); ") + kSoundfontHint,
                "not a soundfont: ", sf);
  IMAGINE_CHECK(fluid_synth_sfload(synth.get(), sf.c_str(), 1) != FLUID_FAILED,
                std::string("check that the file is a SoundFont 2 (.sf2); ") + kSoundfontHint,
                "FluidSynth could not load the soundfont ", sf);

  // Note events in sample time; at one sample, note-offs go first so a re-struck key sounds.
  struct Event {
    int64_t frame;
    int order;  // 0 off, 1 program change, 2 on
    int channel, key, value;
  };
  const ChannelMap channels(song);
  std::vector<Event> events;
  events.reserve(song.notes.size() * 2);
  for (const Note& n : song.notes) {
    const int ch = channels.of(n);
    const int64_t on = std::llround(n.start * sample_rate);
    const int64_t off = std::max(on + 1, int64_t(std::llround(n.end * sample_rate)));
    if (channels.shared) events.push_back({on, 1, ch, 0, n.program});
    events.push_back({on, 2, ch, n.pitch, n.velocity});
    events.push_back({off, 0, ch, n.pitch, 0});
  }
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.frame != b.frame ? a.frame < b.frame : a.order < b.order;
  });
  for (const auto& [prog, ch] : channels.channel) fluid_synth_program_change(synth.get(), ch, prog);
  fluid_synth_program_change(synth.get(), 9, 0);  // GM drum channel: FluidSynth picks bank 128

  // Rendered as float so that a loud passage can be scaled down afterwards instead of
  // clipping: with many voices a GM mix can pass full scale at any fixed gain.
  const int64_t total = std::llround((song_seconds + kTailSeconds) * sample_rate);
  std::vector<float> mix(size_t(total) * 2);
  size_t next = 0;
  for (int64_t frame = 0; frame < total; frame += kBlockFrames) {
    const int len = int(std::min<int64_t>(kBlockFrames, total - frame));
    for (; next < events.size() && events[next].frame < frame + len; next++) {
      const Event& e = events[next];
      if (e.order == 0) fluid_synth_noteoff(synth.get(), e.channel, e.key);
      else if (e.order == 1) fluid_synth_program_change(synth.get(), e.channel, e.value);
      else fluid_synth_noteon(synth.get(), e.channel, e.key, e.value);
    }
    float* out = mix.data() + frame * 2;
    IMAGINE_CHECK(fluid_synth_write_float(synth.get(), len, out, 0, 2, out, 1, 2) == FLUID_OK, "",
                  "FluidSynth failed while rendering");
  }

  float loudest = 0;
  for (float v : mix) loudest = std::max(loudest, std::abs(v));
  const float scale = 32767.0f * (loudest > kMaxPeak ? kMaxPeak / loudest : 1.0f);
  std::vector<int16_t> samples(mix.size());
  int peak = 0;
  for (size_t i = 0; i < mix.size(); i++) {
    samples[i] = int16_t(std::lround(std::clamp(mix[i] * scale, -32767.0f, 32767.0f)));
    peak = std::max(peak, std::abs(int(samples[i])));
  }
  mix = std::vector<float>();  // give the float copy back before building the file's bytes
  std::string bytes = wav_bytes(samples, sample_rate, 2);
  if (out) {
    out->seconds = double(total) / sample_rate;
    out->peak = peak / 32768.0;
    out->render_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return bytes;
}

RenderResult render_wav(const Song& song, const std::string& wav_path, const std::string& soundfont,
                        int sample_rate) {
  RenderResult result;
  const std::string bytes = render_wav_bytes(song, &result, soundfont, sample_rate);
  write_file_atomic(wav_path, bytes);
  return result;
}

void write_piano_roll(const Song& song, const std::string& png_path, int pixels_per_second) {
  write_png(png_path, piano_roll(song, pixels_per_second), {{"Software", "imagine"}});
}

Image piano_roll(const Song& song, int pixels_per_second) {
  IMAGINE_CHECK(pixels_per_second > 0, "pass a positive number of pixels per second", "piano roll: ",
                pixels_per_second, " pixels per second");
  constexpr int kMargin = 8;
  constexpr int kMaxWidth = 8000;
  constexpr int kRowPixels = 4;  // per semitone; notes fill 3 so neighbours stay apart

  const double duration = song.duration();
  IMAGINE_CHECK(std::isfinite(duration) && duration >= 0, "note times must be finite seconds",
                "piano roll: the song's duration is ", duration);
  // Long pieces are squeezed to at most kMaxWidth pixels rather than refused.
  double pps = pixels_per_second;
  if (duration * pps > kMaxWidth - 2 * kMargin) pps = (kMaxWidth - 2 * kMargin) / duration;
  const int width = 2 * kMargin + std::max(1, int(std::ceil(duration * pps)));

  int lo = 127, hi = 0;
  for (const Note& n : song.notes) {
    lo = std::min(lo, std::clamp(n.pitch, 0, 127));
    hi = std::max(hi, std::clamp(n.pitch, 0, 127));
  }
  if (lo > hi) lo = 60, hi = 72;  // no notes: an empty octave
  const int height = 2 * kMargin + (hi - lo + 1) * kRowPixels;

  Image img(width, height, 3);
  auto fill = [&](int x0, int y0, int x1, int y1, int r, int g, int b) {
    x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, width), y1 = std::min(y1, height);
    for (int y = y0; y < y1; y++) {
      for (int x = x0; x < x1; x++) {
        img.at(x, y, 0) = uint8_t(r), img.at(x, y, 1) = uint8_t(g), img.at(x, y, 2) = uint8_t(b);
      }
    }
  };
  auto row_top = [&](int pitch) { return kMargin + (hi - pitch) * kRowPixels; };
  fill(0, 0, width, height, 18, 18, 24);
  // A faint line under every C marks the octaves.
  for (int p = lo; p <= hi; p++) {
    if (p % 12 == 0) fill(0, row_top(p) + kRowPixels - 1, width, row_top(p) + kRowPixels, 48, 48, 62);
  }

  // One colour per General MIDI family (8 programs each: pianos, chromatic percussion,
  // organs, guitars, basses, strings, ensembles, brass, reeds, pipes, leads, pads, ...).
  static const uint8_t kPalette[16][3] = {
      {240, 200, 90},  {120, 220, 220}, {230, 130, 90},  {150, 220, 110}, {110, 150, 240}, {220, 110, 160},
      {190, 150, 240}, {245, 170, 60},  {100, 200, 160}, {170, 230, 240}, {240, 100, 100}, {150, 170, 255},
      {210, 210, 130}, {200, 140, 110}, {120, 240, 180}, {240, 150, 210}};
  for (const Note& n : song.notes) {
    const double brightness = 0.35 + 0.65 * std::clamp(n.velocity, 1, 127) / 127.0;
    int r = 170, g = 170, b = 170;  // drums
    if (!n.drum) {
      const uint8_t* c = kPalette[(std::clamp(n.program, 0, 127) / 8) % 16];
      r = c[0], g = c[1], b = c[2];
    }
    if (!std::isfinite(n.start) || !std::isfinite(n.end)) continue;
    // Clamped as doubles first: a stray time must not overflow the int conversion.
    auto px = [&](double v) { return kMargin + int(std::clamp(v, -1.0, double(width))); };
    const int x0 = px(std::floor(n.start * pps));
    const int x1 = std::max(x0 + 1, px(std::ceil(n.end * pps)));
    const int y0 = row_top(std::clamp(n.pitch, 0, 127));
    fill(x0, y0, x1, y0 + kRowPixels - 1, int(r * brightness), int(g * brightness), int(b * brightness));
  }
  return img;
}

}  // namespace imagine
