// The music verbs: `imagine generate|continue|render|roll music`, and the music side of
// `imagine eval` / `imagine info`.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/options.h"
#include "core/runtime.h"
#include "data/music_dataset.h"
#include "data/token_dataset.h"
#include "eval/music_stats.h"
#include "generate/music_generate.h"
#include "models/music_model.h"
#include "music/midi.h"
#include "music/render.h"
#include "provenance/carriers.h"
#include "provenance/output.h"
#include "serve/verbs.h"

namespace fs = std::filesystem;

namespace imagine::cli {
namespace {

OptionTable& sampling(OptionTable& t) {
  SamplingParams d;
  t.text("model", "", "model directory written by `imagine train music`", "DIR")
      .real("seconds", 30, 0, 3600, "length of the piece: the model's end marker waits for it (0 = until the model ends it)")
      .integer("max-tokens", 4096, 1, 1e7, "new events at most")
      .real("temperature", 1.0, 0.0, 100.0, "softmax temperature; 0 = greedy")
      .integer("top-k", 0, 0, 1e9, "keep the k most likely events (0 = off)")
      .real("top-p", 0.95, 0.0, 1.0, "nucleus: smallest set with this probability (1 = off)")
      .real("min-p", 0.0, 0.0, 1.0, "drop events below min-p x p(most likely) (0 = off)")
      .integer("seed", -1, -1, 9.2e18, "random seed (-1 = random; the seed used is printed)")
      .real("max-note-seconds", -1, -1, 3600,
            "cut generated notes longer than this (-1 = the training data's 99th percentile; 0 = off)")
      .text("soundfont", "", "General MIDI soundfont for --wav (default: Debian's FluidR3_GM)", "FILE")
      .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
      .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
      .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
      .flag("quiet", false, "no progress lines on stderr");
  copy_check_options(t);
  return output_options(t, true);
}

MusicRequest request(const Options& o, const MusicModel& m, uint64_t seed) {
  MusicRequest r;
  r.max_note_seconds = o.f("max-note-seconds") >= 0 ? o.f("max-note-seconds") : default_note_cap(m);
  r.seconds = o.f("seconds");
  r.max_tokens = o.i("max-tokens");
  r.sampling.temperature = o.f("temperature");
  r.sampling.top_k = o.i("top-k");
  r.sampling.top_p = o.f("top-p");
  r.sampling.min_p = o.f("min-p");
  r.sampling.repeat_penalty = 1.0;
  r.seed = seed;
  return r;
}

MusicModel load(const Options& o) {
  if (o.s("model").empty())
    throw UsageError("missing --model", "pass --model MODEL_DIR (see imagine train music)");
  set_threads(static_cast<int>(o.i("threads")));
  return load_music_model(o.s("model"), resolve_device(o.s("device")), o.s("checkpoint"));
}

std::string describe(const MusicResult& r) {
  return str(r.song.notes.size(), " notes, ", static_cast<int>(r.song.duration() * 10) / 10.0, " s, ",
             r.tokens, " events (", r.stop_reason, "), ",
             static_cast<int>(r.tokens / std::max(r.seconds, 1e-9)), " events/s");
}

void maybe_render(const Options& o, const OutputWriter& w, GenerationRecord rec, const Song& song,
                  const std::string& wav) {
  if (wav.empty()) return;
  auto rr = w.write_wav(wav, song, audio_record(rec), o.s("soundfont"));
  note(o.b("quiet"), str("rendered ", wav, ": ", rr.seconds, " s of audio in ", rr.render_seconds, " s"));
}

// ---- generate ----
const OptionTable& generate_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine generate music --model MODEL_DIR --out piece.mid [--wav piece.wav] [--seconds S] [options]",
        "Compose a new piece.");
    t.text("out", "", "MIDI file to write", "FILE")
        .text("wav", "", "also render it to this WAV file", "FILE");
    return sampling(t);
  }();
  return table;
}

int generate_music_cmd(const Options& o) {
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out piece.mid");
  const OutputWriter writer(output_policy(o));
  MusicModel m = load(o);
  const uint64_t seed = resolve_seed(o.i("seed"));
  MusicRequest req = request(o, m, seed);
  req.logit_hook = watermark_hook(writer);
  const CliCopyCheck check = copy_check(o, o.s("model"));
  CheckRecord checked;
  MusicResult r = generate_music_checked(m, Song{}, req, seed, check, &checked);
  GenerationRecord rec = music_record(model_record(o.s("model"), o.s("checkpoint")), m, req, "generate");
  checked.apply_to(&rec);
  writer.write_midi(o.s("out"), r.song, rec);
  std::printf("wrote %s (seed %llu): %s\n", o.s("out").c_str(), (unsigned long long)seed,
              describe(r).c_str());
  maybe_render(o, writer, rec, r.song, o.s("wav"));
  return 0;
}

// ---- continue ----
const OptionTable& continue_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine continue music --model MODEL_DIR --primer phrase.mid --count N --out DIR [options]",
        "Continue a phrase: the primer is kept and the model writes what follows. Variation i uses seed + "
        "i.");
    t.text("primer", "", "MIDI file to continue", "FILE")
        .real("primer-seconds", 0, 0, 3600, "use only the primer's first S seconds (0 = all of it)")
        .integer("count", 1, 1, 1000, "variations")
        .text("out", "", "folder for continuation-s<seed>.mid files", "DIR")
        .flag("wav", false, "also render every variation to a .wav beside its .mid");
    return sampling(t);
  }();
  return table;
}

int continue_music_cmd(const Options& o) {
  if (o.s("primer").empty()) throw UsageError("missing --primer", "pass --primer phrase.mid");
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out DIR");
  const OutputWriter writer(output_policy(o));
  MusicModel m = load(o);
  const Song primer = trim_primer(read_midi(o.s("primer")), o.f("primer-seconds"), o.s("primer"));
  const double primer_end = primer.duration();
  const uint64_t seed = resolve_seed(o.i("seed"));
  make_dirs(o.s("out"));
  MusicRequest req = request(o, m, seed);
  req.logit_hook = watermark_hook(writer);
  if (req.seconds > 0) req.seconds += primer_end;                           // --seconds counts the new part
  const ModelRecord model = model_record(o.s("model"), o.s("checkpoint"));  // hashes the weights: once
  const CliCopyCheck check = copy_check(o, o.s("model"));
  for (int64_t i = 0; i < o.i("count"); i++) {
    const uint64_t variation_seed = seed + static_cast<uint64_t>(i);
    CheckRecord checked;  // the audit looks at the new part only: the primer is the user's
    MusicResult r = generate_music_checked(m, primer, req, variation_seed, check, &checked);
    const std::string path = join_path(o.s("out"), str("continuation-s", variation_seed, ".mid"));
    GenerationRecord rec = music_record(model, m, req, "continue");
    checked.apply_to(&rec);
    rec.settings["primer"] = o.s("primer");
    rec.settings["primer_seconds"] = primer_end;
    writer.write_midi(path, r.song, rec);
    std::printf("wrote %s (seed %llu): primer %.1f s + %s\n", path.c_str(), (unsigned long long)req.seed,
                primer_end, describe(r).c_str());
    if (o.b("wav")) maybe_render(o, writer, rec, r.song, path.substr(0, path.size() - 4) + ".wav");
  }
  return 0;
}

// ---- render / roll ----
const OptionTable& render_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine render music INPUT.mid --wav OUT.wav [--soundfont F]",
                  "Render a MIDI file to audio with FluidSynth and a General MIDI soundfont.");
    t.text("wav", "", "WAV file to write", "FILE")
        .text("soundfont", "", "soundfont (default: Debian's FluidR3_GM)", "FILE")
        .flag("quiet", false, "no progress lines on stderr");
    return t;
  }();
  return table;
}

int render_cmd(const Options& o) {
  if (o.positional.size() != 1)
    throw UsageError("expected one INPUT.mid", "usage: " + render_table().usage());
  if (o.s("wav").empty()) throw UsageError("missing --wav", "pass --wav out.wav");
  const std::string bytes = read_file(o.positional[0]);
  Song s = parse_midi(bytes, o.positional[0]);
  // A WAV made from a generated piece carries that piece's provenance; any other MIDI file
  // renders to a plain WAV (not generated content).
  const EmbeddedProvenance src = read_provenance(o.positional[0], bytes);
  RenderResult r;
  if (src.present) {
    OutputPolicy policy;
    policy.watermark = false;  // no audio-domain mark; the MIDI's token mark is recorded in `source`
    const OutputWriter writer(policy);
    GenerationRecord rec = derived_record(src, "audio", "render");
    rec.settings = {{"input", o.positional[0]},
                    {"soundfont", o.s("soundfont").empty() ? default_soundfont() : o.s("soundfont")}};
    r = writer.write_wav(o.s("wav"), s, rec, o.s("soundfont"));
  } else {
    r = render_wav(s, o.s("wav"), o.s("soundfont"));
  }
  std::printf("wrote %s: %.1f s of audio in %.2f s (%.0fx real time), peak %.2f\n", o.s("wav").c_str(),
              r.seconds, r.render_seconds, r.seconds / std::max(r.render_seconds, 1e-9), r.peak);
  return 0;
}

const OptionTable& roll_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine roll music INPUT.mid --png ROLL.png", "Draw a piano roll of a MIDI file.");
    t.text("png", "", "PNG file to write", "FILE")
        .integer("pixels-per-second", 50, 1, 1000, "horizontal scale")
        .flag("quiet", false, "no progress lines on stderr");
    return output_options(t, false);  // used for the roll of a generated piece
  }();
  return table;
}

int roll_cmd(const Options& o) {
  if (o.positional.size() != 1) throw UsageError("expected one INPUT.mid", "usage: " + roll_table().usage());
  if (o.s("png").empty()) throw UsageError("missing --png", "pass --png roll.png");
  const std::string bytes = read_file(o.positional[0]);
  Song s = parse_midi(bytes, o.positional[0]);
  // The roll of a generated piece is generated content too: watermarked, with the piece's
  // manifest as its source. Any other MIDI file gives a plain picture.
  const EmbeddedProvenance src = read_provenance(o.positional[0], bytes);
  if (src.present) {
    const OutputWriter writer(output_policy(o));
    write_file_atomic(
        o.s("png"),
        roll_artifact(writer, bytes, o.positional[0], static_cast<int>(o.i("pixels-per-second"))).bytes);
  } else {
    write_piano_roll(s, o.s("png"), static_cast<int>(o.i("pixels-per-second")));
  }
  std::printf("wrote %s (%zu notes, %.1f s)\n", o.s("png").c_str(), s.notes.size(), s.duration());
  return 0;
}

// ---- export ----
const OptionTable& export_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine export music [--data PATH] --out DIR [--split train|valid|test] [--count N]",
                  "Write dataset pieces as MIDI files (e.g. the JSB chorales, which ship as JSON).");
    t.text("data", kDefaultMusicData, "JSB chorales JSON, a folder of .mid files or a .mid file", "PATH")
        .text("out", "", "folder to write", "DIR")
        .choice("split", "test", {"train", "valid", "test"}, "which part (MIDI folders: train or valid)")
        .integer("first", 0, 0, 1e9, "index of the first piece")
        .integer("count", 4, 1, 1e6, "pieces to write")
        .flag("quiet", false, "no progress lines on stderr");
    return t;
  }();
  return table;
}

int export_cmd(const Options& o) {
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out DIR");
  MusicData d = load_music_data(o.s("data"));
  const auto& set = o.s("split") == "train" ? d.train : o.s("split") == "valid" ? d.valid : d.test;
  const int64_t first = o.i("first"), n = static_cast<int64_t>(set.size());
  if (first >= n)
    throw UsageError(
        str("--first ", first, " is beyond the ", n, " ", o.s("split"), " pieces"),
        n == 0 ? "this dataset has no " + o.s("split") + " split" : str("use --first below ", n));
  make_dirs(o.s("out"));
  for (int64_t i = first; i < std::min(n, first + o.i("count")); i++) {
    const std::string path = join_path(o.s("out"), str(o.s("split"), "-", i, ".mid"));
    write_midi(path, set[i]);
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

// ---- eval ----
const OptionTable& eval_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine eval MODEL_DIR [--data PATH] [--json]",
        "Score a music model: loss per event on held-out music (the chorales' test split), and musical "
        "statistics of generated pieces against the training set.");
    t.text("data", "", "dataset (default: the one the model was trained on)", "PATH")
        .integer("pieces", 8, 0, 10000, "generated pieces for the statistics (0 = skip)")
        .real("seconds", 20, 1, 3600, "length of each generated piece")
        .integer("seed", 0, 0, 9.2e18, "first seed")
        .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
        .flag("json", false, "print one JSON object")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "no progress lines on stderr");
    return t;
  }();
  return table;
}

}  // namespace

int generate_music(const Args& args) {
  return run_family_verb("music", "generate", args, generate_table(), generate_music_cmd, false);
}
int continue_music(const Args& args) {
  return run_family_verb("music", "continue", args, continue_table(), continue_music_cmd, false);
}
int render(const Args& args) {
  return run_family_verb("music", "render", args, render_table(), render_cmd, true);
}
int roll(const Args& args) { return run_family_verb("music", "roll", args, roll_table(), roll_cmd, true); }
int export_music(const Args& args) {
  return run_family_verb("music", "export", args, export_table(), export_cmd, false);
}

int eval_music(const Args& args) {
  Options o = eval_table().parse(args);
  if (o.help_requested) return std::fputs(eval_table().help_text().c_str(), stdout), 0;
  if (o.positional.size() != 1) throw UsageError("expected one MODEL_DIR", "usage: " + eval_table().usage());
  const std::string dir = o.positional[0];
  set_threads(static_cast<int>(o.i("threads")));
  MusicModel m = load_music_model(dir, resolve_device(o.s("device")), o.s("checkpoint"));
  std::string path = o.s("data");
  if (path.empty()) path = m.config.value("dataset", nlohmann::json::object()).value("path", std::string());
  if (path.empty()) throw UsageError("missing --data", "pass --data PATH");
  nlohmann::json j =
      evaluate_music(m, path, o.i("pieces"), o.f("seconds"), static_cast<uint64_t>(o.i("seed")));
  j["model_dir"] = dir;
  const bool has_test = j["split"] == "test";
  if (o.b("json")) {
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("loss %.4f nats/event over %lld events of %lld %s pieces\n", j["loss_per_event"].get<double>(),
              (long long)j["events"].get<int64_t>(), (long long)j["pieces_scored"].get<int64_t>(),
              has_test ? "test" : "held-out");
  auto row = [](const char* name, const nlohmann::json& s) {
    std::printf(
        "%-10s notes/s %6.2f  polyphony %5.2f  pitch range %5.1f  mean pitch %5.1f  (%lld pieces, %.0f s)\n",
        name, s["notes_per_second"].get<double>(), s["polyphony"].get<double>(),
        s["pitch_range"].get<double>(), s["mean_pitch"].get<double>(), (long long)s["pieces"].get<int64_t>(),
        s["seconds"].get<double>());
  };
  row("training", j["train_stats"]);
  row(has_test ? "test" : "held-out", j["heldout_stats"]);
  if (j.contains("generated_stats")) {
    row("generated", j["generated_stats"]);
    std::printf("pitch-class histogram distance (0 = same, 1 = disjoint): %.3f to training, %.3f to %s\n",
                j["pitch_class_distance"].get<double>(), j["pitch_class_distance_heldout"].get<double>(),
                has_test ? "test" : "held-out");
  }
  return 0;
}

}  // namespace imagine::cli
