#include "slm/serve/metrics.h"

#include <fmt/format.h>

namespace slm::serve {

void Histogram::observe(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++counts_[i];
  sum_ += seconds;
  ++n_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  *out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cum += counts_[i];
    *out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cum);
  }
  *out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, n_, name, sum_, name, n_);
}

void Metrics::count_request(int status) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[status];
}

std::string Metrics::render(const SchedulerGauges& g) const {
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, v);
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, v);
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out += "# HELP slm_requests_total HTTP requests answered, by status code.\n# TYPE slm_requests_total counter\n";
    for (const auto& [status, n] : requests_) out += fmt::format("slm_requests_total{{code=\"{}\"}} {}\n", status, n);
  }
  counter("slm_prompt_tokens_total", "Prompt tokens read.", prompt_tokens.load());
  counter("slm_prompt_tokens_cached_total", "Prompt tokens whose KV cache rows a slot still held (not computed again).",
          cached_prompt_tokens.load());
  counter("slm_generated_tokens_total", "Tokens generated.", generated_tokens.load());
  counter("slm_batch_steps_total", "Forward passes run by the scheduler.", batch_steps.load());
  counter("slm_batch_sequences_total", "Sequences summed over all forward passes (divide by steps: mean batch).",
          batch_rows.load());
  counter("slm_rejected_total", "Requests refused because the queue was full or the server was draining.",
          rejected.load());
  counter("slm_cancelled_total", "Requests cancelled because the client went away.", cancelled.load());
  gauge("slm_queue_depth", "Requests waiting for a sequence slot.", g.queue_depth);
  gauge("slm_active_sequences", "Sequences being generated.", g.active);
  gauge("slm_sequence_slots", "Sequences that can be generated at once.", g.slots);
  gauge("slm_kv_cache_used_positions", "KV cache positions held by active sequences.", g.kv_used);
  gauge("slm_kv_cache_capacity_positions", "KV cache positions in all.", g.kv_capacity);
  gauge("slm_kv_cache_bytes", "Bytes the KV cache reserves.", g.kv_bytes);
  request_seconds.render("slm_request_duration_seconds", "Time from a request's arrival to its last token.", &out);
  queue_seconds.render("slm_queue_wait_seconds", "Time a request waited for a sequence slot.", &out);
  ttft_seconds.render("slm_time_to_first_token_seconds", "Time from a request's arrival to its first token.", &out);
  itl_seconds.render("slm_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.", &out);
  return out;
}

}  // namespace slm::serve
