// UTF-8 validation shared by the corpus reader (binary detection) and the tokenizers.
#pragma once
#include <algorithm>
#include <cstddef>
#include <string_view>

namespace imagine {

// Length of the valid UTF-8 sequence at s[i], or 0 when the bytes there are not one.
// Strict: overlong forms, surrogates and code points past U+10FFFF are invalid (as strict
// as SentencePiece's decoder, so nothing it would reject reaches it).
inline size_t utf8_length(std::string_view s, size_t i) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const size_t left = s.size() - i;
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (left >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;
    if (c == 0xED && p[1] > 0x9F) return 0;
    return 3;
  }
  if (c < 0xF5) {
    if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;
    if (c == 0xF4 && p[1] > 0x8F) return 0;
    return 4;
  }
  return 0;
}

// True when all of s is valid UTF-8 (by utf8_length's strict rules).
inline bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// The longest prefix of s of at most max_bytes that does not end inside a UTF-8 sequence
// (bytes that start no valid sequence count as one character each).
inline std::string_view utf8_prefix(std::string_view s, size_t max_bytes) {
  size_t end = 0;
  while (end < s.size()) {
    const size_t n = std::max<size_t>(1, utf8_length(s, end));
    if (end + n > max_bytes) break;
    end += n;
  }
  return s.substr(0, end);
}

// Bytes at the end of s that start a UTF-8 sequence still waiting for its continuation
// bytes (0 when s ends on a character boundary, or in bytes no further input can complete).
// A stream of text holds these back so that it never splits a character.
inline size_t utf8_unfinished_tail(std::string_view s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    const unsigned c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t need = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

}  // namespace imagine
