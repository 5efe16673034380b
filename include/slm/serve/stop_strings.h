// StopStringFilter: cuts generated text at the first stop string. Text is fed
// piece by piece; a tail that could still grow into a stop string is held back
// until the next piece decides it, so a stream never shows part of a stop string.
// Not thread-safe: one filter per request.
#pragma once

#include <string>
#include <vector>

namespace slm::serve {

class StopStringFilter {
 public:
  explicit StopStringFilter(std::vector<std::string> stops);
  // Adds a piece; appends to out the text now final. Returns true when a stop
  // string appeared: out then ends just before it and the filter is finished.
  bool push(const std::string& piece, std::string* out);
  // The held-back tail, at the end of generation without a stop.
  std::string flush();

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text not yet given out
};

}  // namespace slm::serve
