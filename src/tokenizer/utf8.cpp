#include "utf8.h"

namespace slm::tokenizer {

size_t utf8_valid_len(std::string_view s, size_t pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  uint8_t c = p[pos];
  if (c < 0x80) return 1;
  size_t len = utf8_seq_len(c);
  if (len == 1 || pos + len > n) return 0;
  uint32_t cp = 0;
  if (len == 2) {
    cp = c & 0x1F;
  } else if (len == 3) {
    cp = c & 0x0F;
  } else {
    cp = c & 0x07;
  }
  for (size_t i = 1; i < len; ++i) {
    uint8_t cc = p[pos + i];
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::optional<size_t> utf8_first_invalid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t len = utf8_valid_len(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::nullopt;
}

uint32_t utf8_next(std::string_view s, size_t* pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  uint8_t c = p[*pos];
  size_t len = utf8_seq_len(c);
  if (*pos + len > s.size()) len = 1;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t i = 1; i < len; ++i) cp = (cp << 6) | (p[*pos + i] & 0x3F);
  *pos += len;
  return cp;
}

void utf8_append(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(uint32_t cp) {
  std::string s;
  utf8_append(&s, cp);
  return s;
}

std::vector<uint32_t> utf8_to_cps(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) out.push_back(utf8_next(s, &i));
  return out;
}

std::string cps_to_utf8(const std::vector<uint32_t>& cps) {
  std::string s;
  s.reserve(cps.size());
  for (uint32_t cp : cps) utf8_append(&s, cp);
  return s;
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = utf8_seq_len(static_cast<uint8_t>(s[i]));
    if (i + len > s.size()) len = s.size() - i;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

std::string utf8_sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t len = utf8_valid_len(s, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    uint8_t c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t len = utf8_seq_len(c);
    if (len > back && len > 1) {
      // Every byte after the lead must be a continuation byte to be a valid prefix.
      for (size_t k = n - back + 1; k < n; ++k) {
        if ((static_cast<uint8_t>(s[k]) & 0xC0) != 0x80) return 0;
      }
      return back;
    }
    return 0;
  }
  return 0;
}

}  // namespace slm::tokenizer
