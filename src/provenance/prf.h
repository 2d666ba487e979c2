// The keyed pseudorandom function behind every watermark: SipHash-2-4 (Aumasson and
// Bernstein, 2012), written here from the paper's description. It is portable (the same
// bits on every CPU, compiler and device) and independent of torch's RNG, so a mark made
// on one machine is detected on any other.
#pragma once
#include <cstdint>
#include <string>

namespace imagine {

// A 128-bit SipHash key (k0, k1), derived from a longer secret with derive_prf_key.
struct PrfKey {
  uint64_t k0 = 0, k1 = 0;
};

// SipHash-2-4 of `len` bytes.
uint64_t siphash24(const PrfKey& key, const void* data, size_t len);

// SipHash-2-4 of 1 to 4 64-bit words (little-endian bytes), the common case: hashing token
// ids and seeds without building a buffer.
uint64_t prf(const PrfKey& key, uint64_t a);
uint64_t prf(const PrfKey& key, uint64_t a, uint64_t b);
uint64_t prf(const PrfKey& key, uint64_t a, uint64_t b, uint64_t c);

// A sub-key for one purpose ("kgw", "image", ...) of a 32-byte secret: SHA-256(purpose ||
// 0x00 || secret), first 16 bytes. Different purposes never share PRF outputs.
PrfKey derive_prf_key(const std::string& secret, const std::string& purpose);

}  // namespace imagine
