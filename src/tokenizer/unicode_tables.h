// Unicode data that PCRE2 does not expose: canonical decompositions, combining
// classes, primary composites and lowercase mappings. Generated into
// unicode_tables.cpp by unicode_tables_gen.py; all tables sorted by code point.
// Immutable: safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slm::tokenizer::unicode_tables {

struct MapEntry {
  uint32_t cp;
  uint32_t start;  // into the pool
  uint32_t len;
};
struct CccRange {
  uint32_t first, last;
  uint8_t ccc;
};
struct Composite {
  uint32_t a, b, composed;
};

extern const char* const kUnicodeVersion;
extern const MapEntry kDecomp[];  // full canonical decomposition (NFD of one char), Hangul excluded
extern const size_t kDecompSize;
extern const uint32_t kDecompPool[];
extern const MapEntry kLower[];  // full lowercase mapping where it differs
extern const size_t kLowerSize;
extern const uint32_t kLowerPool[];
extern const CccRange kCcc[];  // nonzero canonical combining classes
extern const size_t kCccSize;
extern const Composite kCompose[];  // sorted by (a, b)
extern const size_t kComposeSize;

}  // namespace slm::tokenizer::unicode_tables
