// The watermark key: 32 random bytes that make the marks of one user (or one deployment)
// theirs. Created on first use at $XDG_CONFIG_HOME/imagine/watermark.key (~/.config when
// unset), mode 0600; --watermark-key FILE picks another. Detection needs the same key.
#pragma once
#include <string>

namespace imagine {

struct WatermarkKey {
  std::string bytes;  // 32 bytes
  std::string path;   // where it was read from
  // First 16 hex digits of SHA-256 over a domain prefix and the key: names the key in
  // manifests without revealing it.
  std::string id() const;
};

// $XDG_CONFIG_HOME/imagine (or $HOME/.config/imagine).
std::string config_dir();

// Reads the key at `path`; "" means the default path, where a new random key is created
// (with its folder) if none exists yet and `create` is true. Throws imagine::Error with a
// hint for a missing (explicit path), unreadable, truncated or wrong-format file.
WatermarkKey load_watermark_key(const std::string& path, bool create = true);

// Writes a new random key to `path` (mode 0600); refuses to overwrite.
WatermarkKey create_watermark_key(const std::string& path);

// 32 bytes from the operating system's CSPRNG (getrandom / /dev/urandom).
std::string random_bytes(size_t n);

}  // namespace imagine
