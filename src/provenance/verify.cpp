// See verify.h.
#include "provenance/verify.h"

#include "core/error.h"
#include "core/model_dir.h"
#include "provenance/carriers.h"
#include "provenance/envelope.h"
#include "provenance/keys.h"

namespace imagine {

std::string VerifyReport::summary() const {
  if (!manifest) return type + ", no provenance manifest" + (problem.empty() ? "" : " (" + problem + ")");
  std::string s = intact() ? "intact" : "NOT intact";
  s += ", " + type;
  if (what.contains("verb")) s += ", " + what.value("kind", "") + " made by " + what.value("verb", "");
  if (what.contains("model")) s += " with model " + what["model"].value("name", "?");
  if (what.contains("created")) s += " at " + what.value("created", "");
  if (signature == "unsigned") s += "; unsigned";
  else if (signature == "valid") s += "; signed by " + key_id + (trusted ? " (trusted)" : " (NOT in the trusted keys)");
  else s += "; signature INVALID" + (key_id.empty() ? "" : " (claims key " + key_id + ")");
  if (!problem.empty()) s += "; " + problem;
  return s;
}

nlohmann::json VerifyReport::to_json() const {
  return {{"path", path},         {"type", type},       {"manifest", manifest}, {"content_matches", content_matches},
          {"signature", signature}, {"key_id", key_id}, {"trusted", trusted},   {"intact", intact()},
          {"problem", problem},   {"what", what}};
}

VerifyReport verify_file(const std::string& path, const std::vector<std::string>& trusted) {
  VerifyReport r;
  r.path = path;
  const EmbeddedProvenance p = read_provenance(path);
  r.type = artifact_name(p.type);
  IMAGINE_CHECK(p.type != ArtifactType::Unknown && p.type != ArtifactType::Jpeg,
                "verify reads PNG, MIDI, WAV and text files written by imagine", path,
                p.type == ArtifactType::Jpeg ? " is a JPEG: imagine writes no manifest into JPEG files"
                                             : " is not a file imagine writes");
  r.manifest = p.present;
  if (!p.present) {
    r.signature = "unsigned";
    r.problem = p.type == ArtifactType::Text ? "no " + text_sidecar_path(path) : "no manifest in the file";
    return r;
  }
  const auto& m = p.manifest;
  for (const char* k : {"kind", "verb", "created", "model", "tool"})
    if (m.contains(k)) r.what[k] = m[k];
  const nlohmann::json content = m.value("content", nlohmann::json::object());
  r.content_matches = content.value("sha256", "") == p.content_sha256 && content.value("hashing", "") == p.content_hashing;
  if (!r.content_matches) r.problem = "the content does not match the manifest's hash (changed after it was written)";
  const SignatureCheck s = check_signature(m, trusted);
  r.signature = s.status;
  r.key_id = s.key_id;
  r.trusted = s.trusted;
  if (s.status == "invalid") r.problem += (r.problem.empty() ? "" : "; ") + s.detail;
  return r;
}

std::vector<std::string> load_default_trusted_keys(const std::string& path) {
  if (!path.empty()) return load_trusted_keys(path);
  std::vector<std::string> keys;
  const std::string dir = config_dir();
  if (path_exists(dir + "/trusted.keys")) keys = load_trusted_keys(dir + "/trusted.keys");
  if (path_exists(dir + "/signing.pub")) keys.push_back(load_public_key(dir + "/signing.pub"));
  return keys;
}

}  // namespace imagine
