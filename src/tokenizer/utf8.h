// UTF-8 helpers for the tokenizers: strict validation (the offset of the first
// bad byte), decoding, encoding, and replacing bad bytes with U+FFFD.
// Pure functions: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slm::tokenizer {

// Length of a UTF-8 sequence from its lead byte (1 for bytes that cannot lead).
inline size_t utf8_seq_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Length of the valid sequence starting at s[pos], or 0 if the bytes there are
// not valid UTF-8 (overlong, surrogate, > U+10FFFF, truncated, stray continuation).
size_t utf8_valid_len(std::string_view s, size_t pos);

// Offset of the first invalid byte, or nullopt if s is valid UTF-8.
std::optional<size_t> utf8_first_invalid(std::string_view s);

// Decodes the (valid) sequence at s[*pos] and advances *pos.
uint32_t utf8_next(std::string_view s, size_t* pos);

void utf8_append(std::string* out, uint32_t cp);
std::string utf8_encode(uint32_t cp);

// Code points of valid UTF-8 text.
std::vector<uint32_t> utf8_to_cps(std::string_view s);
std::string cps_to_utf8(const std::vector<uint32_t>& cps);

// Splits valid UTF-8 into one view per character.
std::vector<std::string_view> utf8_chars(std::string_view s);

// Replaces every byte that is not part of a valid sequence with U+FFFD.
std::string utf8_sanitize(std::string_view s);

// Length of the longest prefix of s that could still become valid UTF-8 with more
// bytes: the incomplete sequence at the end (0 if s ends on a boundary).
size_t utf8_incomplete_tail(std::string_view s);

}  // namespace slm::tokenizer
