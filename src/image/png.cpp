// PNG through libpng's classic API: decoding any PNG to 8-bit grey / RGB / RGBA, encoding
// 8-bit images with text chunks, and reading those chunks back. Gamma, colour profiles
// and animation (APNG) are deliberately ignored.
//
// libpng reports errors by longjmp. Jumping over a C++ frame with live destructors is
// undefined, and so is throwing through libpng's C frames, so every libpng call that can
// fail runs inside a small "phase" function that calls setjmp first and owns nothing but
// plain data. A phase returns false on failure; its C++ caller then throws imagine::Error.
// The libpng structs themselves are freed by guards in the callers' frames, which a
// longjmp never crosses.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/utf8.h"
#include "image/detail.h"
#include "image/image.h"

namespace imagine {

namespace {

// libpng hands this back to our error and warning callbacks (the "error pointer").
struct PngMessage {
  char text[256];
};

[[noreturn]] void on_png_error(png_structp png, png_const_charp msg) {
  auto* out = static_cast<PngMessage*>(png_get_error_ptr(png));
  std::snprintf(out->text, sizeof out->text, "%s", msg ? msg : "unknown libpng error");
  png_longjmp(png, 1);
}

// Warnings (bad ancillary chunks, unknown sRGB profiles...) do not affect the pixels;
// staying silent keeps libpng from printing to stderr behind the CLI's back.
void on_png_warning(png_structp, png_const_charp) {}

// ---- reading ----

struct MemorySource {
  const unsigned char* data;
  size_t size;
  size_t pos;
};

void read_from_memory(png_structp png, png_bytep out, size_t n) {
  auto* src = static_cast<MemorySource*>(png_get_io_ptr(png));
  if (n > src->size - src->pos) png_error(png, "unexpected end of file (the PNG is truncated)");
  std::memcpy(out, src->data + src->pos, n);
  src->pos += n;
}

// Owns the read structs; png_destroy_read_struct accepts null pointers.
struct PngReader {
  png_structp png = nullptr;
  png_infop info = nullptr;
  png_infop end_info = nullptr;
  PngMessage message{};
  MemorySource source{};
  ~PngReader() { png_destroy_read_struct(&png, &info, &end_info); }
};

// What the header phase learnt, after the 8-bit transforms are set up.
struct PngLayout {
  png_uint_32 width;
  png_uint_32 height;
  int channels;  // 1, 2 (grey+alpha), 3 or 4
  size_t rowbytes;
};

// Phase 1: reads the chunks up to the image data and asks libpng for 8-bit output.
bool png_read_header_phase(PngReader* r, PngLayout* layout) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  // Checked while the IHDR chunk is parsed, before any row buffer exists.
  png_set_user_limits(r->png, kMaxImageSide, kMaxImageSide);
  // Bounds the memory one ancillary chunk (iCCP, zTXt...) may inflate to.
  png_set_chunk_malloc_max(r->png, 8u << 20);
  png_set_read_fn(r->png, &r->source, read_from_memory);
  png_read_info(r->png, r->info);

  const int color_type = png_get_color_type(r->png, r->info);
  const int bit_depth = png_get_bit_depth(r->png, r->info);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
  if (png_get_valid(r->png, r->info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(r->png);
  // Scaling (v * 255 / 65535, rounded) is more accurate than dropping the low byte.
  if (bit_depth == 16) png_set_scale_16(r->png);
  png_set_interlace_handling(r->png);
  png_read_update_info(r->png, r->info);

  layout->width = png_get_image_width(r->png, r->info);
  layout->height = png_get_image_height(r->png, r->info);
  layout->channels = png_get_channels(r->png, r->info);
  layout->rowbytes = png_get_rowbytes(r->png, r->info);
  return true;
}

// Phase 2: decodes every row (all interlace passes), then reads the chunks through IEND
// so a file cut after its image data is still caught, and late text chunks are seen.
bool png_read_pixels_phase(PngReader* r, png_bytep* rows) {
  if (setjmp(png_jmpbuf(r->png))) return false;
  png_read_image(r->png, rows);
  png_read_end(r->png, r->end_info);
  return true;
}

// tEXt and zTXt hold Latin-1; every byte maps to the code point of the same value.
std::string latin1_to_utf8(const char* s, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

void collect_text(png_structp png, png_infop info, PngText* out) {
  png_textp text = nullptr;
  int count = 0;
  png_get_text(png, info, &text, &count);
  for (int i = 0; i < count; i++) {
    const png_text& t = text[i];
    const bool itxt = t.compression == PNG_ITXT_COMPRESSION_NONE || t.compression == PNG_ITXT_COMPRESSION_zTXt;
    // For iTXt libpng puts the length in itxt_length and leaves text_length at 0.
    const size_t length = itxt ? t.itxt_length : t.text_length;
    std::string key = latin1_to_utf8(t.key, std::strlen(t.key));
    std::string value = itxt ? std::string(t.text ? t.text : "", t.text ? length : 0)
                             : latin1_to_utf8(t.text ? t.text : "", t.text ? length : 0);
    out->emplace_back(std::move(key), std::move(value));
  }
}

// Grey+alpha becomes grey on white (see image.h): the rest of imagine has no 2-channel images.
Image flatten_grey_alpha(const std::vector<uint8_t>& ga, int width, int height) {
  Image out(width, height, 1);
  const size_t n = size_t(width) * height;
  for (size_t i = 0; i < n; i++) out.pixels[i] = image_detail::over_white(ga[2 * i], ga[2 * i + 1]);
  return out;
}

const char* kCorruptHint = "the file is damaged or incomplete; re-export or re-download it";

// ---- writing ----

struct MemorySink {
  std::string* out;
  bool out_of_memory;
};

void write_to_memory(png_structp png, png_bytep data, size_t n) {
  auto* sink = static_cast<MemorySink*>(png_get_io_ptr(png));
  // An exception must not unwind through libpng, so it is turned into a libpng error,
  // raised after the handler has finished.
  try {
    sink->out->append(reinterpret_cast<const char*>(data), n);
  } catch (...) {
    sink->out_of_memory = true;
  }
  if (sink->out_of_memory) png_error(png, "out of memory while encoding");
}

void flush_memory(png_structp) {}

struct PngWriter {
  png_structp png = nullptr;
  png_infop info = nullptr;
  PngMessage message{};
  ~PngWriter() { png_destroy_write_struct(&png, &info); }
};

// Everything the encoding phase needs, as plain data prepared by the caller.
struct PngEncodeJob {
  png_uint_32 width;
  png_uint_32 height;
  int color_type;
  png_bytep* rows;
  png_textp text;
  int text_count;
  MemorySink* sink;
};

bool png_encode_phase(PngWriter* w, const PngEncodeJob* job) {
  if (setjmp(png_jmpbuf(w->png))) return false;
  png_set_write_fn(w->png, job->sink, write_to_memory, flush_memory);
  png_set_IHDR(w->png, w->info, job->width, job->height, 8, job->color_type, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  // Text set before png_write_info is written ahead of IDAT, where readers that stop at
  // the pixels (and `imagine info`) still find it.
  if (job->text_count > 0) png_set_text(w->png, w->info, job->text, job->text_count);
  png_write_info(w->png, w->info);
  png_write_image(w->png, job->rows);
  png_write_end(w->png, nullptr);
  return true;
}

// The PNG keyword rules (spec 11.3.4.3), narrowed to ASCII so keys are the same in every
// encoding.
void check_text_key(const std::string& key) {
  const char* hint = "use 1-79 printable ASCII characters without leading, trailing or double spaces";
  IMAGINE_CHECK(!key.empty() && key.size() <= 79, hint, "PNG text key '", key, "' must be 1 to 79 characters");
  for (size_t i = 0; i < key.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(key[i]);
    IMAGINE_CHECK(c >= 32 && c <= 126, hint, "PNG text key '", key, "' has a non-printable or non-ASCII character");
    IMAGINE_CHECK(!(c == ' ' && (i == 0 || i + 1 == key.size() || key[i - 1] == ' ')), hint, "PNG text key '", key,
                  "' has a leading, trailing or double space");
  }
}

bool is_ascii(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool is_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const size_t n = utf8_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

}  // namespace

Image decode_png(const std::string& bytes, const std::string& what, PngText* text) {
  PngReader r;
  r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r.message, on_png_error, on_png_warning);
  IMAGINE_CHECK(r.png, "the machine may be out of memory", what, ": cannot initialise libpng");
  r.info = png_create_info_struct(r.png);
  r.end_info = png_create_info_struct(r.png);
  IMAGINE_CHECK(r.info && r.end_info, "the machine may be out of memory", what, ": cannot initialise libpng");
  r.source = MemorySource{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), 0};

  PngLayout layout{};
  if (!png_read_header_phase(&r, &layout)) throw Error(str(what, ": bad PNG: ", r.message.text), kCorruptHint);
  image_detail::check_image_budget(layout.width, layout.height, layout.channels, what,
                                   "shrink the image before using it");
  // rowbytes comes from libpng; it must agree with the layout we are about to index by.
  IMAGINE_CHECK(layout.channels >= 1 && layout.channels <= 4 && layout.rowbytes == size_t(layout.width) * layout.channels,
                kCorruptHint, what, ": unexpected PNG row layout after conversion to 8 bits");

  std::vector<uint8_t> pixels(layout.rowbytes * layout.height);
  std::vector<png_bytep> rows(layout.height);
  for (png_uint_32 y = 0; y < layout.height; y++) rows[y] = pixels.data() + y * layout.rowbytes;
  if (!png_read_pixels_phase(&r, rows.data())) throw Error(str(what, ": bad PNG: ", r.message.text), kCorruptHint);

  if (text) {
    text->clear();
    collect_text(r.png, r.info, text);
    collect_text(r.png, r.end_info, text);
  }
  const int width = static_cast<int>(layout.width);
  const int height = static_cast<int>(layout.height);
  if (layout.channels == 2) return flatten_grey_alpha(pixels, width, height);
  Image img;
  img.width = width;
  img.height = height;
  img.channels = layout.channels;
  img.pixels = std::move(pixels);
  return img;
}

std::string encode_png(const Image& img, const PngText& text) {
  const char* bug_hint = "this is a bug in the caller; please report it";
  IMAGINE_CHECK(img.channels == 1 || img.channels == 3 || img.channels == 4, bug_hint,
                "encode_png: cannot write an image with ", img.channels, " channels (1, 3 or 4 expected)");
  image_detail::check_image_budget(img.width, img.height, img.channels, "encode_png", bug_hint);
  IMAGINE_CHECK(img.pixels.size() == size_t(img.width) * img.height * img.channels, bug_hint,
                "encode_png: pixel buffer holds ", img.pixels.size(), " bytes, not ", img.width, "x", img.height, "x",
                img.channels);

  // png_text wants non-const char*; libpng copies the strings and never writes to them.
  std::vector<png_text> chunks(text.size());
  for (size_t i = 0; i < text.size(); i++) {
    const std::string& key = text[i].first;
    const std::string& value = text[i].second;
    check_text_key(key);
    IMAGINE_CHECK(value.find('\0') == std::string::npos, "remove NUL characters from the value",
                  "PNG text value for '", key, "' contains a NUL byte");
    IMAGINE_CHECK(is_utf8(value), "pass text as UTF-8", "PNG text value for '", key, "' is not valid UTF-8");
    png_text& t = chunks[i];
    std::memset(&t, 0, sizeof t);
    t.key = const_cast<char*>(key.c_str());
    t.text = const_cast<char*>(value.c_str());
    // XMP must sit in an iTXt chunk (the XMP specification's rule, which exiftool and photo
    // tools follow), as must our provenance manifest, even when their text is ASCII.
    const bool itxt_only = key == "XML:com.adobe.xmp" || key.rfind("imagine:provenance", 0) == 0;
    if (is_ascii(value) && !itxt_only) {
      t.compression = PNG_TEXT_COMPRESSION_NONE;
      t.text_length = value.size();
    } else {
      t.compression = PNG_ITXT_COMPRESSION_NONE;
      t.itxt_length = value.size();
      t.lang = const_cast<char*>("");
      t.lang_key = const_cast<char*>("");
    }
  }

  std::vector<png_bytep> rows(img.height);
  const size_t stride = size_t(img.width) * img.channels;
  // libpng's row pointers are non-const but png_write_image only reads them.
  png_bytep base = const_cast<png_bytep>(img.pixels.data());
  for (int y = 0; y < img.height; y++) rows[y] = base + y * stride;

  std::string out;
  MemorySink sink{&out, false};
  PngWriter w;
  w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w.message, on_png_error, on_png_warning);
  IMAGINE_CHECK(w.png, "the machine may be out of memory", "encode_png: cannot initialise libpng");
  w.info = png_create_info_struct(w.png);
  IMAGINE_CHECK(w.info, "the machine may be out of memory", "encode_png: cannot initialise libpng");

  const int color_type = img.channels == 1   ? PNG_COLOR_TYPE_GRAY
                         : img.channels == 3 ? PNG_COLOR_TYPE_RGB
                                             : PNG_COLOR_TYPE_RGB_ALPHA;
  PngEncodeJob job{png_uint_32(img.width), png_uint_32(img.height), color_type, rows.data(),
                   chunks.data(),          int(chunks.size()),      &sink};
  if (!png_encode_phase(&w, &job)) {
    throw Error(str("encode_png: libpng failed: ", w.message.text), "the machine may be out of memory");
  }
  return out;
}

void write_png(const std::string& path, const Image& img, const PngText& text) {
  write_file_atomic(path, encode_png(img, text));
}

PngText read_png_text(const std::string& path) {
  const std::string bytes = read_file(path);
  IMAGINE_CHECK(is_png(bytes), "give the path of a PNG file", path, ": not a PNG file");
  PngText text;
  decode_png(bytes, path, &text);
  return text;
}

}  // namespace imagine
