// Tests for core/safetensors: round trips for every dtype, the exact byte layout Python's
// safetensors expects, and refusal (an imagine::Error, never a crash) of damaged or hostile files.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/safetensors.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using TensorMap = std::map<std::string, torch::Tensor>;

namespace {

const char* const kWhat = "checkpoint test.safetensors";

std::string le_u64(uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; i++) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return s;
}

uint64_t read_le_u64(const std::string& bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= uint64_t(static_cast<unsigned char>(bytes[i])) << (8 * i);
  return v;
}

// A file from a literal header, without the sha256 our writer adds, as another tool might write it.
std::string make_file(const std::string& header, const std::string& data) {
  return le_u64(header.size()) + header + data;
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// Asserts parse_safetensors refuses `bytes` with an imagine::Error naming kWhat, containing
// `needle` (if given) and carrying a hint.
void expect_refused(const std::string& bytes, const std::string& needle = "") {
  try {
    imagine::parse_safetensors(bytes, kWhat);
    ADD_FAILURE() << "accepted a bad file; expected message containing \"" << needle << "\"";
  } catch (const imagine::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(kWhat), std::string::npos) << msg;
    if (!needle.empty()) {
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
    EXPECT_FALSE(e.hint().empty()) << msg;
  }
}

TensorMap sample_tensors() {
  TensorMap m;
  m["a.weight"] = torch::arange(6, torch::kFloat32).reshape({2, 3}) * 0.5 - 1;
  m["b.bias"] = torch::tensor({1, -2, 3}, torch::kInt64);
  m["c.mask"] = torch::tensor({true, false, true, true}, torch::kBool);
  return m;
}

// Values that every dtype can hold exactly (bool takes x != 0).
torch::Tensor sample_of(torch::ScalarType type, at::IntArrayRef shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  torch::Tensor base = torch::arange(n, torch::kFloat64) - n / 2;
  if (type == torch::kUInt8) base = torch::arange(n, torch::kFloat64) * 3;
  if (type == torch::kBool) base = torch::remainder(torch::arange(n, torch::kFloat64), 3) == 0;
  if (type == torch::kFloat32 || type == torch::kFloat64 || type == torch::kFloat16) base = base * 0.25;
  return base.to(type).reshape(shape);
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeAndShape) {
  const std::vector<torch::ScalarType> types = {
      torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16, torch::kInt64,
      torch::kInt32,   torch::kInt16,   torch::kInt8,    torch::kUInt8,    torch::kBool};
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {5}, {2, 3}, {3, 0, 2}, {2, 1, 3, 2}};
  TensorMap in;
  for (size_t t = 0; t < types.size(); t++) {
    for (size_t s = 0; s < shapes.size(); s++) {
      in["t" + std::to_string(t) + "_s" + std::to_string(s)] = sample_of(types[t], shapes[s]);
    }
  }
  const std::string bytes = imagine::safetensors_bytes(in, {{"step", "42"}, {"note", "héllo"}});
  imagine::SafetensorsFile out = imagine::parse_safetensors(bytes, kWhat);

  ASSERT_EQ(out.tensors.size(), in.size());
  const char* lo = bytes.data();
  const char* hi = bytes.data() + bytes.size();
  for (const auto& [name, want] : in) {
    ASSERT_EQ(out.tensors.count(name), 1u) << name;
    const torch::Tensor& got = out.tensors.at(name);
    EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), want.sizes()) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_EQ(got.device(), torch::Device(torch::kCPU)) << name;
    EXPECT_TRUE(torch::equal(got, want)) << name;
    // Must own its memory, not alias the parse buffer.
    const char* p = static_cast<const char*>(got.data_ptr());
    if (got.numel() > 0) {
      EXPECT_FALSE(p >= lo && p < hi) << name;
    }
  }
  EXPECT_EQ(out.metadata.at("step"), "42");
  EXPECT_EQ(out.metadata.at("note"), "héllo");
  EXPECT_EQ(out.metadata.count("sha256"), 1u);
}

TEST(Safetensors, NonContiguousInputIsSavedInLogicalOrder) {
  torch::Tensor base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  TensorMap in = {{"t", base.t()},
                  {"s", base.index({torch::indexing::Slice(), torch::indexing::Slice(0, 4, 2)})}};
  imagine::SafetensorsFile out = imagine::parse_safetensors(imagine::safetensors_bytes(in), kWhat);
  EXPECT_TRUE(torch::equal(out.tensors.at("t"), base.t()));
  EXPECT_TRUE(torch::equal(out.tensors.at("s"), in.at("s")));
}

TEST(Safetensors, EmptyMapRoundTrips) {
  imagine::SafetensorsFile out = imagine::parse_safetensors(imagine::safetensors_bytes({}), kWhat);
  EXPECT_TRUE(out.tensors.empty());
  EXPECT_EQ(out.metadata.size(), 1u);  // just sha256
}

TEST(Safetensors, ByteLayoutMatchesTheFormat) {
  TensorMap in = {{"b", torch::tensor({7, 8, 9}, torch::kInt64)}, {"a", torch::tensor({1.5f, -2.0f})}};
  const std::string bytes = imagine::safetensors_bytes(in, {{"k", "v"}});

  ASSERT_GE(bytes.size(), 8u);
  const uint64_t n = read_le_u64(bytes);
  EXPECT_EQ(n % 8, 0u);  // padded so the data section is 8-byte aligned
  ASSERT_EQ(bytes.size(), 8 + n + 8 + 24);
  const std::string header_text = bytes.substr(8, n);
  EXPECT_EQ(header_text.front(), '{');
  json header = json::parse(header_text);
  ASSERT_TRUE(header.is_object());

  // Tensors in name order: "a" first even though "b" was inserted first.
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["a"]["shape"], json::array({2}));
  EXPECT_EQ(header["a"]["data_offsets"], json::array({0, 8}));
  EXPECT_EQ(header["b"]["dtype"], "I64");
  EXPECT_EQ(header["b"]["shape"], json::array({3}));
  EXPECT_EQ(header["b"]["data_offsets"], json::array({8, 32}));
  EXPECT_EQ(header["__metadata__"]["k"], "v");

  const std::string data = bytes.substr(8 + n);
  EXPECT_EQ(data.substr(0, 8), float_bytes({1.5f, -2.0f}));
  const int64_t longs[3] = {7, 8, 9};
  EXPECT_EQ(data.substr(8), std::string(reinterpret_cast<const char*>(longs), 24));
  EXPECT_EQ(header["__metadata__"]["sha256"], imagine::sha256_hex(data));
}

TEST(Safetensors, ZeroDimAndEmptyShapesInHeader) {
  TensorMap in = {{"scalar", torch::tensor(3.0f)}, {"empty", torch::zeros({0, 4}, torch::kInt32)}};
  const std::string bytes = imagine::safetensors_bytes(in);
  json header = json::parse(bytes.substr(8, read_le_u64(bytes)));
  EXPECT_EQ(header["scalar"]["shape"], json::array());
  EXPECT_EQ(header["empty"]["shape"], json::array({0, 4}));
  EXPECT_EQ(header["empty"]["data_offsets"], json::array({0, 0}));
  EXPECT_EQ(header["scalar"]["data_offsets"], json::array({0, 4}));
  imagine::SafetensorsFile out = imagine::parse_safetensors(bytes, kWhat);
  EXPECT_EQ(out.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(out.tensors.at("scalar").item<float>(), 3.0f);
  EXPECT_EQ(out.tensors.at("empty").sizes(), (std::vector<int64_t>{0, 4}));
}

TEST(Safetensors, ReadsFilesWrittenByOtherTools) {
  // No checksum, no padding, offsets not in name order: still valid safetensors.
  const std::string header = R"({"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("a":{"dtype":"U8","shape":[2,2],"data_offsets":[8,12]}})";
  const std::string data = float_bytes({0.25f, 4.0f}) + std::string("\x01\x02\x03\x04", 4);
  imagine::SafetensorsFile out = imagine::parse_safetensors(make_file(header, data), kWhat);
  EXPECT_TRUE(torch::equal(out.tensors.at("z"), torch::tensor({0.25f, 4.0f})));
  EXPECT_TRUE(torch::equal(out.tensors.at("a"), torch::tensor({1, 2, 3, 4}, torch::kUInt8).reshape({2, 2})));
  EXPECT_TRUE(out.metadata.empty());
}

TEST(Safetensors, SaveAndLoadFile) {
  const std::string dir = imagine::testing::make_temp_dir("imagine_st_");
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/model.safetensors";

  TensorMap in = sample_tensors();
  imagine::save_safetensors(path, in, {{"epoch", "3"}});
  imagine::SafetensorsFile out = imagine::load_safetensors(path);
  for (const auto& [name, t] : in) EXPECT_TRUE(torch::equal(out.tensors.at(name), t)) << name;
  EXPECT_EQ(out.metadata.at("epoch"), "3");

  // A damaged file on disk is refused with its path in the message.
  std::string bytes = imagine::read_file(path);
  bytes[bytes.size() - 1] ^= 0x01;
  imagine::write_file_atomic(path, bytes);
  try {
    imagine::load_safetensors(path);
    ADD_FAILURE() << "loaded a corrupted file";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(imagine::load_safetensors(dir + "/missing.safetensors"), imagine::Error);
  fs::remove_all(dir);
}

TEST(Safetensors, WriterRefusesWhatItCannotEncode) {
  EXPECT_THROW(imagine::safetensors_bytes({{"c", torch::zeros({2}, torch::kComplexFloat)}}), imagine::Error);
  EXPECT_THROW(imagine::safetensors_bytes({{"__metadata__", torch::zeros({2})}}), imagine::Error);
  EXPECT_THROW(imagine::safetensors_bytes({{"bad\xff", torch::zeros({2})}}), imagine::Error);
}

// ---- refusals ----

TEST(SafetensorsRefuses, EveryTruncation) {
  const std::string bytes = imagine::safetensors_bytes(sample_tensors(), {{"k", "v"}});
  for (size_t cut = 0; cut < bytes.size(); cut++) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes.size()));
    expect_refused(bytes.substr(0, cut));
  }
}

TEST(SafetensorsRefuses, TrailingGarbage) {
  const std::string bytes = imagine::safetensors_bytes(sample_tensors());
  expect_refused(bytes + "x", "trailing");
}

TEST(SafetensorsRefuses, EveryFlippedBitInTheDataSection) {
  const std::string bytes = imagine::safetensors_bytes(sample_tensors());
  const size_t data_start = 8 + read_le_u64(bytes);
  ASSERT_LT(data_start, bytes.size());
  for (size_t i = data_start; i < bytes.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = bytes;
      bad[i] ^= static_cast<char>(1 << bit);
      SCOPED_TRACE("byte " + std::to_string(i) + " bit " + std::to_string(bit));
      expect_refused(bad, "checksum mismatch");
    }
  }
}

TEST(SafetensorsRefuses, EveryFlippedByteInTheHeader) {
  // Inverting any byte of the length field or the JSON breaks the length, the JSON (a lone
  // byte >= 0x80 is invalid UTF-8), or the recorded checksum.
  const std::string bytes = imagine::safetensors_bytes(sample_tensors(), {{"k", "v"}});
  const size_t data_start = 8 + read_le_u64(bytes);
  for (size_t i = 0; i < data_start; i++) {
    std::string bad = bytes;
    bad[i] ^= static_cast<char>(0xff);
    SCOPED_TRACE("byte " + std::to_string(i));
    expect_refused(bad);
  }
}

TEST(SafetensorsRefuses, ChangedChecksumInHeader) {
  TensorMap in = sample_tensors();
  const std::string good = imagine::safetensors_bytes(in);
  std::string bytes = good;
  const std::string sum = imagine::sha256_hex(bytes.substr(8 + read_le_u64(bytes)));
  size_t at = bytes.find(sum);
  ASSERT_NE(at, std::string::npos);
  bytes[at] = bytes[at] == '0' ? '1' : '0';  // still valid JSON, still a hex string
  expect_refused(bytes, "checksum mismatch");
}

TEST(SafetensorsRefuses, HeaderLengthLargerThanFile) {
  const std::string bytes = imagine::safetensors_bytes(sample_tensors());
  expect_refused(le_u64(bytes.size()) + bytes.substr(8), "header length");
  expect_refused(le_u64(~uint64_t{0}) + bytes.substr(8), "header length");
  expect_refused(le_u64(200'000'000) + std::string(64, ' '), "limit");
}

TEST(SafetensorsRefuses, TooShort) {
  expect_refused("", "too short");
  expect_refused(std::string(7, '\0'), "too short");
}

TEST(SafetensorsRefuses, BadJson) {
  expect_refused(make_file("{\"a\": ", ""), "not valid JSON");
  expect_refused(make_file("[]", ""), "not an object");
  expect_refused(make_file("  ", ""), "not valid JSON");
  expect_refused(make_file(std::string(10000, '[') + std::string(10000, ']'), ""), "nested");
  expect_refused(make_file(R"({"__metadata__": {"k": 1}})", ""), "__metadata__");
  expect_refused(make_file(R"({"__metadata__": "x"})", ""), "__metadata__");
  expect_refused(make_file(R"({"a": 5})", ""), "\"a\"");
}

TEST(SafetensorsRefuses, UnknownDtype) {
  expect_refused(make_file(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')),
                 "unsupported dtype \"C64\"");
  expect_refused(make_file(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                 "unsupported dtype");
  expect_refused(make_file(R"({"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')),
                 "dtype");
  expect_refused(make_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')), "dtype");
}

TEST(SafetensorsRefuses, BadShapes) {
  const std::string d4(4, '\0');
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d4), "shape");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", d4), "shape");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", d4), "shape");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", d4), "shape");
  expect_refused(make_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", d4), "shape");
  std::string many_dims = "[";
  for (int i = 0; i < 100; i++) many_dims += i ? ",1" : "1";
  many_dims += "]";
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":)" + many_dims + R"(,"data_offsets":[0,4]}})", d4),
                 "dimensions");
}

TEST(SafetensorsRefuses, HugeShapes) {
  // Products that wrap around 2^64 to small numbers must not slip through.
  const std::string d4(4, '\0');
  expect_refused(
      make_file(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}})", d4),
      "large");
  // 2^62 * 4 bytes wraps to 0.
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""),
                 "large");
  // 2^32 * 2^32 wraps to 0 elements.
  expect_refused(
      make_file(R"({"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", ""), "large");
  // An empty tensor whose other dims are absurd.
  expect_refused(
      make_file(R"({"a":{"dtype":"U8","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", ""),
      "large");
  expect_refused(
      make_file(R"({"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", "x"), "large");
  expect_refused(make_file(R"({"a":{"dtype":"U8","shape":[1e30],"data_offsets":[0,1]}})", "x"), "shape");
}

TEST(SafetensorsRefuses, OffsetsOutOfBounds) {
  const std::string d8(8, '\0');
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d8), "past the end");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", d8), "past the end");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", d8),
                 "begin after end");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", d8), "data_offsets");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", d8), "data_offsets");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", d8),
                 "data_offsets");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2]}})", d8), "data_offsets");
  expect_refused(
      make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", d8),
      "past the end");
}

TEST(SafetensorsRefuses, ShapeOffsetMismatch) {
  const std::string d8(8, '\0');
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8), "span");
  expect_refused(make_file(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", d8), "span");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,8]}})", d8), "span");
}

TEST(SafetensorsRefuses, OverlapsAndHoles) {
  const std::string d8(8, '\0');
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           d8),
                 "overlap");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                           d8),
                 "overlap");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8), "unused bytes");
  expect_refused(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8), "trailing");
  expect_refused(make_file(R"({})", d8), "trailing");
}

TEST(SafetensorsRefuses, InvalidBoolBytes) {
  expect_refused(
      make_file(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
      "BOOL");
}

TEST(SafetensorsRefuses, RandomMutationsNeverCrash) {
  // Whatever the mutation, the parser must either accept or throw imagine::Error; any other
  // exception or a crash fails the test.
  const std::string good = imagine::safetensors_bytes(sample_tensors(), {{"k", "v"}});
  std::mt19937 rng(12345);
  for (int iter = 0; iter < 3000; iter++) {
    std::string bad = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; k++) {
      size_t at = rng() % bad.size();
      switch (rng() % 3) {
        case 0:
          bad[at] = static_cast<char>(rng());
          break;
        case 1:
          bad.erase(at, 1 + rng() % 8);
          break;
        default:
          bad.insert(at, 1, static_cast<char>(rng()));
      }
      if (bad.empty()) break;
    }
    try {
      imagine::parse_safetensors(bad, kWhat);
    } catch (const imagine::Error&) {
    }
  }
}
