#include "slm/core/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

namespace slm {

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t initial)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      initial_(initial),
      done_(initial),
      start_(now()),
      tty_(isatty(2) != 0) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done) {
  done_ = done;
  const double t = now();
  if (tty_ && t - last_draw_ > 0.2) {
    last_draw_ = t;
    draw(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  const double elapsed = now() - start_;
  const double rate = elapsed > 0 ? static_cast<double>(done_ - initial_) / elapsed : 0;
  const double frac = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1;
  const int width = 30, filled = static_cast<int>(frac * width + 0.5);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %.2f %s/s %s %.0fs%s%s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), rate, unit_.c_str(),
               final ? "took" : "ETA", final ? elapsed : eta, note_.empty() ? "" : "  ", note_.c_str(),
               final ? "\n" : "\033[K");
  std::fflush(stderr);
}

}  // namespace slm
