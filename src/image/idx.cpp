// IDX files (the MNIST family's format) and the whole-file gzip they are shipped in.
// Only unsigned-byte arrays are read: every IDX data set imagine trains on is 8-bit, and
// refusing the other type codes is clearer than converting them silently.
//
// Layout (big-endian): 0x00 0x00 <type> <ndims>, then ndims 32-bit sizes, then the data.
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/files.h"
#include "image/image.h"

namespace imagine {

namespace {

constexpr unsigned char kIdxUnsignedByte = 0x08;
constexpr int kMaxIdxDims = 4;
constexpr size_t kGzipChunk = size_t(1) << 20;

const char* kIdxHint = "the file is damaged or not an IDX file; re-download the data set";

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Names the IDX element types, so a refusal says what the file actually holds.
const char* idx_type_name(unsigned char code) {
  switch (code) {
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

// Ends the zlib stream however the caller leaves (inflateEnd is safe after inflateInit2).
struct InflateGuard {
  z_stream* zs;
  ~InflateGuard() { inflateEnd(zs); }
};

}  // namespace

IdxArray parse_idx(const std::string& bytes, const std::string& what) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  IMAGINE_CHECK(bytes.size() >= 4, kIdxHint, what, ": too short for an IDX header (", bytes.size(), " bytes)");
  IMAGINE_CHECK(p[0] == 0 && p[1] == 0, kIdxHint, what, ": bad IDX magic (the first two bytes must be zero)");
  IMAGINE_CHECK(p[2] == kIdxUnsignedByte, "only unsigned-byte IDX files (type 0x08) are supported, as in MNIST",
                what, ": IDX type code 0x", std::hex, int(p[2]), std::dec, " (", idx_type_name(p[2]),
                ") is not supported");
  const int ndims = p[3];
  IMAGINE_CHECK(ndims >= 1 && ndims <= kMaxIdxDims, kIdxHint, what, ": IDX declares ", ndims,
                " dimensions; 1 to ", kMaxIdxDims, " are supported");
  const size_t header = 4 + 4 * size_t(ndims);
  IMAGINE_CHECK(bytes.size() >= header, kIdxHint, what, ": truncated IDX header (", bytes.size(), " bytes, ", header,
                " needed)");

  IdxArray out;
  const size_t payload = bytes.size() - header;
  // The product is checked against the bytes actually present at every step, so a huge
  // or overflowing declaration is refused before it can wrap round or allocate.
  size_t expected = 1;
  bool too_big = false;
  for (int i = 0; i < ndims; i++) {
    const uint32_t dim = read_be32(p + 4 + 4 * i);
    IMAGINE_CHECK(dim > 0, kIdxHint, what, ": IDX dimension ", i, " is zero");
    out.dims.push_back(int64_t(dim));
    if (too_big || dim > payload / expected) {
      too_big = true;
    } else {
      expected *= dim;
    }
  }
  std::string shape;
  for (size_t i = 0; i < out.dims.size(); i++) shape += (i ? "x" : "") + std::to_string(out.dims[i]);
  IMAGINE_CHECK(!too_big && expected == payload, kIdxHint, what, ": IDX shape ", shape,
                too_big || expected > payload ? " needs more data than the file holds (truncated?): "
                                              : " is smaller than the file (extra bytes at the end): ",
                payload, " bytes of data");
  out.data.assign(p + header, p + bytes.size());
  return out;
}

std::string gunzip(const std::string& bytes, const std::string& what) {
  const char* hint = "the file is damaged or incomplete; re-download it";
  IMAGINE_CHECK(is_gzip(bytes), hint, what, ": not a gzip file");
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  // 16 + MAX_WBITS: expect a gzip header and trailer (CRC-32 and length are checked).
  IMAGINE_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "the machine may be out of memory", what,
                ": cannot initialise zlib");
  InflateGuard guard{&zs};

  std::string out;
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t in_pos = 0;
  unsigned char buffer[1 << 16];
  bool ended = false;  // the last member's trailer has been read
  for (;;) {
    // avail_in is 32 bits wide; feed big inputs a slice at a time.
    if (zs.avail_in == 0 && in_pos < bytes.size()) {
      const size_t slice = std::min(bytes.size() - in_pos, kGzipChunk);
      zs.next_in = const_cast<unsigned char*>(in + in_pos);
      zs.avail_in = static_cast<uInt>(slice);
      in_pos += slice;
    }
    zs.next_out = buffer;
    zs.avail_out = sizeof buffer;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    const size_t produced = sizeof buffer - zs.avail_out;
    IMAGINE_CHECK(out.size() + produced <= kMaxGunzipBytes, "is this really a data set file?", what,
                  ": decompresses to more than ", (kMaxGunzipBytes >> 20), " MiB");
    out.append(reinterpret_cast<const char*>(buffer), produced);
    if (rc == Z_STREAM_END) {
      ended = true;
      if (zs.avail_in == 0 && in_pos == bytes.size()) break;
      // More input: gzip allows several members back to back; anything else fails below.
      IMAGINE_CHECK(inflateReset(&zs) == Z_OK, hint, what, ": cannot restart zlib");
      ended = false;
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_pos == bytes.size()) break;  // input ran out
    IMAGINE_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, hint, what, ": corrupt gzip data (",
                  zs.msg ? zs.msg : "zlib error", ")");
  }
  IMAGINE_CHECK(ended, hint, what, ": truncated gzip data (the download may be incomplete)");
  return out;
}

IdxArray read_idx(const std::string& path) {
  const std::string bytes = read_file(path);
  if (is_gzip(bytes)) return parse_idx(gunzip(bytes, path), path);
  return parse_idx(bytes, path);
}

}  // namespace imagine
