// See output.h.
#include "provenance/output.h"

#include <cerrno>
#include <cstdlib>
#include <ctime>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "music/midi.h"
#include "provenance/carriers.h"
#include "provenance/envelope.h"

namespace imagine {

ProvenanceLevel parse_provenance_level(const std::string& name) {
  if (name == "none") return ProvenanceLevel::None;
  if (name == "minimal") return ProvenanceLevel::Minimal;
  if (name == "full") return ProvenanceLevel::Full;
  throw UsageError("unknown provenance level '" + name + "'", "use --provenance none, minimal or full");
}

std::string to_string(ProvenanceLevel level) {
  return level == ProvenanceLevel::None ? "none" : level == ProvenanceLevel::Full ? "full" : "minimal";
}

ModelRecord model_record(const std::string& model_dir, const std::string& which) {
  ModelRecord r;
  const nlohmann::json cfg = read_model_config(model_dir);
  r.family = cfg.value("family", "");
  std::string name = model_dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  r.name = name.substr(name.find_last_of('/') == std::string::npos ? 0 : name.find_last_of('/') + 1);
  r.id = "sha256:" + sha256_file(weights_file(model_dir, which));
  // The training-data record: what the model learned from, by content (file hashes), and
  // the licence the trainer declared. File lists are summarised by one fingerprint.
  const nlohmann::json ds = cfg.value("dataset", nlohmann::json::object());
  nlohmann::json td = nlohmann::json::object();
  if (ds.contains("path")) td["path"] = ds["path"];
  if (ds.contains("fingerprint")) td["fingerprint"] = ds["fingerprint"];
  if (ds.contains("files") && ds["files"].is_array()) {
    std::string all;
    for (const auto& f : ds["files"]) all += f.value("sha256", "") + "\n";
    td["files"] = ds["files"].size();
    if (!td.contains("fingerprint")) td["fingerprint"] = "sha256:" + sha256_hex(all);
  }
  // The licence by name and hash: its full text stays in config.json and the model card.
  if (cfg.contains("data_license") && cfg["data_license"].is_object()) {
    const nlohmann::json& lic = cfg["data_license"];
    td["license"] = {{"summary", lic.value("summary", "")}, {"sha256", lic.value("sha256", "")}};
  }
  r.training_data = td;
  return r;
}

OutputWriter::OutputWriter(const OutputPolicy& policy) : policy_(policy) {
  policy_.tokens.validate();
  if (policy_.watermark) {
    key_ = load_watermark_key(policy_.watermark_key, /*create=*/true);
    tokens_ = std::make_unique<TokenWatermark>(key_.bytes, policy_.tokens);
  }
  if (policy_.level != ProvenanceLevel::None) {
    if (!policy_.sign_key.empty()) {
      sign_ = load_signing_key(policy_.sign_key);
    } else {
      const std::string def = config_dir() + "/signing.key";
      if (path_exists(def)) sign_ = load_signing_key(def);
    }
  }
}

static std::string utc_time(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string source_date_epoch() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (!v || !*v) return "";
  char* end = nullptr;
  errno = 0;
  const long long t = std::strtoll(v, &end, 10);
  IMAGINE_CHECK(errno == 0 && *end == '\0' && t >= 0 && t < 253402300800LL,
                "set SOURCE_DATE_EPOCH to seconds since 1970 (e.g. $(date +%s)) or unset it",
                "SOURCE_DATE_EPOCH '", v, "' is not a time");
  return utc_time(static_cast<std::time_t>(t));
}

nlohmann::json OutputWriter::manifest(const GenerationRecord& rec, const std::string& content_sha256,
                                      const std::string& content_hashing) const {
  if (policy_.level == ProvenanceLevel::None) return nullptr;
  nlohmann::json m = {
      {"format", kManifestFormat},
      {"version", kManifestVersion},
      {"tool", {{"name", "imagine"}, {"version", IMAGINE_VERSION_STRING}}},
      {"digital_source_type", kDigitalSourceType},
      {"created", policy_.created.empty() ? utc_time(std::time(nullptr)) : policy_.created},
      {"kind", rec.kind},
      {"verb", rec.verb},
      {"model", {{"id", rec.model.id}, {"name", rec.model.name}, {"family", rec.model.family}}},
      {"generation", rec.settings},
      {"training_data", rec.model.training_data},
      {"content", {{"sha256", content_sha256}, {"hashing", content_hashing}}},
      {"provenance_level", to_string(policy_.level)},
  };
  nlohmann::json wm = {{"applied", policy_.watermark}};
  if (policy_.watermark) {
    wm["key_id"] = key_.id();
    if (rec.kind == "image") {
      wm.update(policy_.images.to_json());
    } else if (rec.kind == "text" || rec.kind == "music") {
      wm.update(policy_.tokens.to_json());
    } else {
      wm["applied"] = false;
      wm["note"] = "no audio-domain watermark: the source MIDI carries the token watermark";
    }
  }
  if (rec.settings.contains("events")) wm["events"] = rec.settings["events"];
  m["watermark"] = wm;
  if (!rec.copy_check.is_null()) m["copy_check"] = rec.copy_check;
  if (!rec.source.is_null()) m["source"] = rec.source;
  if (policy_.level == ProvenanceLevel::Full) {
    if (!rec.prompt.empty()) m["prompt"] = rec.prompt;
    if (!rec.attribution.is_null()) m["attribution"] = rec.attribution;
  }
  if (sign_) sign_manifest(m, *sign_);
  return m;
}

Artifact OutputWriter::encode_text(const std::string& text, const GenerationRecord& rec) const {
  return {text, manifest(rec, sha256_hex(text), "sha256-bytes"), "text/plain; charset=utf-8"};
}

void OutputWriter::write_text(const std::string& path, const std::string& text, const GenerationRecord& rec) const {
  const Artifact a = encode_text(text, rec);
  write_file_atomic(path, a.bytes);
  if (!a.manifest.is_null()) write_file_atomic(text_sidecar_path(path), a.manifest.dump(2) + "\n");
}

Artifact OutputWriter::encode_image(const Image& img, const GenerationRecord& rec,
                                    const std::vector<std::pair<std::string, std::string>>& parameters,
                                    Image* marked) const {
  const Image out = policy_.watermark ? embed_image_watermark(img, key_.bytes, policy_.images) : img;
  std::vector<std::pair<std::string, std::string>> params = parameters;
  params.push_back({"Model hash", rec.model.id.substr(0, 17)});
  params.push_back({"Model", rec.model.name});
  params.push_back({"Watermark", policy_.watermark ? "imagine " + key_.id() : "none"});
  Artifact a;
  a.manifest = manifest(rec, png_content_sha256(out), kPngContentHashing);
  a.bytes = encode_png_with_provenance(out, a.manifest.is_null() ? "" : a.manifest.dump(), params,
                                       policy_.level != ProvenanceLevel::None);
  a.mime = "image/png";
  if (marked) *marked = out;
  return a;
}

Image OutputWriter::write_image(const std::string& path, const Image& img, const GenerationRecord& rec,
                                const std::vector<std::pair<std::string, std::string>>& parameters) const {
  Image out;
  write_file_atomic(path, encode_image(img, rec, parameters, &out).bytes);
  return out;
}

Artifact OutputWriter::encode_midi(const Song& song, const GenerationRecord& rec) const {
  const std::string midi = imagine::encode_midi(song);
  Artifact a;
  a.manifest = manifest(rec, sha256_hex(midi), kMidiContentHashing);
  a.bytes = a.manifest.is_null() ? midi : midi_with_manifest(midi, a.manifest.dump());
  a.mime = "audio/midi";
  return a;
}

void OutputWriter::write_midi(const std::string& path, const Song& song, const GenerationRecord& rec) const {
  write_file_atomic(path, encode_midi(song, rec).bytes);
}

Artifact OutputWriter::encode_wav(const Song& song, const GenerationRecord& rec, const std::string& soundfont,
                                  RenderResult* render) const {
  RenderResult r;
  const std::string wav = render_wav_bytes(song, &r, soundfont);
  Artifact a;
  a.manifest = manifest(rec, wav_content_sha256(wav), kWavContentHashing);
  a.bytes = a.manifest.is_null() ? wav : wav_with_manifest(wav, a.manifest.dump());
  a.mime = "audio/wav";
  if (render) *render = r;
  return a;
}

RenderResult OutputWriter::write_wav(const std::string& path, const Song& song, const GenerationRecord& rec,
                                     const std::string& soundfont) const {
  RenderResult r;
  write_file_atomic(path, encode_wav(song, rec, soundfont, &r).bytes);
  return r;
}

}  // namespace imagine
