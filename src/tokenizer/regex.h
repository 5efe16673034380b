// Regex: a compiled PCRE2 pattern (UTF + UCP, so \p{L}, \p{N}, \s and lookahead
// follow Unicode) used for pre-tokenizer splits and Unicode classes.
// Immutable after compile; find_all is safe from many threads (each call has
// its own match data).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slm/core/status.h"

namespace slm::tokenizer {

class Regex {
 public:
  static Result<Regex> compile(const std::string& pattern);

  // Non-overlapping matches, left to right, as [begin, end) byte offsets.
  // Empty matches are skipped. text must be valid UTF-8.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // True if the whole of text matches.
  bool full_match(std::string_view text) const;
  // Replaces every match with fn(match).
  template <typename Fn>
  std::string replace_all(std::string_view text, Fn fn) const {
    std::string out;
    size_t last = 0;
    for (auto [b, e] : find_all(text)) {
      out.append(text.substr(last, b - last));
      out += fn(text.substr(b, e - b));
      last = e;
    }
    out.append(text.substr(last));
    return out;
  }
  const std::string& pattern() const { return pattern_; }

 private:
  struct Code;
  std::shared_ptr<Code> code_;
  std::string pattern_;
};

}  // namespace slm::tokenizer
