// `imagine verify`: is a file's provenance intact? Recomputes the content hash (the content
// without the metadata itself), compares it with the manifest's, checks the signature and
// whether its key is trusted.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine {

struct VerifyReport {
  std::string path;
  std::string type;             // png, midi, wav, text
  bool manifest = false;        // a manifest was found
  bool content_matches = false; // recomputed content hash == manifest's
  std::string signature;        // "unsigned", "valid" or "invalid"
  std::string key_id;           // signer (when signed)
  bool trusted = false;         // signer's key is in the trusted list
  std::string problem;          // why it is not intact ("" when it is)
  nlohmann::json what;          // kind, verb, model, created: what the manifest says

  // Intact: a manifest whose content hash matches and whose signature, if any, is valid.
  bool intact() const { return manifest && content_matches && signature != "invalid"; }
  std::string summary() const;  // one line for people
  nlohmann::json to_json() const;
};

// `trusted`: raw 32-byte Ed25519 public keys.
VerifyReport verify_file(const std::string& path, const std::vector<std::string>& trusted);

// Keys from `path`, or from $XDG_CONFIG_HOME/imagine/trusted.keys when `path` is "" (none
// when that file does not exist). The user's own signing.pub there is trusted too.
std::vector<std::string> load_default_trusted_keys(const std::string& path);

}  // namespace imagine
