// Format detection for decode_image: the magic number decides, never the file name, so a
// mislabelled .jpg that is really a PNG still loads and a text file is refused clearly.
#include "core/error.h"
#include "core/files.h"
#include "image/image.h"

namespace imagine {

bool is_png(const std::string& bytes) {
  static const unsigned char kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < sizeof kSignature) return false;
  for (size_t i = 0; i < sizeof kSignature; i++) {
    if (static_cast<unsigned char>(bytes[i]) != kSignature[i]) return false;
  }
  return true;
}

// SOI followed by the first marker's 0xFF: every JPEG starts this way.
bool is_jpeg(const std::string& bytes) {
  return bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
         static_cast<unsigned char>(bytes[1]) == 0xD8 && static_cast<unsigned char>(bytes[2]) == 0xFF;
}

Image decode_image(const std::string& bytes, const std::string& what) {
  IMAGINE_CHECK(!bytes.empty(), "the file is empty; re-export or re-download it", what, ": empty file");
  if (is_png(bytes)) return decode_png(bytes, what);
  if (is_jpeg(bytes)) return decode_jpeg(bytes, what);
  throw Error(str(what, ": not a PNG or JPEG image"),
              "convert it to PNG or JPEG, or remove it from the image folder");
}

Image read_image(const std::string& path) { return decode_image(read_file(path), path); }

}  // namespace imagine
