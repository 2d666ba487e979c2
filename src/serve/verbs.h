// What a verb computes and records, shared by the CLI (apps/imagine) and the HTTP API
// (serve/server), so that the same request gives the same bytes from either.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "generate/music_generate.h"
#include "generate/text_generate.h"
#include "models/music_model.h"
#include "provenance/audit.h"
#include "provenance/carriers.h"
#include "provenance/output.h"

namespace imagine {

// The token watermark's green-list bias for sampling, or nullptr with --no-watermark.
LogitHook watermark_hook(const OutputWriter& w);

// The record of `generate text` (seed = the first sample's; sample i used seed + i).
GenerationRecord text_record(const ModelRecord& model, const TextRequest& req, uint64_t seed, int64_t count,
                             const std::string& tokenizer_kind);
// The header the CLI prints before sample i of `count` (nothing when count is 1).
std::string text_sample_header(int64_t i, int64_t count, uint64_t seed);
// The text file of `generate text --out`: each sample (prompt + continuation) after its
// header, and a final newline.
std::string text_file(const std::vector<std::string>& samples, uint64_t seed);

// The record of a generated piece (`verb`: generate, continue); the event vocabulary goes
// with it so that `imagine detect` can re-encode the MIDI file without the model.
GenerationRecord music_record(const ModelRecord& model, const MusicModel& m, const MusicRequest& req,
                              const std::string& verb);
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
