// What a verb computes and records, shared by the CLI (apps/imagine) and the HTTP API
// (serve/server), so that the same request gives the same bytes from either.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "generate/music_generate.h"
#include "generate/text_generate.h"
#include "models/music_model.h"
#include "provenance/audit.h"
#include "provenance/carriers.h"
#include "provenance/output.h"

namespace imagine {

// The token watermark's green-list bias for sampling, or nullptr with --no-watermark. The
// hook caches what it hashes: use it from one thread at a time (one per request).
LogitHook watermark_hook(const OutputWriter& w);

// The copy check of generated outputs (CLI: --reject-copies, --provenance full; API:
// reject_copies, attribution): re-make what the copy audit flags, and record the nearest
// training items.
struct CopyCheck {
  CopyAuditor* auditor = nullptr;  // null: no check at all
  bool reject = false;             // re-make flagged outputs (up to `tries` attempts)
  int tries = 4;
  bool attribute = false;                        // record the audit (nearest training items)
  std::function<void(const std::string&)> warn;  // told when an output stays a likely copy
};

// What the copy check of one output adds to its manifest.
struct CheckRecord {
  nlohmann::json copy_check;   // under reject: the check and its result
  nlohmann::json attribution;  // under attribute: the nearest training items
  void apply_to(GenerationRecord* rec) const {
    rec->copy_check = copy_check;
    rec->attribution = attribution;
  }
  // The record of one file holding several outputs (a grid): their checks as arrays.
  static CheckRecord combine(const std::vector<CheckRecord>& each);
};

// Makes an output with make(attempt) (attempt 0 first; later attempts must differ, e.g. by
// retry_seed), audits it when a check is on, re-makes flagged ones under c.reject, and
// fills `rec`. audit(output) -> AuditReport.
template <class T, class Make, class Audit>
T make_checked(const CopyCheck& c, CheckRecord* rec, Make make, Audit audit) {
  if (!c.auditor) return make(0);
  T out{};
  AuditReport last;
  auto attempt = [&](int a) {
    out = make(a);
    last = audit(out);
    return last;
  };
  if (c.reject) {
    nlohmann::json record;
    reject_copies(c.tries, attempt, &record);
    if (rec) rec->copy_check = record;
    if (last.flagged && c.warn)
      c.warn("warning: still a likely copy after " + std::to_string(c.tries) + " tries: " + last.summary);
  } else {
    attempt(0);
  }
  if (rec && c.attribute)
    rec->attribution = {{"summary", last.summary}, {"flagged", last.flagged}, {"audit", last.detail}};
  return out;
}

// The check of an output already made (nothing is re-made, whatever c.reject says): its
// attribution when c.attribute, nothing when the check is off.
template <class T, class Audit>
CheckRecord check_made(const CopyCheck& c, const T& out, Audit audit) {
  CheckRecord rec;
  CopyCheck once = c;
  once.reject = false;
  make_checked<T>(
      once, &rec, [&](int) { return out; }, audit);
  return rec;
}

// The record of `generate text` (seed = the first sample's; sample i used seed + i).
GenerationRecord text_record(const ModelRecord& model, const TextRequest& req, uint64_t seed, int64_t count,
                             const std::string& tokenizer_kind);
// The samples' copy checks in the record of `generate text`: one sample's alone, several as
// arrays; `seeds_used` (the seed each sample was finally made with) when a copy check re-made.
void apply_text_checks(GenerationRecord* rec, const std::vector<CheckRecord>& each,
                       const nlohmann::json& seeds_used);
// The header the CLI prints before sample i of `count` (nothing when count is 1).
std::string text_sample_header(int64_t i, int64_t count, uint64_t seed);
// The text file of `generate text --out`: each sample (prompt + continuation) after its
// header, and a final newline.
std::string text_file(const std::vector<std::string>& samples, uint64_t seed);

// The record of a generated piece (`verb`: generate, continue); the event vocabulary goes
// with it so that `imagine detect` can re-encode the MIDI file without the model.
GenerationRecord music_record(const ModelRecord& model, const MusicModel& m, const MusicRequest& req,
                              const std::string& verb);
// A piece (after `primer`, empty for a new one), copy-checked: the audit looks at the new
// notes only (the primer is the user's); attempt a uses retry_seed(seed, a). req.seed ends
// as the seed of the piece kept.
MusicResult generate_music_checked(MusicModel& m, const Song& primer, MusicRequest& req, uint64_t seed,
                                   const CopyCheck& c, CheckRecord* rec);
// The notes of `song` that start at or after `t` seconds (a continuation without its primer).
Song notes_from(const Song& song, double t);
// The primer of `continue`: its first `seconds` (0 = all of it; notes cut at the limit).
// Error when no note is left (`what` names the file).
Song trim_primer(Song primer, double seconds, const std::string& what);

// `imagine eval` of a music model on the dataset at `path`: loss per event on its test (else
// held-out) split, musical statistics of the training and held-out pieces, and of `pieces`
// generated pieces of `seconds` each (seeds seed, seed + 1, ...) with their pitch-class
// distances. The JSON `imagine eval --json` prints (without model_dir).
nlohmann::json evaluate_music(MusicModel& m, const std::string& path, int64_t pieces, double seconds,
                              uint64_t seed);

// The record of a file made from a generated MIDI file (its WAV, its piano roll): the model
// as that file's manifest names it, and the manifest itself as `source`.
GenerationRecord derived_record(const EmbeddedProvenance& src, const std::string& kind,
                                const std::string& verb);
// Its rendering: the same record as audio (verb "render").
GenerationRecord audio_record(GenerationRecord piece);
// The piano roll of a generated MIDI file (bytes as written): watermarked, its manifest
// citing the piece's as source; `input` names the file in the record.
Artifact roll_artifact(const OutputWriter& w, const std::string& midi_bytes, const std::string& input,
                       int pixels_per_second);

// The side-by-side picture of an audited image and its three nearest training images: it
// shows generated content, so it is an output like any other.
Artifact audit_picture(const CopyAuditor& a, const OutputWriter& w, const ModelRecord& model,
                       const Image& img, const AuditReport& report);

}  // namespace imagine
