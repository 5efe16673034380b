// Metrics: the server's counters and latency histograms, rendered in the
// Prometheus text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
// Thread-safe: handler threads and the scheduler thread record concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace slm::serve {

// A cumulative histogram with fixed bucket bounds in seconds.
class Histogram {
 public:
  void observe(double seconds);
  // Appends the _bucket, _sum and _count lines of `name`.
  void render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  static constexpr std::array<double, 14> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                     0.25,  0.5,    1,     2.5,  5,     10,   30};
  mutable std::mutex mutex_;
  std::array<uint64_t, kBounds.size() + 1> counts_{};  // the last one is +Inf
  double sum_ = 0;
  uint64_t n_ = 0;
};

// What the scheduler reports at the moment of a scrape.
struct SchedulerGauges {
  int64_t queue_depth = 0, active = 0, slots = 0;
  int64_t kv_used = 0, kv_capacity = 0;  // positions
  int64_t kv_bytes = 0;
};

class Metrics {
 public:
  void count_request(int status);
  std::atomic<uint64_t> prompt_tokens{0}, generated_tokens{0};
  std::atomic<uint64_t> cached_prompt_tokens{0};  // of prompt_tokens, those whose KV rows a slot still held
  std::atomic<uint64_t> batch_steps{0}, batch_rows{0};  // forward passes and the sequences they carried
  std::atomic<uint64_t> rejected{0}, cancelled{0};      // queue full or draining; client gone
  Histogram request_seconds, ttft_seconds, itl_seconds, queue_seconds;

  std::string render(const SchedulerGauges& g) const;

 private:
  mutable std::mutex mutex_;
  std::map<int, uint64_t> requests_;  // by HTTP status
};

}  // namespace slm::serve
