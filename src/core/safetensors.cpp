// Safetensors reader and writer. The parser treats every file as hostile: all sizes are
// checked (overflow-safe) before anything is allocated, so bad input gives an Error, not a crash.
#include "core/safetensors.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/files.h"

// Tensor bytes are copied between the file and torch storage verbatim, and safetensors is
// little-endian, so a big-endian host would silently load garbage.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace imagine {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr size_t kMaxDims = 64;                    // far beyond any real tensor; keeps torch sane
constexpr int kMaxJsonDepth = 16;                  // a valid header needs 3 levels
const char* const kCorruptHint = "the file is truncated or corrupted; re-save it or use another checkpoint";

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8},   {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},   {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},     {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const DtypeInfo& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const DtypeInfo& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

void put_u64_le(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; i++) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_u64_le(const std::string& bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return v;
}

// nlohmann's parser and destructor are iterative, but a 100 MB "[[[[..." header would still
// build a huge useless tree; a cheap depth scan refuses it first.
bool json_depth_ok(const char* p, size_t n) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (in_string) {
      if (c == '\\') {
        i++;  // skip the escaped character, which may be a quote
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return true;
}

// JSON for an error message, cut short: hostile headers can hold megabyte-long values.
std::string short_dump(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

// A JSON value as a non-negative integer, or false when it is anything else (negative,
// fractional, too large for u64 - nlohmann stores those as floats).
bool as_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer()) {
    int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

// Validates one header entry against the data section size; nothing is allocated from
// the values until they are known to fit in the file.
Entry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& what) {
  auto fail = [&](const std::string& problem) -> Error {
    return Error(str(what, ": tensor \"", name, "\" ", problem), kCorruptHint);
  };
  if (!v.is_object()) throw fail("has a header entry that is not a JSON object");
  Entry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) throw fail("has no \"dtype\" string");
  e.dtype = dtype_by_name(dt->get<std::string>());
  if (e.dtype == nullptr) {
    throw Error(str(what, ": tensor \"", name, "\" has unsupported dtype \"", dt->get<std::string>(), "\""),
                "supported dtypes are F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL; convert the checkpoint, "
                "or the file is corrupted");
  }

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) throw fail("has no \"shape\" array");
  if (sh->size() > kMaxDims)
    throw fail(str("has ", sh->size(), " dimensions (at most ", kMaxDims, " allowed)"));
  // numel is computed overflow-safely; a shape like [2^40, 2^40] must not wrap to a small
  // number that happens to match the offsets. Zero-size dims count as 1 here so that torch's
  // own stride arithmetic cannot overflow even for empty tensors.
  const uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  uint64_t numel = 1;
  uint64_t extent = 1;
  for (const json& d : *sh) {
    uint64_t dim;
    if (!as_u64(d, &dim))
      throw fail(str("has a shape entry that is not a non-negative integer: ", short_dump(d)));
    if (dim > kLimit) throw fail(str("has an impossibly large dimension ", dim));
    uint64_t nonzero = dim == 0 ? 1 : dim;
    if (extent > kLimit / nonzero) throw fail(str("has an impossibly large shape ", short_dump(*sh)));
    extent *= nonzero;
    numel *= dim;  // bounded by extent, so it cannot overflow either
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  if (numel > std::numeric_limits<uint64_t>::max() / e.dtype->size) {
    throw fail(str("has an impossibly large shape ", short_dump(*sh)));
  }
  uint64_t nbytes = numel * e.dtype->size;

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2)
    throw fail("has no \"data_offsets\" [begin, end] pair");
  if (!as_u64((*off)[0], &e.begin) || !as_u64((*off)[1], &e.end)) {
    throw fail(str("has data_offsets that are not non-negative integers: ", short_dump(*off)));
  }
  if (e.begin > e.end) throw fail(str("has data_offsets with begin after end: ", short_dump(*off)));
  if (e.end > data_size) {
    throw fail(str("has data_offsets ", short_dump(*off), " past the end of the data section (", data_size,
                   " bytes)"));
  }
  if (e.end - e.begin != nbytes) {
    throw fail(str("has shape ", short_dump(*sh), " of ", e.dtype->name, " needing ", nbytes,
                   " bytes but data_offsets ", short_dump(*off), " span ", e.end - e.begin, " bytes"));
  }
  return e;
}

SafetensorsFile parse_checked(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 8) {
    throw Error(
        str(what, ": only ", bytes.size(), " bytes, too short for a safetensors file (8-byte header length)"),
        kCorruptHint);
  }
  const uint64_t header_len = get_u64_le(bytes);
  const uint64_t available = bytes.size() - 8;
  if (header_len > kMaxHeaderBytes) {
    throw Error(str(what, ": header length ", header_len, " exceeds the ", kMaxHeaderBytes, "-byte limit"),
                kCorruptHint);
  }
  if (header_len > available) {
    throw Error(str(what, ": header length ", header_len, " is larger than the ", available,
                    " bytes after the length field"),
                kCorruptHint);
  }
  const char* header_begin = bytes.data() + 8;
  const char* data = header_begin + header_len;
  const uint64_t data_size = available - header_len;

  if (!json_depth_ok(header_begin, header_len)) {
    throw Error(str(what, ": header JSON is nested deeper than ", kMaxJsonDepth, " levels"), kCorruptHint);
  }
  json header = json::parse(header_begin, data, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) throw Error(str(what, ": header is not valid JSON"), kCorruptHint);
  if (!header.is_object()) throw Error(str(what, ": header is JSON but not an object"), kCorruptHint);

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) throw Error(str(what, ": __metadata__ is not a JSON object"), kCorruptHint);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) {
          throw Error(str(what, ": __metadata__ value for \"", m.key(), "\" is not a string"), kCorruptHint);
        }
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(it.key(), *it, data_size, what));
  }

  // Sorting by (begin, end) lets one sweep find overlaps and holes; empty tensors sit at
  // any offset without claiming bytes.
  std::vector<const Entry*> by_offset;
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    if (e->begin < cursor) {
      throw Error(str(what, ": tensors \"", previous ? previous->name : "?", "\" and \"", e->name,
                      "\" overlap in the data section"),
                  kCorruptHint);
    }
    if (e->begin > cursor) {
      throw Error(str(what, ": data section has unused bytes [", cursor, ", ", e->begin, ") before tensor \"",
                      e->name, "\""),
                  kCorruptHint);
    }
    cursor = e->end;
    if (e->end > e->begin) previous = e;
  }
  if (cursor != data_size) {
    throw Error(
        str(what, ": data section has ", data_size - cursor, " trailing bytes no tensor accounts for"),
        kCorruptHint);
  }

  auto checksum = out.metadata.find("sha256");
  if (checksum != out.metadata.end()) {
    std::string actual = sha256_hex(data, data_size);
    std::string expected = checksum->second;
    std::transform(expected.begin(), expected.end(), expected.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (actual != expected) {
      throw Error(str(what, ": checksum mismatch (header says sha256 ", checksum->second, ", data has ",
                      actual, "): the file is corrupted"),
                  "restore the file from a backup or use another checkpoint");
    }
  }

  for (const Entry& e : entries) {
    // Copied into fresh storage: the result must not point into the caller's buffer,
    // and the buffer gives no alignment guarantee.
    uint64_t nbytes = e.end - e.begin;
    if (e.dtype->type == torch::kBool) {
      // Any byte other than 0 or 1 is not a valid C++ bool; using it is undefined behaviour.
      const unsigned char* b = reinterpret_cast<const unsigned char*>(data + e.begin);
      for (uint64_t i = 0; i < nbytes; i++) {
        if (b[i] > 1) {
          throw Error(
              str(what, ": BOOL tensor \"", e.name, "\" holds byte ", int(b[i]), " (only 0 and 1 are valid)"),
              kCorruptHint);
        }
      }
    }
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type).device(torch::kCPU));
    if (nbytes > 0) std::memcpy(t.data_ptr(), data + e.begin, nbytes);
    out.tensors[e.name] = t;
  }
  return out;
}

}  // namespace

std::string safetensors_bytes(const std::map<std::string, torch::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> cpu;
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") {
      throw Error("cannot save a tensor named \"__metadata__\": the name is reserved by safetensors",
                  "rename the tensor");
    }
    if (!tensor.defined()) throw Error(str("cannot save tensor \"", name, "\": it is undefined"), "");
    const DtypeInfo* dt = dtype_by_type(tensor.scalar_type());
    if (dt == nullptr) {
      throw Error(str("cannot save tensor \"", name, "\": dtype ", c10::toString(tensor.scalar_type()),
                      " is not supported"),
                  "convert it to one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL first");
    }
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dt->size;
    header[name] = {
        {"dtype", dt->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(t);
  }

  std::string data;
  data.reserve(offset);
  for (const torch::Tensor& t : cpu) {
    data.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  }

  json meta = json::object();
  for (const auto& [key, value] : metadata) meta[key] = value;
  meta["sha256"] = sha256_hex(data);  // ours wins: a stale caller-supplied checksum would fail every load
  header["__metadata__"] = meta;

  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const json::exception& e) {
    throw Error(str("cannot encode safetensors header: ", e.what()),
                "tensor names and metadata must be valid UTF-8");
  }
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned,
  // as the reference implementation does.
  while (header_text.size() % 8 != 0) header_text.push_back(' ');

  std::string out;
  out.reserve(8 + header_text.size() + data.size());
  put_u64_le(out, header_text.size());
  out += header_text;
  out += data;
  return out;
}

void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, safetensors_bytes(tensors, metadata));
}

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what) {
  // Checks above are meant to catch everything; this net turns any library exception that
  // slips through (bad_alloc included) into the Error every caller expects.
  try {
    return parse_checked(bytes, what);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(str(what, ": cannot parse safetensors data: ", e.what()), kCorruptHint);
  }
}

SafetensorsFile load_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

}  // namespace imagine
