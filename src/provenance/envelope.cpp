// See envelope.h.
#include "provenance/envelope.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"

namespace imagine {

namespace {

constexpr const char* kSecretHeader = "imagine-ed25519-secret-key v1";
constexpr const char* kPublicHeader = "imagine-ed25519-public-key v1";

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw Error("libsodium failed to initialise", "the system's libsodium is broken");
  });
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) a++;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) b--;
  return s.substr(a, b - a);
}

// The body of a key file: its header line must be `header`.
std::string key_body(const std::string& path, const char* header, const char* noun) {
  const std::string text = read_file(path);
  const size_t nl = text.find('\n');
  const std::string first = trim(text.substr(0, nl));
  if (first != header) {
    std::string hint = std::string("a ") + noun + " file starts with '" + header + "'";
    if (first == kPublicHeader) hint = "this is a public key; pass the private signing.key";
    if (first == kSecretHeader) hint = "this is a private key; pass the public signing.pub";
    if (first.rfind("imagine-watermark-key", 0) == 0) hint = "this is the watermark key, not a signing key";
    throw Error(path + " is not an imagine " + noun, hint);
  }
  return trim(nl == std::string::npos ? "" : text.substr(nl + 1));
}

void write_exclusive(const std::string& path, const std::string& bytes, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0) {
    if (errno == EEXIST)
      throw Error("refusing to overwrite " + path, "keep the existing key, or remove it first (signatures made "
                  "with it can still be verified with its .pub)");
    throw Error(str("cannot create ", path, ": ", std::strerror(errno)), "check that the folder exists and is writable");
  }
  const bool ok = ::write(fd, bytes.data(), bytes.size()) == ssize_t(bytes.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw Error("cannot write " + path, "check the disk");
  }
}

}  // namespace

std::string base64_encode(const std::string& bytes) {
  init_sodium();
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(&out[0], out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

bool base64_decode(const std::string& text, std::string& out) {
  init_sodium();
  out.assign(text.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(&out[0]), out.size(), text.c_str(), text.size(), nullptr,
                        &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0)
    return false;
  out.resize(len);
  return true;
}

std::string canonical_bytes(const nlohmann::json& manifest) {
  nlohmann::json m = manifest;
  if (m.is_object()) m.erase("signature");
  return m.dump(-1, ' ', true);
}

nlohmann::json parse_manifest(const std::string& text, const std::string& what) {
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw Error("the provenance manifest of " + what + " is damaged (not valid JSON)",
                "the file was truncated or edited after it was written");
  }
  IMAGINE_CHECK(m.is_object() && m.value("format", "") == kManifestFormat, "this is not an imagine manifest",
                "the provenance manifest of ", what, " has an unknown format");
  IMAGINE_CHECK(m.contains("version") && m["version"].is_number_integer() && m["version"].get<int>() >= 1 &&
                    m["version"].get<int>() <= kManifestVersion,
                "a newer imagine may read it", "the provenance manifest of ", what, " has an unsupported version");
  return m;
}

std::string public_key_id(const std::string& public_key) { return sha256_hex(public_key).substr(0, 16); }
std::string SigningKey::key_id() const { return public_key_id(public_key); }

SigningKey generate_keypair(const std::string& dir) {
  init_sodium();
  make_dirs(dir);
  const std::string secret_path = join_path(dir, "signing.key"), public_path = join_path(dir, "signing.pub");
  IMAGINE_CHECK(!path_exists(secret_path) && !path_exists(public_path),
                "keep the existing key pair, or remove both files first", "refusing to overwrite the key pair in ", dir);
  SigningKey k;
  k.secret.assign(crypto_sign_SECRETKEYBYTES, '\0');
  k.public_key.assign(crypto_sign_PUBLICKEYBYTES, '\0');
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(&k.public_key[0]), reinterpret_cast<unsigned char*>(&k.secret[0]));
  write_exclusive(secret_path, std::string(kSecretHeader) + "\n" + base64_encode(k.secret) + "\n", 0600);
  write_exclusive(public_path, std::string(kPublicHeader) + "\n" + base64_encode(k.public_key) + "  " + k.key_id() + "\n",
                  0644);
  return k;
}

SigningKey load_signing_key(const std::string& path) {
  init_sodium();
  const std::string body = key_body(path, kSecretHeader, "signing key");
  SigningKey k;
  IMAGINE_CHECK(base64_decode(body, k.secret) && k.secret.size() == crypto_sign_SECRETKEYBYTES,
                "create a new pair with `imagine keygen`", "the signing key in ", path, " is damaged");
  k.public_key.assign(crypto_sign_PUBLICKEYBYTES, '\0');
  crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(&k.public_key[0]),
                               reinterpret_cast<const unsigned char*>(k.secret.data()));
  return k;
}

static std::string parse_public_line(const std::string& line) {
  const std::string first = trim(line).substr(0, trim(line).find_first_of(" \t"));
  std::string key;
  if (!base64_decode(first, key) || key.size() != crypto_sign_PUBLICKEYBYTES) return "";
  return key;
}

std::string load_public_key(const std::string& path) {
  const std::string key = parse_public_line(key_body(path, kPublicHeader, "public key"));
  IMAGINE_CHECK(!key.empty(), "copy the .pub file written by `imagine keygen` again", "the public key in ", path,
                " is damaged");
  return key;
}

std::vector<std::string> load_trusted_keys(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> keys;
  size_t start = 0, line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    start = end + 1;
    line_no++;
    if (line.empty() || line[0] == '#' || line == kPublicHeader) continue;
    const std::string key = parse_public_line(line);
    IMAGINE_CHECK(!key.empty(), "each line holds one public key: the second line of a signing.pub file",
                  path, ":", line_no, " is not a public key");
    keys.push_back(key);
  }
  return keys;
}

void sign_manifest(nlohmann::json& manifest, const SigningKey& key) {
  init_sodium();
  const std::string msg = canonical_bytes(manifest);
  std::string sig(crypto_sign_BYTES, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(&sig[0]), nullptr,
                       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       reinterpret_cast<const unsigned char*>(key.secret.data()));
  manifest["signature"] = {{"algorithm", "ed25519"},
                           {"public_key", base64_encode(key.public_key)},
                           {"key_id", key.key_id()},
                           {"value", base64_encode(sig)}};
}

SignatureCheck check_signature(const nlohmann::json& manifest, const std::vector<std::string>& trusted_keys) {
  init_sodium();
  SignatureCheck c;
  if (!manifest.is_object() || !manifest.contains("signature")) return c;
  c.status = "invalid";
  const auto& s = manifest["signature"];
  if (!s.is_object() || s.value("algorithm", "") != "ed25519" || !s.contains("public_key") || !s.contains("value") ||
      !s["public_key"].is_string() || !s["value"].is_string()) {
    c.detail = "malformed signature record";
    return c;
  }
  std::string pk, sig;
  if (!base64_decode(s["public_key"].get<std::string>(), pk) || pk.size() != crypto_sign_PUBLICKEYBYTES ||
      !base64_decode(s["value"].get<std::string>(), sig) || sig.size() != crypto_sign_BYTES) {
    c.detail = "malformed signature record";
    return c;
  }
  c.key_id = public_key_id(pk);
  for (const auto& k : trusted_keys) c.trusted = c.trusted || k == pk;
  const std::string msg = canonical_bytes(manifest);
  if (crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                  reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                  reinterpret_cast<const unsigned char*>(pk.data())) != 0) {
    c.detail = "the signature does not match the manifest (changed after signing, or signed by another key)";
    return c;
  }
  c.status = "valid";
  return c;
}

}  // namespace imagine
