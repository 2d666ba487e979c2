// Small helpers shared by the image sources (decoders and pixel operations); not part of
// the public image API.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "image/image.h"

namespace imagine::image_detail {

// A colour sample composited over white: c*a + 255*(1-a), rounded, all in 8-bit units.
inline uint8_t over_white(unsigned c, unsigned a) {
  return static_cast<uint8_t>((c * a + 255u * (255u - a) + 127u) / 255u);
}

// Refuses sizes past kMaxImageSide / kMaxImageBytes before anything is allocated.
// `what` names the file or operation, `hint` says what the user can do about it.
inline void check_image_budget(int64_t width, int64_t height, int64_t channels, const std::string& what,
                               const std::string& hint) {
  IMAGINE_CHECK(width > 0 && height > 0, hint, what, ": image size ", width, "x", height, " is empty");
  IMAGINE_CHECK(width <= kMaxImageSide && height <= kMaxImageSide, hint, what, ": image size ", width, "x",
                height, " exceeds the limit of ", kMaxImageSide, " pixels a side");
  // Each factor is at most 16384 here, so the product fits comfortably in 64 bits.
  IMAGINE_CHECK(uint64_t(width) * uint64_t(height) * uint64_t(channels) <= kMaxImageBytes, hint, what,
                ": image size ", width, "x", height, "x", channels, " exceeds the limit of ",
                (kMaxImageBytes >> 20), " MiB of pixels");
}

}  // namespace imagine::image_detail
