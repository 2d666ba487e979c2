// File I/O shared by every format: whole-file reads with clear errors, atomic writes
// (temp file + fsync + rename + directory fsync), and SHA-256 for dataset records and
// checkpoint integrity. No memory mapping: checkpoints here are small enough to read whole.
#pragma once
#include <cstdint>
#include <string>

namespace imagine {

// Reads a whole file. Throws imagine::Error (with a hint) when missing or unreadable.
std::string read_file(const std::string& path);

// Writes bytes to path atomically: a crash leaves either the old file or the new one,
// never a mix. Creates no parent directories. Throws imagine::Error on failure.
void write_file_atomic(const std::string& path, const std::string& bytes);

// SHA-256 as 64 lowercase hex digits.
std::string sha256_hex(const void* data, size_t size);
inline std::string sha256_hex(const std::string& bytes) { return sha256_hex(bytes.data(), bytes.size()); }
std::string sha256_file(const std::string& path);

// Incremental SHA-256 for streaming large inputs.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  std::string hex_digest();  // finalises; the object must not be updated afterwards

 private:
  uint32_t state_[8];
  uint64_t bit_length_;
  unsigned char buffer_[64];
  size_t buffered_;
  void block(const unsigned char* p);
};

}  // namespace imagine
