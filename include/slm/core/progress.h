// Progress: a one-line progress bar on stderr with count, rate and ETA,
// redrawn at most a few times a second. Quiet when stderr is not a terminal,
// except for the final line. Not thread-safe: update from one thread.
#pragma once

#include <cstdint>
#include <string>

namespace slm {

class Progress {
 public:
  // initial: work already done before this run (a resumed job), left out of the rate.
  Progress(std::string label, int64_t total, std::string unit = "it", int64_t initial = 0);
  ~Progress();
  void update(int64_t done);
  // Text shown after the bar (e.g. the current loss).
  void set_note(std::string note) { note_ = std::move(note); }
  void finish();

 private:
  void draw(bool final);
  std::string label_, unit_, note_;
  int64_t total_, initial_, done_;
  double start_, last_draw_ = 0;
  bool tty_, finished_ = false;
};

}  // namespace slm
