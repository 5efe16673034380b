#include "slm/tokenizer/byte_level.h"

#include <array>

#include "utf8.h"

namespace slm::tokenizer {

namespace {

struct Tables {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // code points 0..323 -> byte or -1
  std::array<std::string, 256> encoded;
  Tables() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
      encoded[b] = utf8_encode(to_cp[b]);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return tables().to_cp[b]; }

std::string byte_level_encode(std::string_view raw) {
  const Tables& t = tables();
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) out += t.encoded[static_cast<uint8_t>(c)];
  return out;
}

std::string byte_level_decode(std::string_view text) {
  const Tables& t = tables();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t len = utf8_valid_len(text, i);
    if (len == 0) {  // not UTF-8: pass the byte through
      out.push_back(text[i++]);
      continue;
    }
    size_t start = i;
    uint32_t cp = utf8_next(text, &i);
    if (cp < t.to_byte.size() && t.to_byte[cp] >= 0) {
      out.push_back(static_cast<char>(t.to_byte[cp]));
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace slm::tokenizer
