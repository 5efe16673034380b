#include "unicode.h"

#include <algorithm>
#include <vector>

#include "regex.h"
#include "unicode_tables.h"
#include "utf8.h"
#include "slm/core/assert.h"

namespace slm::tokenizer {

namespace ut = unicode_tables;

namespace {

// Hangul syllables decompose algorithmically (Unicode ch. 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

const ut::MapEntry* find_entry(const ut::MapEntry* table, size_t n, uint32_t cp) {
  const ut::MapEntry* end = table + n;
  const ut::MapEntry* it =
      std::lower_bound(table, end, cp, [](const ut::MapEntry& e, uint32_t c) { return e.cp < c; });
  return (it != end && it->cp == cp) ? it : nullptr;
}

uint8_t ccc(uint32_t cp) {
  const ut::CccRange* end = ut::kCcc + ut::kCccSize;
  const ut::CccRange* it =
      std::upper_bound(ut::kCcc, end, cp, [](uint32_t c, const ut::CccRange& r) { return c < r.first; });
  if (it == ut::kCcc) return 0;
  --it;
  return (cp >= it->first && cp <= it->last) ? it->ccc : 0;
}

std::vector<uint32_t> decompose(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = utf8_next(s, &i);
    if (cp >= kSBase && cp < kSBase + kSCount) {
      uint32_t idx = cp - kSBase;
      out.push_back(kLBase + idx / kNCount);
      out.push_back(kVBase + (idx % kNCount) / kTCount);
      if (idx % kTCount != 0) out.push_back(kTBase + idx % kTCount);
      continue;
    }
    if (const ut::MapEntry* e = find_entry(ut::kDecomp, ut::kDecompSize, cp)) {
      for (uint32_t k = 0; k < e->len; ++k) out.push_back(ut::kDecompPool[e->start + k]);
    } else {
      out.push_back(cp);
    }
  }
  // Canonical ordering: stable sort each run of nonzero combining classes.
  size_t k = 0;
  while (k < out.size()) {
    if (ccc(out[k]) == 0) {
      ++k;
      continue;
    }
    size_t b = k;
    while (k < out.size() && ccc(out[k]) != 0) ++k;
    std::stable_sort(out.begin() + b, out.begin() + k, [](uint32_t a, uint32_t c) { return ccc(a) < ccc(c); });
  }
  return out;
}

uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const ut::Composite* end = ut::kCompose + ut::kComposeSize;
  const ut::Composite* it = std::lower_bound(ut::kCompose, end, std::make_pair(a, b),
                                             [](const ut::Composite& c, const std::pair<uint32_t, uint32_t>& k) {
                                               return c.a < k.first || (c.a == k.first && c.b < k.second);
                                             });
  if (it != end && it->a == a && it->b == b) return it->composed;
  return 0;
}

}  // namespace

std::string nfd(std::string_view s) { return cps_to_utf8(decompose(s)); }

std::string nfc(std::string_view s) {
  std::vector<uint32_t> cps = decompose(s);
  if (cps.empty()) return {};
  // Canonical composition (Unicode UAX #15): a mark composes with the last
  // starter unless a mark of the same or higher class sits between them.
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;
  bool has_between = false;  // chars appended after the starter
  int last_ccc = 0;          // class of the last of them
  for (uint32_t cp : cps) {
    int c = ccc(cp);
    if (starter != SIZE_MAX && (!has_between || (last_ccc != 0 && last_ccc < c))) {
      uint32_t comp = compose_pair(out[starter], cp);
      if (comp != 0) {
        out[starter] = comp;
        continue;
      }
    }
    if (c == 0) {
      starter = out.size();
      has_between = false;
    } else {
      has_between = true;
      last_ccc = c;
    }
    out.push_back(cp);
  }
  return cps_to_utf8(out);
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = utf8_next(s, &i);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
      continue;
    }
    if (const ut::MapEntry* e = find_entry(ut::kLower, ut::kLowerSize, cp)) {
      for (uint32_t k = 0; k < e->len; ++k) utf8_append(&out, ut::kLowerPool[e->start + k]);
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  return out;
}

std::string strip_marks(std::string_view s) {
  static const Regex kMarks = [] {
    auto r = Regex::compile("\\p{Mn}+");
    SLM_ASSERT(r.ok());
    return std::move(r).value();
  }();
  return kMarks.replace_all(s, [](std::string_view) { return std::string(); });
}

bool is_cjk_ideograph(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

}  // namespace slm::tokenizer
