// Unicode normalization and case mapping for the normalizers (BERT lowercasing
// and accent stripping, HF NFD/NFC/Lowercase). Character classes come from
// PCRE2 (see regex.h); the data PCRE2 lacks is in unicode_tables.h.
// Pure functions: safe from any thread. Inputs must be valid UTF-8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slm::tokenizer {

// Canonical decomposition with canonical reordering of combining marks (NFD).
std::string nfd(std::string_view s);
// Canonical composition after NFD (NFC).
std::string nfc(std::string_view s);
// Full Unicode lowercase mapping, one character at a time (no context rules).
std::string to_lower(std::string_view s);
// Removes nonspacing marks (\p{Mn}); with nfd() first this strips accents.
std::string strip_marks(std::string_view s);
// True for the CJK ideograph blocks BERT pads with spaces.
bool is_cjk_ideograph(uint32_t cp);

}  // namespace slm::tokenizer
