// See verbs.h.
#include "serve/verbs.h"

#include "core/error.h"
#include "data/music_dataset.h"
#include "eval/music_stats.h"
#include "music/midi.h"
#include "music/render.h"
#include "provenance/carriers.h"

namespace imagine {

LogitHook watermark_hook(const OutputWriter& w) {
  const TokenWatermark* wm = w.token_watermark();
  if (!wm) return nullptr;
  // One cache per hook, i.e. per generation (a hook is made for each request).
  auto cache = std::make_shared<TokenWatermark::Cache>();
  return [wm, cache](std::vector<float>& logits, const std::vector<int64_t>& t) {
    wm->bias(logits, t, cache.get());
  };
}

CheckRecord CheckRecord::combine(const std::vector<CheckRecord>& each) {
  nlohmann::json c = nlohmann::json::array(), a = nlohmann::json::array();
  for (const CheckRecord& r : each) {
    if (!r.copy_check.is_null()) c.push_back(r.copy_check);
    if (!r.attribution.is_null()) a.push_back(r.attribution);
  }
  CheckRecord out;
  if (!c.empty()) out.copy_check = c;
  if (!a.empty()) out.attribution = a;
  return out;
}

Song notes_from(const Song& song, double t) {
  Song out = song;
  out.notes.clear();
  for (const Note& n : song.notes)
    if (n.start >= t - 1e-9) out.notes.push_back(n);
  return out;
}

MusicResult generate_music_checked(MusicModel& m, const Song& primer, MusicRequest& req, uint64_t seed,
                                   const CopyCheck& c, CheckRecord* rec) {
  const double primer_end = primer.notes.empty() ? 0.0 : primer.duration();
  return make_checked<MusicResult>(
      c, rec,
      [&](int attempt) {
        req.seed = retry_seed(seed, attempt);
        return generate_music(m, primer, req);
      },
      [&](const MusicResult& x) { return c.auditor->audit_song(notes_from(x.song, primer_end)); });
}

GenerationRecord text_record(const ModelRecord& model, const TextRequest& req, uint64_t seed, int64_t count,
                             const std::string& tokenizer_kind) {
  GenerationRecord rec;
  rec.kind = "text";
  rec.verb = "generate";
  rec.model = model;
  rec.settings = {{"seed", seed},
                  {"count", count},
                  {"max_tokens", req.max_tokens},
                  {"sampling", req.sampling.to_json()},
                  {"stop", req.stop},
                  {"tokenizer", tokenizer_kind},
                  {"kv_cache", req.kv_cache}};
  if (req.bf16_weights) rec.settings["decode_precision"] = "bf16";
  rec.prompt = req.prompt;
  return rec;
}

void apply_text_checks(GenerationRecord* rec, const std::vector<CheckRecord>& each,
                       const nlohmann::json& seeds_used) {
  const CheckRecord all = CheckRecord::combine(each);
  if (!all.copy_check.is_null()) {
    rec->settings["seeds_used"] = seeds_used;
    rec->copy_check = all.copy_check.size() == 1 ? all.copy_check[0] : all.copy_check;
  }
  if (!all.attribution.is_null())
    rec->attribution = all.attribution.size() == 1 ? all.attribution[0] : all.attribution;
}

std::string text_sample_header(int64_t i, int64_t count, uint64_t seed) {
  if (count <= 1) return "";
  return str(i == 0 ? "" : "\n", "--- sample ", i + 1, " of ", count, " (seed ",
             seed + static_cast<uint64_t>(i), ") ---\n");
}

std::string text_file(const std::vector<std::string>& samples, uint64_t seed) {
  std::string all;
  const int64_t n = static_cast<int64_t>(samples.size());
  for (int64_t i = 0; i < n; i++) all += text_sample_header(i, n, seed) + samples[static_cast<size_t>(i)];
  return all + "\n";
}

GenerationRecord music_record(const ModelRecord& model, const MusicModel& m, const MusicRequest& req,
                              const std::string& verb) {
  GenerationRecord rec;
  rec.kind = "music";
  rec.verb = verb;
  rec.model = model;
  rec.settings = {{"seed", req.seed},
                  {"seconds", req.seconds},
                  {"max_tokens", req.max_tokens},
                  {"sampling", req.sampling.to_json()},
                  {"max_note_seconds", req.max_note_seconds},
                  {"events", m.vocab.to_json()}};
  return rec;
}

Song trim_primer(Song primer, double seconds, const std::string& what) {
  if (seconds > 0) {
    std::vector<Note> kept;
    for (Note n : primer.notes) {
      if (n.start >= seconds) continue;
      n.end = std::min(n.end, seconds);
      kept.push_back(n);
    }
    primer.notes = kept;
  }
  IMAGINE_CHECK(!primer.notes.empty(), "pass a primer with notes (or a larger --primer-seconds)", what,
                " has no notes", seconds > 0 ? " in its first --primer-seconds" : "");
  return primer;
}

// Mean loss per event over the whole token stream, in consecutive windows.
static double loss_per_event(MusicModel& m, const std::vector<int64_t>& tokens) {
  torch::NoGradGuard no_grad;
  const int64_t block = m.gpt->config.block_size, n = static_cast<int64_t>(tokens.size());
  auto all = torch::tensor(tokens, torch::kLong);
  double total = 0;
  int64_t counted = 0;
  for (int64_t s = 0; s + 1 < n; s += block) {
    const int64_t len = std::min(block, n - 1 - s);
    auto x = all.slice(0, s, s + len).unsqueeze(0).to(m.device),
         y = all.slice(0, s + 1, s + 1 + len).to(m.device);
    auto logits = m.gpt->forward(x);
    total += torch::nn::functional::cross_entropy(
                 logits.view({-1, logits.size(-1)}), y,
                 torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                 .item<double>();
    counted += len;
  }
  return total / static_cast<double>(std::max<int64_t>(counted, 1));
}

nlohmann::json evaluate_music(MusicModel& m, const std::string& path, int64_t pieces, double seconds,
                              uint64_t seed) {
  MusicData data = load_music_data(path);
  const bool has_test = !data.test.empty();
  const auto& held = has_test ? data.test : data.valid;
  const auto tokens = encode_songs(held, m.vocab);
  nlohmann::json j = {{"data", path},
                      {"split", has_test ? "test" : "held-out"},
                      {"pieces_scored", held.size()},
                      {"events", tokens.size()}};
  j["loss_per_event"] = loss_per_event(m, tokens);
  const MusicStats train_stats = music_stats(data.train), held_stats = music_stats(held);
  j["train_stats"] = train_stats.to_json();
  j["heldout_stats"] = held_stats.to_json();
  if (pieces > 0) {
    std::vector<Song> made;
    MusicRequest req;
    req.seconds = seconds;
    req.max_note_seconds = default_note_cap(m);
    for (int64_t i = 0; i < pieces; i++) {
      req.seed = seed + static_cast<uint64_t>(i);
      made.push_back(generate_music(m, Song{}, req).song);
    }
    const MusicStats gen = music_stats(made);
    j["generated_stats"] = gen.to_json();
    j["pitch_class_distance"] = pitch_class_distance(gen, train_stats);
    j["pitch_class_distance_heldout"] = pitch_class_distance(gen, held_stats);
  }
  return j;
}

GenerationRecord derived_record(const EmbeddedProvenance& src, const std::string& kind,
                                const std::string& verb) {
  GenerationRecord rec;
  rec.kind = kind;
  rec.verb = verb;
  rec.source = src.manifest;
  if (src.manifest.contains("model")) {
    rec.model.id = src.manifest["model"].value("id", "");
    rec.model.name = src.manifest["model"].value("name", "");
    rec.model.family = src.manifest["model"].value("family", "");
  }
  return rec;
}

GenerationRecord audio_record(GenerationRecord piece) {
  piece.kind = "audio";
  piece.verb = "render";
  return piece;
}

Artifact roll_artifact(const OutputWriter& w, const std::string& midi_bytes, const std::string& input,
                       int pixels_per_second) {
  const Song s = parse_midi(midi_bytes, input);
  const EmbeddedProvenance src = read_provenance(input, midi_bytes);
  IMAGINE_CHECK(src.present, "draw the roll of a generated piece", input, " carries no provenance manifest");
  GenerationRecord rec = derived_record(src, "image", "roll");
  rec.settings = {{"input", input}, {"pixels_per_second", pixels_per_second}};
  return w.encode_image(piano_roll(s, pixels_per_second), rec, {{"Verb", "roll"}});
}

Artifact audit_picture(const CopyAuditor& a, const OutputWriter& w, const ModelRecord& model,
                       const Image& img, const AuditReport& report) {
  GenerationRecord rec;
  rec.kind = "image";
  rec.verb = "audit";
  rec.model = model;
  rec.settings = {{"layout", "output, then its three nearest training images (pixel space)"}};
  return w.encode_image(a.side_by_side(img, report), rec, {{"Verb", "audit"}});
}

}  // namespace imagine
