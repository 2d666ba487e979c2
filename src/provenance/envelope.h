// The provenance manifest as a signed envelope: its canonical bytes, Ed25519 signatures
// (libsodium) and the key files behind them.
//
// Canonical bytes: the manifest without its "signature" member, serialised with sorted
// keys, no whitespace and non-ASCII characters escaped (nlohmann::json's dump(-1, ' ',
// true): objects are key-sorted maps and numbers print in shortest round-trip form), so
// any reader that re-parses the JSON gets the same bytes back. The manifest includes the
// content hash, so the signature covers the content too.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine {

constexpr const char* kManifestFormat = "imagine-provenance";
constexpr int kManifestVersion = 1;
constexpr const char* kDigitalSourceType = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia";

std::string canonical_bytes(const nlohmann::json& manifest);
// Parses and checks a manifest: a JSON object of our format, a version we read. Throws
// imagine::Error with a hint for truncated or foreign text. `what` names the source.
nlohmann::json parse_manifest(const std::string& text, const std::string& what);

struct SigningKey {
  std::string secret;  // 64 bytes (libsodium's seed + public key)
  std::string public_key;  // 32 bytes
  std::string key_id() const;  // first 16 hex digits of SHA-256(public key)
};
std::string public_key_id(const std::string& public_key);

// DIR/signing.key (0600, created exclusively) and DIR/signing.pub; refuses to overwrite.
SigningKey generate_keypair(const std::string& dir);
SigningKey load_signing_key(const std::string& path);
// A .pub file, or a line holding the base64 key. Throws imagine::Error with a hint.
std::string load_public_key(const std::string& path);
// One key per line: the .pub file's body (base64), optionally followed by a name; '#'
// starts a comment; the .pub header line is skipped. Returns raw 32-byte keys.
std::vector<std::string> load_trusted_keys(const std::string& path);

// Adds "signature": {algorithm, public_key, key_id, value} over canonical_bytes.
void sign_manifest(nlohmann::json& manifest, const SigningKey& key);

struct SignatureCheck {
  std::string status = "unsigned";  // unsigned, valid, invalid
  std::string key_id;
  bool trusted = false;
  std::string detail;
};
SignatureCheck check_signature(const nlohmann::json& manifest, const std::vector<std::string>& trusted_keys);

std::string base64_encode(const std::string& bytes);
bool base64_decode(const std::string& text, std::string& out);  // false when malformed

}  // namespace imagine
