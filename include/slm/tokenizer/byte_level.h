// GPT-2's byte-to-unicode map: every byte gets a printable code point so a
// byte-level BPE vocabulary can be stored as text. Printable Latin-1 bytes
// (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) map to themselves; the other 68 bytes map,
// in order, to U+0100 onwards (so ' ' is U+0120 'Ġ', '\n' is U+010A 'Ċ').
// Pure functions: safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slm::tokenizer {

// Code point of byte b.
uint32_t byte_to_unicode(uint8_t b);
// Maps every byte of raw to its code point, as UTF-8.
std::string byte_level_encode(std::string_view raw);
// Reverses byte_level_encode; characters outside the map pass through as UTF-8.
std::string byte_level_decode(std::string_view text);

}  // namespace slm::tokenizer
