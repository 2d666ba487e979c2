// See keys.h. File format: "imagine-watermark-key v1\n" + 64 hex digits + "\n", so a wrong
// file (a signing key, a picture) is recognised and named rather than used as a key.
#include "provenance/keys.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/signals.h"

namespace imagine {

namespace {

constexpr const char* kHeader = "imagine-watermark-key v1";

std::string to_hex(const std::string& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

bool from_hex(const std::string& s, std::string& out) {
  if (s.size() % 2) return false;
  out.clear();
  for (size_t i = 0; i < s.size(); i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    const int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += char(hi * 16 + lo);
  }
  return true;
}

// Like core's make_dirs, but every folder it creates is private (0700): the key's folder
// should not even list to other users.
void make_private_dirs(const std::string& dir) {
  for (size_t i = 1; i <= dir.size(); i++) {
    if (i == dir.size() || dir[i] == '/') {
      const std::string part = dir.substr(0, i);
      if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
        throw Error(str("cannot create ", part, ": ", std::strerror(errno)),
                    "check the permissions of the folder");
    }
  }
}

}  // namespace

std::string WatermarkKey::id() const {
  return sha256_hex("imagine-watermark-key-id\n" + bytes).substr(0, 16);
}

std::string config_dir() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg && *xdg) return std::string(xdg) + "/imagine";
  const char* home = std::getenv("HOME");
  IMAGINE_CHECK(home && *home, "set XDG_CONFIG_HOME or HOME, or pass --watermark-key FILE",
                "cannot find a configuration folder for the watermark key");
  return std::string(home) + "/.config/imagine";
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::getrandom(&out[got], n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw Error(str("cannot read random bytes: ", std::strerror(errno)), "the kernel's getrandom() failed");
    }
    got += size_t(r);
  }
  return out;
}

WatermarkKey create_watermark_key(const std::string& path) {
  IMAGINE_CHECK(!path_exists(path),
                "remove it first if you really want a new key (outputs marked with it will no "
                "longer be detected)",
                "refusing to overwrite the key file ", path);
  WatermarkKey k;
  k.bytes = random_bytes(32);
  k.path = path;
  // Created 0600 from the start: the key never exists world-readable, even briefly.
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  const TempFileGuard removed_if_stopped(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  IMAGINE_CHECK(fd >= 0, "check that the folder exists and is writable", "cannot create ", tmp, ": ",
                std::strerror(errno));
  const std::string text = std::string(kHeader) + "\n" + to_hex(k.bytes) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::link(tmp.c_str(), path.c_str()) != 0) {  // link: fails rather than replaces
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str("cannot write the key file ", path, ": ", std::strerror(err)),
                "check the disk and permissions");
  }
  ::unlink(tmp.c_str());
  return k;
}

WatermarkKey load_watermark_key(const std::string& path_in, bool create) {
  std::string path = path_in;
  if (path.empty()) {
    const std::string dir = config_dir();
    path = dir + "/watermark.key";
    if (!path_exists(path) && create) {
      make_private_dirs(dir);
      return create_watermark_key(path);
    }
  }
  IMAGINE_CHECK(path_exists(path),
                path_in.empty() ? "generate something once to create it, or pass --watermark-key FILE"
                                : "check the path given to --watermark-key",
                "watermark key not found: ", path);
  const std::string text = read_file(path);
  const std::string hint = "a watermark key file starts with '" + std::string(kHeader) +
                           "' (it is created by imagine on first use; a signing key is a different file)";
  IMAGINE_CHECK(text.compare(0, std::strlen(kHeader), kHeader) == 0, hint, path,
                " is not an imagine watermark key");
  std::string body = text.substr(std::strlen(kHeader));
  std::string hex;
  for (char c : body)
    if (c != '\n' && c != '\r' && c != ' ') hex += c;
  WatermarkKey k;
  k.path = path;
  IMAGINE_CHECK(from_hex(hex, k.bytes) && k.bytes.size() == 32, hint, "the watermark key in ", path,
                " is damaged (expected 64 hex digits)");
  return k;
}

}  // namespace imagine
