// See prf.h. SipHash-2-4: 2 compression rounds per 8-byte word, 4 finalisation rounds.
#include "provenance/prf.h"

#include <cstring>

#include "core/files.h"

namespace imagine {

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  explicit SipState(const PrfKey& k)
      : v0(k.k0 ^ 0x736f6d6570736575ULL),
        v1(k.k1 ^ 0x646f72616e646f6dULL),
        v2(k.k0 ^ 0x6c7967656e657261ULL),
        v3(k.k1 ^ 0x7465646279746573ULL) {}
  void round() {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  }
  void word(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  uint64_t finish(uint64_t last) {
    word(last);
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++) round();
    return v0 ^ v1 ^ v2 ^ v3;
  }
};

inline uint64_t load_le(const unsigned char* p, size_t n) {
  uint64_t m = 0;
  for (size_t i = 0; i < n; i++) m |= uint64_t(p[i]) << (8 * i);
  return m;
}

}  // namespace

uint64_t siphash24(const PrfKey& key, const void* data, size_t len) {
  SipState s(key);
  const auto* p = static_cast<const unsigned char*>(data);
  const size_t full = len / 8 * 8;
  for (size_t i = 0; i < full; i += 8) s.word(load_le(p + i, 8));
  // The last word holds the remaining bytes and the length's low byte on top.
  return s.finish(load_le(p + full, len - full) | (uint64_t(len & 0xff) << 56));
}

// Word inputs are hashed exactly as their little-endian bytes would be by siphash24.
uint64_t prf(const PrfKey& key, uint64_t a) {
  SipState s(key);
  s.word(a);
  return s.finish(uint64_t(8) << 56);
}
uint64_t prf(const PrfKey& key, uint64_t a, uint64_t b) {
  SipState s(key);
  s.word(a);
  s.word(b);
  return s.finish(uint64_t(16) << 56);
}
uint64_t prf(const PrfKey& key, uint64_t a, uint64_t b, uint64_t c) {
  SipState s(key);
  s.word(a);
  s.word(b);
  s.word(c);
  return s.finish(uint64_t(24) << 56);
}

PrfKey derive_prf_key(const std::string& secret, const std::string& purpose) {
  std::string buf = purpose;
  buf.push_back('\0');
  buf += secret;
  const std::string hex = sha256_hex(buf);
  PrfKey k;
  k.k0 = std::stoull(hex.substr(0, 16), nullptr, 16);
  k.k1 = std::stoull(hex.substr(16, 16), nullptr, 16);
  return k;
}

}  // namespace imagine
