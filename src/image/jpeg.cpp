// JPEG decoding through libjpeg (libjpeg-turbo's libjpeg62 API) to 8-bit grey or RGB.
// Writing JPEG is left out on purpose: imagine saves PNG, which keeps provenance text and
// loses nothing.
//
// libjpeg reports errors through error_exit, which must not return; ours longjmps. As in
// png.cpp, every libjpeg call that can fail runs in a "phase" function that calls setjmp
// first and holds only plain data, and its C++ caller turns failure into imagine::Error.
//
// libjpeg treats a truncated or corrupt entropy-coded stream as a warning and pads the
// rest of the image with grey. A grey-padded training image is worse than a skipped one,
// so those warnings are fatal here.
#include <cstdio>  // jpeglib.h uses FILE without including it

#include <jpeglib.h>
#include <jerror.h>  // the JWRN_ warning codes

#include <csetjmp>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "image/detail.h"
#include "image/image.h"

namespace imagine {

namespace {

// A hostile progressive JPEG can hold thousands of tiny scans, each costing a pass over
// the whole coefficient buffer; real encoders use about ten.
constexpr int kMaxJpegScans = 1000;

struct JpegError {
  jpeg_error_mgr pub;  // first, so libjpeg's j_common_ptr->err points at us
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void fail_jpeg(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void on_jpeg_error(j_common_ptr cinfo) { fail_jpeg(cinfo); }

// Warnings that only describe odd but harmless headers or stray bytes between segments;
// every other warning means pixels were lost or invented.
bool harmless_warning(int code) {
  return code == JWRN_EXTRANEOUS_DATA || code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR ||
         code == JWRN_BOGUS_ICC;
}

// level -1 is a warning; levels >= 0 are trace messages, which we never print.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (!harmless_warning(cinfo->err->msg_code)) fail_jpeg(cinfo);
  cinfo->err->num_warnings++;
}

void on_jpeg_scan(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegError*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "more than %d progressive scans", kMaxJpegScans);
    std::longjmp(err->jump, 1);
  }
}

// Owns the decompressor. The struct is zeroed first so jpeg_destroy_decompress is safe
// even when jpeg_create_decompress failed part-way.
struct JpegReader {
  jpeg_decompress_struct cinfo;
  JpegError err;
  jpeg_progress_mgr progress;
  JpegReader() {
    std::memset(&cinfo, 0, sizeof cinfo);
    std::memset(&err, 0, sizeof err);
    std::memset(&progress, 0, sizeof progress);
  }
  ~JpegReader() { jpeg_destroy_decompress(&cinfo); }
  JpegReader(const JpegReader&) = delete;
  JpegReader& operator=(const JpegReader&) = delete;
};

struct JpegLayout {
  JDIMENSION width;
  JDIMENSION height;
  int channels;
  bool cmyk;
};

// Phase 1: parses the headers and picks the output colour space.
bool jpeg_header_phase(JpegReader* r, const unsigned char* data, size_t size, JpegLayout* layout) {
  if (setjmp(r->err.jump)) return false;
  jpeg_create_decompress(&r->cinfo);
  r->progress.progress_monitor = on_jpeg_scan;
  r->cinfo.progress = &r->progress;
  jpeg_mem_src(&r->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&r->cinfo, TRUE);
  const J_COLOR_SPACE space = r->cinfo.jpeg_color_space;
  layout->cmyk = space == JCS_CMYK || space == JCS_YCCK;
  if (layout->cmyk) return true;
  r->cinfo.out_color_space = space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_calc_output_dimensions(&r->cinfo);
  layout->width = r->cinfo.output_width;
  layout->height = r->cinfo.output_height;
  layout->channels = r->cinfo.output_components;
  return true;
}

// Phase 2: decodes every scanline into `pixels` and reads on to the EOI marker.
bool jpeg_pixels_phase(JpegReader* r, unsigned char* pixels, size_t stride) {
  if (setjmp(r->err.jump)) return false;
  jpeg_start_decompress(&r->cinfo);
  while (r->cinfo.output_scanline < r->cinfo.output_height) {
    JSAMPROW row = pixels + size_t(r->cinfo.output_scanline) * stride;
    jpeg_read_scanlines(&r->cinfo, &row, 1);
  }
  jpeg_finish_decompress(&r->cinfo);
  return true;
}

const char* kCorruptHint = "the file is damaged or incomplete; re-export or re-download it";

}  // namespace

Image decode_jpeg(const std::string& bytes, const std::string& what) {
  IMAGINE_CHECK(!bytes.empty(), "the file is empty; re-export or re-download it", what, ": empty file");
  JpegReader r;
  r.cinfo.err = jpeg_std_error(&r.err.pub);
  r.err.pub.error_exit = on_jpeg_error;
  r.err.pub.emit_message = on_jpeg_message;

  JpegLayout layout{};
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (!jpeg_header_phase(&r, data, bytes.size(), &layout)) {
    throw Error(str(what, ": bad JPEG: ", r.err.message), kCorruptHint);
  }
  IMAGINE_CHECK(!layout.cmyk, "convert it to RGB first (for example: convert in.jpg -colorspace sRGB out.jpg)", what,
                ": CMYK JPEG images are not supported");
  image_detail::check_image_budget(layout.width, layout.height, layout.channels, what,
                                   "shrink the image before using it");
  IMAGINE_CHECK(layout.channels == 1 || layout.channels == 3, kCorruptHint, what, ": JPEG decodes to ",
                layout.channels, " channels; expected 1 or 3");

  Image img(static_cast<int>(layout.width), static_cast<int>(layout.height), layout.channels);
  if (!jpeg_pixels_phase(&r, img.pixels.data(), size_t(img.width) * img.channels)) {
    throw Error(str(what, ": bad JPEG: ", r.err.message), kCorruptHint);
  }
  return img;
}

}  // namespace imagine
