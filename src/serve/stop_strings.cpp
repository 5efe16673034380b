#include "slm/serve/stop_strings.h"

#include <algorithm>

namespace slm::serve {

StopStringFilter::StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

bool StopStringFilter::push(const std::string& piece, std::string* out) {
  pending_ += piece;
  // The earliest stop string wins.
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, pending_.find(s));
  if (first != std::string::npos) {
    out->append(pending_, 0, first);
    pending_.clear();
    return true;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  out->append(pending_, 0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return false;
}

std::string StopStringFilter::flush() {
  std::string rest;
  rest.swap(pending_);
  return rest;
}

}  // namespace slm::serve
