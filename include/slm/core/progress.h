// Progress: a one-line progress bar on stderr with count, rate and ETA,
// redrawn at most a few times a second. Quiet when stderr is not a terminal,
// except for the final line. Not thread-safe: update from one thread.
#pragma once

#include <cstdint>
#include <string>

namespace slm {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void update(int64_t done);
  void finish();

 private:
  void draw(bool final);
  std::string label_, unit_;
  int64_t total_, done_ = 0;
  double start_, last_draw_ = 0;
  bool tty_, finished_ = false;
};

}  // namespace slm
