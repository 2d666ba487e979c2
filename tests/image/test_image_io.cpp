// Tests for image/: PNG, JPEG and IDX decoding against files built here with libpng,
// libjpeg and zlib directly (an independent encoder for every decoder), corrupt and hostile
// inputs that must throw imagine::Error rather than crash, and the pixel operations.
#include <gtest/gtest.h>

#include <png.h>
#include <zlib.h>

#include <cstdio>  // before jpeglib.h, which uses FILE

#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "image/image.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::Image;

namespace {

class ImageIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_image_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

// A deterministic image whose every sample differs from its neighbours'.
Image pattern(int w, int h, int c) {
  Image img(w, h, c);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      for (int k = 0; k < c; k++) img.at(x, y, k) = uint8_t((x * 37 + y * 91 + k * 53 + x * y) & 0xFF);
    }
  }
  return img;
}

// ---- an independent PNG writer: libpng's classic API, any colour type and depth ----

struct RawPng {
  int width = 0;
  int height = 0;
  int bit_depth = 8;
  int color_type = PNG_COLOR_TYPE_GRAY;
  bool interlace = false;
  std::vector<std::string> rows;   // packed rows exactly as stored in the file (16-bit big-endian)
  std::vector<png_color> palette;  // PNG_COLOR_TYPE_PALETTE only
  std::vector<png_byte> trans_alpha;  // palette tRNS
  bool has_trans_color = false;    // grey / RGB tRNS
  png_color_16 trans_color{};
  struct Text {
    int compression;  // PNG_TEXT_COMPRESSION_NONE / _zTXt, PNG_ITXT_COMPRESSION_NONE / _zTXt
    std::string key, value;
  };
  std::vector<Text> text_before;  // written ahead of IDAT
  std::vector<Text> text_after;   // written after IDAT, where png_write_end puts them
};

void set_raw_text(png_structp png, png_infop info, const std::vector<RawPng::Text>& text) {
  for (const RawPng::Text& t : text) {
    png_text chunk;
    std::memset(&chunk, 0, sizeof chunk);
    chunk.compression = t.compression;
    chunk.key = const_cast<char*>(t.key.c_str());
    chunk.text = const_cast<char*>(t.value.c_str());
    png_set_text(png, info, &chunk, 1);
  }
}

void append_to_string(png_structp png, png_bytep data, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

// Only plain data lives in this frame, so libpng's longjmp on error is safe.
bool write_raw_png_phase(png_structp png, png_infop info, const RawPng* spec, png_bytep* rows, std::string* out) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_write_fn(png, out, append_to_string, nullptr);
  png_set_IHDR(png, info, spec->width, spec->height, spec->bit_depth, spec->color_type,
               spec->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!spec->palette.empty()) png_set_PLTE(png, info, spec->palette.data(), int(spec->palette.size()));
  if (!spec->trans_alpha.empty() || spec->has_trans_color) {
    png_set_tRNS(png, info, spec->trans_alpha.empty() ? nullptr : spec->trans_alpha.data(),
                 int(spec->trans_alpha.size()), spec->has_trans_color ? &spec->trans_color : nullptr);
  }
  set_raw_text(png, info, spec->text_before);
  png_write_info(png, info);
  png_write_image(png, rows);
  set_raw_text(png, info, spec->text_after);
  png_write_end(png, info);
  return true;
}

std::string write_raw_png(const RawPng& spec) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  std::vector<png_bytep> rows;
  for (const std::string& r : spec.rows) rows.push_back(reinterpret_cast<png_bytep>(const_cast<char*>(r.data())));
  std::string out;
  const bool ok = write_raw_png_phase(png, info, &spec, rows.data(), &out);
  png_destroy_write_struct(&png, &info);
  EXPECT_TRUE(ok) << "test PNG writer failed";
  return out;
}

std::string bytes_of(std::initializer_list<int> values) {
  std::string s;
  for (int v : values) s += char(v);
  return s;
}

std::string be32(uint32_t v) { return bytes_of({int(v >> 24), int((v >> 16) & 0xFF), int((v >> 8) & 0xFF), int(v & 0xFF)}); }

// A PNG chunk with its CRC, for hand-built hostile headers.
std::string png_chunk(const std::string& type, const std::string& data) {
  std::string body = type + data;
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()));
  return be32(uint32_t(data.size())) + body + be32(uint32_t(crc));
}

const std::string kPngSignature = bytes_of({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});

std::string ihdr_only_png(uint32_t w, uint32_t h, int depth, int color_type) {
  std::string ihdr = be32(w) + be32(h) + bytes_of({depth, color_type, 0, 0, 0});
  // An empty IDAT lets png_read_info finish, so the size check is what stops the decode.
  return kPngSignature + png_chunk("IHDR", ihdr) + png_chunk("IDAT", "");
}

// ---- an independent JPEG writer ----

std::string encode_jpeg(const Image& img, int quality) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);  // valid input only: the default handler is enough
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = img.width;
  cinfo.image_height = img.height;
  cinfo.input_components = img.channels;
  cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.pixels.data() + size_t(cinfo.next_scanline) * img.width * img.channels);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  jpeg_destroy_compress(&cinfo);
  std::free(buffer);
  return out;
}

// Smooth content, which JPEG reproduces closely at high quality.
Image gradient(int w, int h, int c) {
  Image img(w, h, c);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w; x++) {
      for (int k = 0; k < c; k++) img.at(x, y, k) = uint8_t(40 + x * 120 / (w - 1) + y * 60 / (h - 1) + 15 * k);
    }
  }
  return img;
}

// ---- gzip through zlib's deflate, independent of gunzip ----

std::string gzip(const std::string& data) {
  z_stream zs;
  std::memset(&zs, 0, sizeof zs);
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, uLong(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = uInt(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string idx_bytes(int type, std::vector<uint32_t> dims, size_t payload) {
  std::string s = bytes_of({0, 0, type, int(dims.size())});
  for (uint32_t d : dims) s += be32(d);
  for (size_t i = 0; i < payload; i++) s += char(i * 7 + 3);
  return s;
}

// Runs a decoder on hostile bytes: an imagine::Error is fine, anything else fails the test.
// Damaged input either decodes to a well-formed image (a flipped byte may land in a
// harmless place) or fails with a one-line imagine::Error that has a hint; any other
// exception escapes to gtest and fails the test, a crash fails the run.
// With `original` (a PNG's image: every chunk carries a CRC, so a flip that is accepted
// landed in an ancillary chunk, which libpng drops), an accepted file must decode to it.
void expect_no_crash(const std::string& bytes, const Image* original = nullptr) {
  try {
    const Image img = imagine::decode_image(bytes, "fuzz");
    EXPECT_TRUE(img.channels == 1 || img.channels == 3 || img.channels == 4) << img.channels;
    EXPECT_GT(img.width, 0);
    EXPECT_GT(img.height, 0);
    EXPECT_EQ(img.pixels.size(), size_t(img.width) * img.height * img.channels);
    if (original) {
      EXPECT_EQ(img.width, original->width);
      EXPECT_EQ(img.height, original->height);
      EXPECT_EQ(img.channels, original->channels);
      EXPECT_TRUE(img.pixels == original->pixels) << "an accepted mutated PNG decodes to other pixels";
    }
  } catch (const imagine::Error& e) {
    EXPECT_FALSE(e.hint().empty()) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

std::string error_of(const std::string& bytes) {
  try {
    imagine::decode_image(bytes, "img.bin");
  } catch (const imagine::Error& e) {
    EXPECT_FALSE(e.hint().empty()) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

}  // namespace

// ---------------------------------------------------------------- PNG

TEST_F(ImageIoTest, PngRoundTripsGreyRgbRgbaWithText) {
  const imagine::PngText text = {{"imagine.seed", "42"}, {"Comment", "naïve café ✓"}, {"Empty", ""}};
  for (int c : {1, 3, 4}) {
    const Image img = pattern(13, 7, c);
    const std::string file = path("rt" + std::to_string(c) + ".png");
    imagine::write_png(file, img, text);
    const Image back = imagine::read_image(file);
    EXPECT_EQ(back.width, 13);
    EXPECT_EQ(back.height, 7);
    EXPECT_EQ(back.channels, c);
    EXPECT_EQ(back.pixels, img.pixels);
    EXPECT_EQ(imagine::read_png_text(file), text);
  }
}

TEST_F(ImageIoTest, PngTextComesBeforeImageData) {
  const std::string png = imagine::encode_png(pattern(4, 4, 3), {{"model", "vae"}});
  const size_t text = png.find("tEXt");
  ASSERT_NE(text, std::string::npos);
  EXPECT_LT(text, png.find("IDAT"));
  // The UTF-8 value goes to iTXt, also ahead of the pixels.
  const std::string utf8 = imagine::encode_png(pattern(4, 4, 3), {{"prompt", "žluťoučký"}});
  ASSERT_NE(utf8.find("iTXt"), std::string::npos);
  EXPECT_LT(utf8.find("iTXt"), utf8.find("IDAT"));
}

TEST_F(ImageIoTest, PngTextOfEveryKindAndPlaceIsRead) {
  RawPng spec;
  spec.width = 1;
  spec.height = 1;
  spec.rows.push_back(bytes_of({9}));
  spec.text_before = {{PNG_TEXT_COMPRESSION_NONE, "Author", "Ren\xe9"},  // Latin-1 e-acute
                      {PNG_TEXT_COMPRESSION_zTXt, "Description", std::string(500, 'z')}};
  spec.text_after = {{PNG_ITXT_COMPRESSION_zTXt, "Prompt", "\xc4\x8d" "aj"},  // UTF-8 c-caron
                     {PNG_TEXT_COMPRESSION_NONE, "Late", "after the pixels"}};
  imagine::write_file_atomic(path("text.png"), write_raw_png(spec));
  const imagine::PngText expected = {{"Author", "Ren\xc3\xa9"},
                                     {"Description", std::string(500, 'z')},
                                     {"Prompt", "\xc4\x8d" "aj"},
                                     {"Late", "after the pixels"}};
  EXPECT_EQ(imagine::read_png_text(path("text.png")), expected);
  imagine::write_file_atomic(path("not.png"), "hello");
  EXPECT_THROW(imagine::read_png_text(path("not.png")), imagine::Error);
}

TEST(ImageIo, PngRejectsBadTextAndShapes) {
  const Image img = pattern(2, 2, 3);
  EXPECT_THROW(imagine::encode_png(img, {{"", "x"}}), imagine::Error);
  EXPECT_THROW(imagine::encode_png(img, {{std::string(80, 'k'), "x"}}), imagine::Error);
  EXPECT_THROW(imagine::encode_png(img, {{" lead", "x"}}), imagine::Error);
  EXPECT_THROW(imagine::encode_png(img, {{"a  b", "x"}}), imagine::Error);
  EXPECT_THROW(imagine::encode_png(img, {{"k", std::string("a\0b", 3)}}), imagine::Error);
  EXPECT_THROW(imagine::encode_png(img, {{"k", "\xff\xfe"}}), imagine::Error);
  Image two(2, 2, 2);
  EXPECT_THROW(imagine::encode_png(two), imagine::Error);
  Image short_buffer = img;
  short_buffer.pixels.pop_back();
  EXPECT_THROW(imagine::encode_png(short_buffer), imagine::Error);
}

TEST(ImageIo, Png16BitIsScaledTo8Bit) {
  RawPng spec;
  spec.width = 3;
  spec.height = 2;
  spec.bit_depth = 16;
  spec.color_type = PNG_COLOR_TYPE_RGB;
  // v * 257 is the exact 16-bit form of 8-bit v; 0x8000 lies halfway and rounds up.
  const uint16_t samples[2][9] = {{0, 257 * 10, 65535, 257 * 200, 0x8000, 257, 257 * 77, 257 * 128, 257 * 254},
                                  {65535, 65535, 65535, 0, 0, 0, 257 * 3, 257 * 4, 257 * 5}};
  for (const auto& row : samples) {
    std::string r;
    for (uint16_t v : row) r += bytes_of({v >> 8, v & 0xFF});
    spec.rows.push_back(r);
  }
  const Image img = imagine::decode_image(write_raw_png(spec), "16bit.png");
  ASSERT_EQ(img.channels, 3);
  const std::vector<uint8_t> expected = {0, 10, 255, 200, 128, 1, 77, 128, 254, 255, 255, 255, 0, 0, 0, 3, 4, 5};
  EXPECT_EQ(img.pixels, expected);
}

TEST(ImageIo, Png16BitGreyAlphaIsCompositedOnWhite) {
  RawPng spec;
  spec.width = 3;
  spec.height = 1;
  spec.bit_depth = 16;
  spec.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  // (grey, alpha): opaque black, fully transparent black, half-transparent black.
  spec.rows.push_back(bytes_of({0, 0, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0x80, 0x80}));
  const Image img = imagine::decode_image(write_raw_png(spec), "ga16.png");
  ASSERT_EQ(img.channels, 1);
  EXPECT_EQ(img.pixels[0], 0);
  EXPECT_EQ(img.pixels[1], 255);
  EXPECT_NEAR(img.pixels[2], 127, 1);
}

TEST(ImageIo, PngPaletteWithTransparencyBecomesRgba) {
  RawPng spec;
  spec.width = 4;
  spec.height = 1;
  spec.bit_depth = 4;
  spec.color_type = PNG_COLOR_TYPE_PALETTE;
  spec.palette = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
  spec.trans_alpha = {255, 0, 128};  // entry 3 stays opaque
  spec.rows.push_back(bytes_of({0x01, 0x23}));  // indices 0 1 2 3, two per byte
  const Image img = imagine::decode_image(write_raw_png(spec), "pal.png");
  ASSERT_EQ(img.channels, 4);
  const std::vector<uint8_t> expected = {255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128, 10, 20, 30, 255};
  EXPECT_EQ(img.pixels, expected);
}

TEST(ImageIo, PngPaletteWithoutTransparencyBecomesRgb) {
  RawPng spec;
  spec.width = 3;
  spec.height = 1;
  spec.color_type = PNG_COLOR_TYPE_PALETTE;
  spec.palette = {{1, 2, 3}, {4, 5, 6}};
  spec.rows.push_back(bytes_of({1, 0, 1}));
  const Image img = imagine::decode_image(write_raw_png(spec), "pal8.png");
  ASSERT_EQ(img.channels, 3);
  EXPECT_EQ(img.pixels, (std::vector<uint8_t>{4, 5, 6, 1, 2, 3, 4, 5, 6}));
}

TEST(ImageIo, PngLowBitGreyAndGreyTransparency) {
  RawPng one;
  one.width = 10;
  one.height = 1;
  one.bit_depth = 1;
  one.rows.push_back(bytes_of({0xA5, 0xC0}));  // 1010 0101 11
  const Image bits = imagine::decode_image(write_raw_png(one), "1bit.png");
  ASSERT_EQ(bits.channels, 1);
  EXPECT_EQ(bits.pixels, (std::vector<uint8_t>{255, 0, 255, 0, 0, 255, 0, 255, 255, 255}));

  RawPng keyed;
  keyed.width = 2;
  keyed.height = 1;
  keyed.has_trans_color = true;
  keyed.trans_color.gray = 7;  // grey 7 is transparent: composited on white
  keyed.rows.push_back(bytes_of({7, 8}));
  const Image grey = imagine::decode_image(write_raw_png(keyed), "trns.png");
  ASSERT_EQ(grey.channels, 1);
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{255, 8}));
}

TEST(ImageIo, PngInterlacedMatchesPlain) {
  const Image img = pattern(17, 11, 3);
  RawPng spec;
  spec.width = img.width;
  spec.height = img.height;
  spec.color_type = PNG_COLOR_TYPE_RGB;
  spec.interlace = true;
  for (int y = 0; y < img.height; y++) {
    spec.rows.emplace_back(reinterpret_cast<const char*>(&img.pixels[size_t(y) * img.width * 3]), img.width * 3);
  }
  const Image back = imagine::decode_image(write_raw_png(spec), "adam7.png");
  EXPECT_EQ(back.pixels, img.pixels);
}

TEST(ImageIo, TruncatedPngThrowsAtEveryLength) {
  const std::string png = imagine::encode_png(pattern(20, 20, 3), {{"k", "v"}});
  for (size_t n = 0; n < png.size(); n += (n < 64 ? 1 : 7)) {
    EXPECT_THROW(imagine::decode_image(png.substr(0, n), "cut.png"), imagine::Error) << "length " << n;
  }
  EXPECT_THROW(imagine::decode_image(png.substr(0, png.size() - 1), "cut.png"), imagine::Error);
  EXPECT_NE(error_of(png.substr(0, png.size() / 2)).find("truncated"), std::string::npos);
}

TEST(ImageIo, FlippedIdatBytesAreErrors) {
  const std::string png = imagine::encode_png(pattern(16, 16, 3));
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t length = (uint32_t(uint8_t(png[idat - 4])) << 24) | (uint32_t(uint8_t(png[idat - 3])) << 16) |
                          (uint32_t(uint8_t(png[idat - 2])) << 8) | uint32_t(uint8_t(png[idat - 1]));
  // A flipped data byte: libpng inflates as it reads, so zlib's own check (or a broken
  // deflate stream) usually fires before the chunk's CRC is reached; either is an error.
  std::string data_flip = png;
  data_flip[idat + 4 + 10] ^= 0x5A;
  EXPECT_NE(error_of(data_flip).find("img.bin: bad PNG: IDAT"), std::string::npos) << error_of(data_flip);
  // A flipped CRC byte leaves the pixels intact, so only the CRC check can catch it.
  std::string crc_flip = png;
  crc_flip[idat + 4 + length] ^= 0x01;
  const std::string msg = error_of(crc_flip);
  EXPECT_NE(msg.find("img.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CRC"), std::string::npos) << msg;
}

TEST(ImageIo, GarbageEmptyAndWrongMagicThrow) {
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = char(rng());
  noise[0] = 'x';
  EXPECT_NE(error_of(noise).find("not a PNG or JPEG image"), std::string::npos);
  std::string png = imagine::encode_png(pattern(4, 4, 1));
  png[1] = 'Q';  // "\x89QNG"
  EXPECT_NE(error_of(png).find("not a PNG or JPEG image"), std::string::npos);
  EXPECT_THROW(imagine::decode_image(kPngSignature + noise, "noise.png"), imagine::Error);
  EXPECT_THROW(imagine::decode_image(bytes_of({0xFF, 0xD8, 0xFF}) + noise, "noise.jpg"), imagine::Error);
  EXPECT_THROW(imagine::read_image("/nonexistent/imagine.png"), imagine::Error);
}

TEST(ImageIo, OversizedPngHeadersAreRefusedBeforeAllocating) {
  // Wider than kMaxImageSide: libpng's user limit stops it while reading IHDR.
  EXPECT_THROW(imagine::decode_image(ihdr_only_png(20000, 1, 8, 0), "wide.png"), imagine::Error);
  // Within the side limit but 16000 x 16000 RGBA is ~1 GiB of pixels.
  const std::string msg = error_of(ihdr_only_png(16000, 16000, 8, 6));
  EXPECT_NE(msg.find("exceeds"), std::string::npos) << msg;
}

TEST(ImageIo, MutatedFilesNeverCrash) {
  const Image original = pattern(24, 24, 4);
  const std::string png = imagine::encode_png(original, {{"key", "value"}});
  const std::string jpg = encode_jpeg(gradient(32, 24, 3), 90);
  std::mt19937 rng(12345);
  for (int round = 0; round < 300; round++) {
    for (const std::string* base : {&png, &jpg}) {
      std::string bytes = *base;
      const int flips = 1 + int(rng() % 4);
      for (int i = 0; i < flips; i++) bytes[rng() % bytes.size()] = char(rng());
      expect_no_crash(bytes, base == &png ? &original : nullptr);  // JPEG has no checksum
    }
  }
}

// ---------------------------------------------------------------- JPEG

TEST(ImageIo, JpegDecodesRgbAndGreyCloseToTheOriginal) {
  for (int c : {3, 1}) {
    const Image img = gradient(48, 32, c);
    const Image back = imagine::decode_image(encode_jpeg(img, 95), "grad.jpg");
    ASSERT_EQ(back.width, 48);
    ASSERT_EQ(back.height, 32);
    ASSERT_EQ(back.channels, c);
    double total = 0;
    int worst = 0;
    for (size_t i = 0; i < img.pixels.size(); i++) {
      const int d = std::abs(int(img.pixels[i]) - int(back.pixels[i]));
      total += d;
      worst = std::max(worst, d);
    }
    EXPECT_LT(total / img.pixels.size(), 2.0) << c << " channels";
    EXPECT_LT(worst, 16) << c << " channels";
  }
}

TEST(ImageIo, TruncatedJpegThrowsInsteadOfPaddingGrey) {
  const std::string jpg = encode_jpeg(gradient(64, 64, 3), 90);
  for (size_t n : {size_t(0), size_t(2), size_t(20), jpg.size() / 3, jpg.size() / 2, jpg.size() - 10, jpg.size() - 2}) {
    EXPECT_THROW(imagine::decode_image(jpg.substr(0, n), "cut.jpg"), imagine::Error) << "length " << n;
  }
  const std::string msg = error_of(jpg.substr(0, jpg.size() / 2));
  EXPECT_NE(msg.find("Premature end"), std::string::npos) << msg;
}

TEST(ImageIo, OversizedJpegHeaderIsRefused) {
  std::string jpg = encode_jpeg(gradient(16, 16, 3), 90);
  // Baseline SOF0: FF C0, length (2), precision (1), height (2), width (2).
  const size_t sof = jpg.find(bytes_of({0xFF, 0xC0}));
  ASSERT_NE(sof, std::string::npos);
  jpg[sof + 5] = char(0x40);  // height 0x4000 = 16384
  jpg[sof + 6] = 0;
  jpg[sof + 7] = char(0x40);  // width 16384: 768 MiB of RGB
  jpg[sof + 8] = 0;
  const std::string msg = error_of(jpg);
  EXPECT_NE(msg.find("exceeds"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- IDX

TEST_F(ImageIoTest, IdxRawAndGzipRoundTrip) {
  const std::string raw = idx_bytes(0x08, {2, 3, 2}, 12);
  const std::string gz = gzip(raw);
  imagine::write_file_atomic(path("a-idx3-ubyte"), raw);
  imagine::write_file_atomic(path("a-idx3-ubyte.gz"), gz);
  for (const std::string name : {"a-idx3-ubyte", "a-idx3-ubyte.gz"}) {
    const imagine::IdxArray a = imagine::read_idx(path(name));
    EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3, 2})) << name;
    ASSERT_EQ(a.data.size(), 12u);
    for (size_t i = 0; i < 12; i++) EXPECT_EQ(a.data[i], uint8_t(i * 7 + 3));
  }
  // Labels: one dimension.
  const imagine::IdxArray labels = imagine::parse_idx(idx_bytes(0x08, {5}, 5), "labels");
  EXPECT_EQ(labels.dims, (std::vector<int64_t>{5}));
}

TEST(ImageIo, IdxRejectsBadHeadersAndSizes) {
  auto fails = [](const std::string& bytes) {
    try {
      imagine::parse_idx(bytes, "t10k-images");
    } catch (const imagine::Error& e) {
      EXPECT_NE(std::string(e.what()).find("t10k-images"), std::string::npos);
      return std::string(e.what());
    }
    ADD_FAILURE() << "accepted";
    return std::string();
  };
  std::string bad_magic = idx_bytes(0x08, {2}, 2);
  bad_magic[0] = 1;
  fails(bad_magic);
  EXPECT_NE(fails(idx_bytes(0x0D, {2}, 8)).find("float"), std::string::npos);
  fails(idx_bytes(0x08, {}, 0));
  fails(idx_bytes(0x08, {1, 1, 1, 1, 1}, 1));
  EXPECT_NE(fails(idx_bytes(0x08, {4, 4}, 15)).find("truncated"), std::string::npos);
  EXPECT_NE(fails(idx_bytes(0x08, {4, 4}, 17)).find("extra bytes"), std::string::npos);
  fails(idx_bytes(0x08, {4, 0}, 0));
  fails(idx_bytes(0x08, {3}, 0).substr(0, 6));  // header cut inside a dimension
  fails(bytes_of({0, 0}));
  // 2^32-1 to the fourth power overflows 64 bits; it must not wrap round to a small size.
  fails(idx_bytes(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, 1));
  fails(idx_bytes(0x08, {0x10000u, 0x10000u, 0x10000u, 0x10000u}, 0));
}

TEST(ImageIo, GunzipRejectsTruncatedAndCorruptStreams) {
  const std::string raw = idx_bytes(0x08, {100, 28, 28}, 100 * 28 * 28);
  const std::string gz = gzip(raw);
  EXPECT_EQ(imagine::gunzip(gz, "x.gz"), raw);
  EXPECT_EQ(imagine::gunzip(gz + gz, "x.gz"), raw + raw);  // concatenated members, as gzip -d
  for (size_t n : {size_t(2), size_t(10), gz.size() / 2, gz.size() - 4, gz.size() - 1}) {
    EXPECT_THROW(imagine::gunzip(gz.substr(0, n), "x.gz"), imagine::Error) << "length " << n;
  }
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x01;  // inside the CRC-32 trailer
  EXPECT_THROW(imagine::gunzip(bad_crc, "x.gz"), imagine::Error);
  EXPECT_THROW(imagine::gunzip(gz + "junk", "x.gz"), imagine::Error);
  EXPECT_THROW(imagine::gunzip("plain", "x.gz"), imagine::Error);
}

TEST_F(ImageIoTest, ReadIdxReportsTruncatedGzipFile) {
  const std::string gz = gzip(idx_bytes(0x08, {10, 28, 28}, 10 * 28 * 28));
  imagine::write_file_atomic(path("cut.gz"), gz.substr(0, gz.size() - 8));
  try {
    imagine::read_idx(path("cut.gz"));
    ADD_FAILURE() << "accepted";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.gz"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- pixel operations

TEST(ImageOps, ResizeCoverKeepsAspectAndCropsTheCentre) {
  // 30x10 to 10: the middle 10x10 survives unscaled; the marker at (15, 5) stays there.
  Image wide(30, 10, 3, 0);
  wide.at(15, 5, 0) = 255;
  const Image a = imagine::resize_cover(wide, 10);
  ASSERT_EQ(a.width, 10);
  ASSERT_EQ(a.height, 10);
  EXPECT_EQ(a.at(5, 5, 0), 255);
  int lit = 0;
  for (uint8_t v : a.pixels) lit += v != 0;
  EXPECT_EQ(lit, 1);

  // 60x20 to 10 halves as well: a 2x2 marker block at (30, 10) becomes one pixel at (5, 5).
  Image big(60, 20, 1, 0);
  for (int y = 10; y < 12; y++) {
    for (int x = 30; x < 32; x++) big.at(x, y, 0) = 200;
  }
  const Image b = imagine::resize_cover(big, 10);
  EXPECT_EQ(b.at(5, 5, 0), 200);
  EXPECT_EQ(b.at(4, 5, 0), 0);
  EXPECT_EQ(b.at(5, 4, 0), 0);

  // A tall image crops rows instead.
  Image tall(10, 30, 1, 0);
  tall.at(5, 15, 0) = 99;
  EXPECT_EQ(imagine::resize_cover(tall, 10).at(5, 5, 0), 99);
}

TEST(ImageOps, ShrinkingAveragesAreas) {
  Image checker(4, 4, 1);
  for (int y = 0; y < 4; y++) {
    for (int x = 0; x < 4; x++) checker.at(x, y, 0) = ((x + y) % 2) ? 255 : 0;
  }
  const Image half = imagine::resize_cover(checker, 2);
  for (uint8_t v : half.pixels) EXPECT_NEAR(v, 127.5, 0.6);
  const Image one = imagine::resize_cover(checker, 1);
  EXPECT_NEAR(one.pixels[0], 127.5, 0.6);
  // A non-integer ratio (3 -> 2) still averages to the mean of a flat image.
  EXPECT_EQ(imagine::resize_cover(Image(3, 3, 3, 77), 2).pixels, std::vector<uint8_t>(12, 77));
}

TEST(ImageOps, GrowingInterpolatesAndNearestKeepsPixels) {
  Image ramp(2, 1, 1);
  ramp.pixels = {0, 255};
  const Image smooth = imagine::resize_exact(ramp, 4, 1, imagine::ResizeFilter::Smooth);
  EXPECT_EQ(smooth.pixels, (std::vector<uint8_t>{0, 64, 191, 255}));
  const Image crisp = imagine::resize_exact(ramp, 4, 2);
  EXPECT_EQ(crisp.pixels, (std::vector<uint8_t>{0, 0, 255, 255, 0, 0, 255, 255}));
  EXPECT_THROW(imagine::resize_exact(ramp, 0, 4), imagine::Error);
  EXPECT_THROW(imagine::resize_cover(ramp, 100000), imagine::Error);
}

TEST(ImageOps, ToChannelsCompositesAlphaOnWhite) {
  Image rgba(3, 1, 4);
  rgba.pixels = {0, 0, 0, 0, 255, 0, 0, 255, 0, 0, 0, 128};
  const Image rgb = imagine::to_channels(rgba, 3);
  EXPECT_EQ(rgb.pixels, (std::vector<uint8_t>{255, 255, 255, 255, 0, 0, 127, 127, 127}));
  EXPECT_EQ(imagine::drop_alpha(rgba).pixels, rgb.pixels);
  const Image grey = imagine::to_channels(rgba, 1);
  EXPECT_EQ(grey.pixels, (std::vector<uint8_t>{255, 76, 127}));  // BT.601: 0.299 * 255 = 76.2
  Image g(2, 1, 1);
  g.pixels = {10, 200};
  EXPECT_EQ(imagine::to_channels(g, 3).pixels, (std::vector<uint8_t>{10, 10, 10, 200, 200, 200}));
  EXPECT_EQ(imagine::to_channels(g, 4).pixels, (std::vector<uint8_t>{10, 10, 10, 255, 200, 200, 200, 255}));
  EXPECT_THROW(imagine::to_channels(g, 2), imagine::Error);
}

TEST(ImageOps, MakeGridLaysOutTilesWithPadding) {
  std::vector<Image> tiles;
  for (int i = 0; i < 5; i++) tiles.emplace_back(3, 2, 1, uint8_t(10 * (i + 1)));
  const Image grid = imagine::make_grid(tiles, 0, 2, 255);  // ceil(sqrt(5)) = 3 columns, 2 rows
  EXPECT_EQ(grid.width, 3 * (3 + 2) + 2);
  EXPECT_EQ(grid.height, 2 * (2 + 2) + 2);
  EXPECT_EQ(grid.channels, 1);
  EXPECT_EQ(grid.at(0, 0, 0), 255);                  // border
  EXPECT_EQ(grid.at(2, 2, 0), 10);                   // tile 0's top-left
  EXPECT_EQ(grid.at(4, 3, 0), 10);                   // tile 0's bottom-right
  EXPECT_EQ(grid.at(5, 2, 0), 255);                  // gap between tiles 0 and 1
  EXPECT_EQ(grid.at(7, 2, 0), 20);                   // tile 1
  EXPECT_EQ(grid.at(2 + 5, 2 + 4, 0), 50);           // tile 4: row 1, column 1
  EXPECT_EQ(grid.at(2 + 10, 2 + 4, 0), 255);         // the empty sixth cell
  const Image row = imagine::make_grid(tiles, 10, 0);  // columns cut to the tile count
  EXPECT_EQ(row.width, 15);
  EXPECT_EQ(row.height, 2);
  tiles.emplace_back(2, 2, 1);
  EXPECT_THROW(imagine::make_grid(tiles), imagine::Error);
  EXPECT_THROW(imagine::make_grid({}), imagine::Error);
}
