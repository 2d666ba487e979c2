// Images as plain 8-bit pixel buffers, and the file formats the image families read and
// write: PNG (libpng, read + write with text chunks), JPEG (libjpeg, read), IDX
// (MNIST / Fashion-MNIST, raw or gzip). No tensors here: the data and model layers
// convert. Every reader throws imagine::Error with a hint on a bad file — never crashes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace imagine {

// Interleaved 8-bit pixels, row-major: pixels[(y * width + x) * channels + c].
// channels: 1 (grey), 3 (RGB) or 4 (RGBA).
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int w, int h, int c, uint8_t fill = 0) : width(w), height(h), channels(c), pixels(size_t(w) * h * c, fill) {}
  uint8_t& at(int x, int y, int c) { return pixels[(size_t(y) * width + x) * channels + c]; }
  uint8_t at(int x, int y, int c) const { return pixels[(size_t(y) * width + x) * channels + c]; }
  bool empty() const { return pixels.empty(); }
};

// Limits every decoder and pixel operation checks before allocating, so a hostile header
// cannot ask for gigabytes: at most 16384 pixels a side and 256 MiB of 8-bit samples.
constexpr int kMaxImageSide = 16384;
constexpr size_t kMaxImageBytes = size_t(256) << 20;

// ---- decoding ----
// Decodes PNG or JPEG bytes, chosen by their magic number (not the file name). Any bit
// depth / palette / interlacing / grey+alpha is converted to 8-bit 1, 3 or 4 channels:
//   PNG  grey (any depth) -> 1; grey+alpha or grey with tRNS -> 1, composited on white
//        (training data has no alpha, and a grey image should stay grey);
//        RGB -> 3; RGBA, or palette / RGB with tRNS -> 4; 16-bit is scaled to 8-bit.
//   JPEG grey -> 1, YCbCr / RGB -> 3; CMYK is refused. Any data-losing libjpeg warning
//        (premature end of file, corrupt entropy data) is an error, not grey padding.
// Gamma, colour profiles and EXIF orientation are ignored. Throws imagine::Error for
// truncated, corrupt, oversized or unsupported data. `what` names the source in messages.
Image decode_image(const std::string& bytes, const std::string& what);
Image read_image(const std::string& path);  // read_file + decode_image
bool is_png(const std::string& bytes);
bool is_jpeg(const std::string& bytes);
// The format-specific decoders behind decode_image. `text`, when given, receives the
// PNG's tEXt / zTXt / iTXt chunks (before and after the image data) as UTF-8.
Image decode_png(const std::string& bytes, const std::string& what,
                 std::vector<std::pair<std::string, std::string>>* text = nullptr);
Image decode_jpeg(const std::string& bytes, const std::string& what);

// ---- PNG writing ----
// Text chunks (key, value) written before the image data: provenance, seeds, model.
// Keys are 1-79 printable ASCII characters without leading, trailing or double spaces
// (the PNG keyword rules); values are UTF-8 without NUL bytes. A pure-ASCII value goes
// in a tEXt chunk; any other value in an uncompressed iTXt chunk, because tEXt is
// Latin-1 and would garble UTF-8 in other readers. The keys "XML:com.adobe.xmp" (XMP) and
// "imagine:provenance*" always go in iTXt chunks. Images must have 1, 3 or 4 channels.
using PngText = std::vector<std::pair<std::string, std::string>>;
std::string encode_png(const Image& img, const PngText& text = {});
void write_png(const std::string& path, const Image& img, const PngText& text = {});  // atomic
// The tEXt / zTXt / iTXt chunks of a PNG file, in file order, as UTF-8 (Latin-1 tEXt
// and zTXt are converted). Decodes the whole file, so a corrupt PNG throws.
PngText read_png_text(const std::string& path);

// ---- IDX (MNIST family) ----
// An IDX file of unsigned bytes: dims (e.g. {N, 28, 28} for images, {N} for labels) and
// data. Accepts raw or gzip-compressed files (detected by magic). Validates the magic,
// the type code, the dimension count and that the payload has exactly the declared size.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
// Only type code 0x08 (unsigned byte) and 1 to 4 dimensions, each at least 1, are accepted.
IdxArray read_idx(const std::string& path);
IdxArray parse_idx(const std::string& bytes, const std::string& what);  // bytes already gunzipped or raw
// Whole-file gzip (zlib); concatenated members are joined as gzip -d does. A truncated
// or corrupt stream, trailing garbage or more than kMaxGunzipBytes of output throws.
constexpr size_t kMaxGunzipBytes = size_t(1) << 30;
std::string gunzip(const std::string& bytes, const std::string& what);

// ---- pixel operations ----
// Composites alpha over white (RGBA -> RGB, grey+alpha -> grey is done by the decoder).
Image drop_alpha(const Image& img);
// Converts to 1 (luma, BT.601) or 3 channels (grey replicated); alpha composited on white.
// 4 is accepted too: an opaque alpha channel is added where there is none.
Image to_channels(const Image& img, int channels);
// Resizes so the shorter side equals `size` (area-averaging when shrinking, bilinear when
// growing), keeping the aspect ratio, then crops the centre size x size square.
Image resize_cover(const Image& img, int size);
// Scaling to exactly w x h, aspect not kept. Nearest-neighbour by default (for display,
// e.g. up-scaling grids: pixels stay crisp); Smooth averages areas when shrinking and
// interpolates bilinearly when growing, per axis, as resize_cover does.
enum class ResizeFilter { Nearest, Smooth };
Image resize_exact(const Image& img, int w, int h);
Image resize_exact(const Image& img, int w, int h, ResizeFilter filter);

// A contact sheet: tiles (all the same size and channels) in rows of `columns`, separated
// by `pad` pixels of `background`, with a `pad` border all round (as torchvision's
// make_grid). columns <= 0 picks a near-square layout; more columns than tiles are cut to
// the tile count. Throws imagine::Error when there are no tiles or they differ in shape.
Image make_grid(const std::vector<Image>& tiles, int columns = 0, int pad = 2, uint8_t background = 255);

}  // namespace imagine
