// Whole-file reads, crash-safe atomic writes and a self-contained SHA-256 (FIPS 180-4),
// so checkpoints and dataset records can be written durably and verified on load.
#include "core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/signals.h"

namespace imagine {

namespace {

// A hint the user can act on for the errno values people actually hit.
std::string hint_for_errno(int err, const std::string& fallback) {
  switch (err) {
    case ENOENT:
      return "check the path";
    case EACCES:
    case EPERM:
      return "check the file and directory permissions";
    case ENOSPC:
    case EDQUOT:
      return "free some disk space and try again";
    case EROFS:
      return "the file system is read-only; choose another location";
    case EISDIR:
      return "the path names a directory; give a file path";
    default:
      return fallback;
  }
}

// Closes a descriptor on scope exit unless release()d; keeps early throws leak-free.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string parent_directory(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Calls `consume(bytes, n)` for each chunk read from fd until EOF; read errors become
// imagine::Error naming `path`.
template <typename Consume>
void read_chunks(int fd, const std::string& path, size_t chunk_size, const char* hint, Consume consume) {
  std::vector<char> chunk(chunk_size);
  for (;;) {
    ssize_t n = ::read(fd, chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      throw Error(str("cannot read ", path, ": ", std::strerror(err)), hint_for_errno(err, hint));
    }
    if (n == 0) break;
    consume(chunk.data(), static_cast<size_t>(n));
  }
}

}  // namespace

std::string read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error(str("cannot open ", path, ": ", std::strerror(err)), hint_for_errno(err, "check the path"));
  }
  FdGuard guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    throw Error(str("cannot stat ", path, ": ", std::strerror(err)), hint_for_errno(err, "check the path"));
  }
  // read() on a directory fails with EISDIR on Linux, but saying so up front is clearer.
  if (S_ISDIR(st.st_mode)) {
    throw Error(str("cannot read ", path, ": Is a directory"),
                "the path names a directory; give a file path");
  }
  std::string out;
  // st_size is only a guess (pipes and /proc report 0), so read until EOF regardless.
  if (S_ISREG(st.st_mode) && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  read_chunks(fd, path, 1 << 16, "check that the file is readable and the disk is healthy",
              [&](const char* p, size_t n) { out.append(p, n); });
  return out;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = str(path, ".tmp.", ::getpid());
  const std::string dir = parent_directory(path);
  const TempFileGuard removed_if_stopped(tmp.c_str());

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    throw Error(str("cannot create ", tmp, ": ", std::strerror(err)),
                hint_for_errno(err, "check that the directory " + dir + " exists and is writable"));
  }
  FdGuard guard(fd);
  // From here on every failure must remove the temp file; the old file is never touched
  // until rename(), which replaces it in one step.
  auto fail = [&](const std::string& action, int err, const std::string& fallback_hint) {
    int fd_to_close = guard.release();
    if (fd_to_close >= 0) ::close(fd_to_close);
    ::unlink(tmp.c_str());
    throw Error(str("cannot ", action, " ", tmp, ": ", std::strerror(err)),
                hint_for_errno(err, fallback_hint));
  };

  // Replacing a file should not silently change its permissions.
  struct stat old_st;
  if (::stat(path.c_str(), &old_st) == 0 && S_ISREG(old_st.st_mode)) {
    if (::fchmod(fd, old_st.st_mode & 07777) != 0) fail("set permissions on", errno, "check permissions");
  }

  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", errno, "check free disk space and permissions");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  // Without fsync a crash after rename() could leave the new name pointing at empty data.
  if (::fsync(fd) != 0) fail("fsync", errno, "check that the disk is healthy");
  // close() can report deferred write errors (e.g. NFS), so it is checked too.
  if (::close(guard.release()) != 0)
    fail("close", errno, "check free disk space and that the disk is healthy");
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(
        str("cannot rename ", tmp, " to ", path, ": ", std::strerror(err)),
        hint_for_errno(err, "check that " + path + " is not a directory and the directory is writable"));
  }

  // The rename itself lives in the directory; fsync it so the new name survives a crash.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    int err = errno;
    throw Error(str("wrote ", path, " but cannot open its directory to sync it: ", std::strerror(err)),
                "the data may not survive a power loss; check the directory permissions");
  }
  FdGuard dguard(dfd);
  // Some file systems cannot fsync directories (EINVAL); the rename is as durable as they allow.
  if (::fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP) {
    int err = errno;
    throw Error(str("wrote ", path, " but cannot sync its directory: ", std::strerror(err)),
                "the data may not survive a power loss; check that the disk is healthy");
  }
}

// ---- SHA-256, written from FIPS 180-4 sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2 ----

namespace {

// First 32 bits of the fractional parts of the cube roots of the first 64 primes (4.2.2).
const uint32_t kRoundConstants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

Sha256::Sha256() : bit_length_(0), buffer_{}, buffered_(0) {
  // First 32 bits of the fractional parts of the square roots of the first 8 primes (5.3.3).
  const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  for (int i = 0; i < 8; i++) state_[i] = initial[i];
}

void Sha256::block(const unsigned char* p) {
  // Message schedule (6.2.2 step 1); words are big-endian regardless of the host.
  uint32_t w[64];
  for (int t = 0; t < 16; t++) {
    w[t] = (uint32_t(p[4 * t]) << 24) | (uint32_t(p[4 * t + 1]) << 16) | (uint32_t(p[4 * t + 2]) << 8) |
           uint32_t(p[4 * t + 3]);
  }
  for (int t = 16; t < 64; t++) {
    uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = s1 + w[t - 7] + s0 + w[t - 16];
  }
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (int t = 0; t < 64; t++) {
    uint32_t big_sigma1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t ch = (e & f) ^ (~e & g);
    uint32_t t1 = h + big_sigma1 + ch + kRoundConstants[t] + w[t];
    uint32_t big_sigma0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = big_sigma0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::update(const void* data, size_t size) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  bit_length_ += uint64_t(size) * 8;  // wraps mod 2^64 as the spec's length field does
  // Top up a partial block first so whole blocks can be hashed straight from the input.
  if (buffered_ > 0) {
    size_t take = 64 - buffered_;
    if (take > size) take = size;
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < 64) return;
    block(buffer_);
    buffered_ = 0;
  }
  while (size >= 64) {
    block(p);
    p += 64;
    size -= 64;
  }
  if (size > 0) {
    std::memcpy(buffer_, p, size);
    buffered_ = size;
  }
}

std::string Sha256::hex_digest() {
  // Padding (5.1.1): a 1 bit, zeros up to 56 mod 64 bytes, then the 64-bit big-endian bit length.
  uint64_t length = bit_length_;
  unsigned char pad[72] = {0x80};
  size_t pad_len = (buffered_ < 56) ? 56 - buffered_ : 120 - buffered_;
  for (int i = 0; i < 8; i++) pad[pad_len + i] = static_cast<unsigned char>(length >> (56 - 8 * i));
  update(pad, pad_len + 8);

  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (int i = 0; i < 8; i++) {
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(kHex[(state_[i] >> shift) & 0xf]);
  }
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex_digest();
}

std::string sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    throw Error(str("cannot open ", path, ": ", std::strerror(err)), hint_for_errno(err, "check the path"));
  }
  FdGuard guard(fd);
  // Streamed so hashing a large dataset file does not need it all in memory.
  Sha256 h;
  read_chunks(fd, path, 1 << 20, "check that the path is a readable file",
              [&](const char* p, size_t n) { h.update(p, n); });
  return h.hex_digest();
}

}  // namespace imagine
