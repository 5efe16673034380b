// Scheduler: continuous batching for the server. HTTP handler threads submit
// requests into a bounded queue and get a Job back; one scheduler thread admits
// queued jobs into free sequence slots between steps of an engine::BatchGenerator,
// so every forward pass carries one token of every active request (and prompt
// chunks of new ones). Each job's text is cut at its stop strings on the
// scheduler thread and handed to the handler through the Job.
//
// Bounded: at most n_parallel sequences run and max_queue wait; submit() refuses
// more (the server answers 503). A cancelled job (client gone) leaves the
// batch at the next step and frees its KV slot.
//
// Thread safety: submit(), gauges() and drain() from any thread; a Job is
// shared by its handler and the scheduler thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "slm/core/status.h"
#include "slm/engine/batch.h"
#include "slm/serve/metrics.h"
#include "slm/serve/stop_strings.h"

namespace slm::serve {

struct SchedulerOptions {
  int32_t n_parallel = 4;   // sequences per forward pass at most
  int32_t max_queue = 32;   // requests waiting for a slot at most
  int64_t n_ctx = 0;        // positions per sequence; 0: the session's
  DType kv_type = DType::kF32;
  int32_t n_threads = 0;    // threads per forward pass; 0: OpenMP's default
};

class Job {
 public:
  Job(std::vector<std::string> stops, std::chrono::steady_clock::time_point arrived);
  // Waits up to `timeout` for new text or the end; appends the new pieces (one per
  // token, as far as stop strings allow) to *pieces. Returns true once the job is
  // finished (all its text given out).
  bool wait(std::vector<std::string>* pieces, std::chrono::milliseconds timeout);
  // Asks the scheduler to drop the job (the client went away).
  void cancel() { cancelled_ = true; }
  // After wait() returned true: "stop", "length", "cancelled" or "error".
  const std::string& finish_reason() const { return finish_reason_; }
  int64_t n_prompt() const { return n_prompt_; }
  int64_t n_generated() const { return n_generated_; }
  int64_t n_cached() const { return n_cached_; }  // prompt tokens taken from a slot's KV rows

 private:
  friend class Scheduler;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> pending_;  // pieces not yet taken by wait()
  bool finished_ = false;
  std::string finish_reason_;
  int64_t n_prompt_ = 0, n_generated_ = 0, n_cached_ = 0;
  std::atomic<bool> cancelled_{false};
  // Scheduler-thread state.
  StopStringFilter filter_;
  bool hit_stop_ = false;
  int64_t seq_id_ = -1;
  std::chrono::steady_clock::time_point arrived_, last_token_;
  bool first_token_ = true;
  std::vector<int32_t> prompt_;
  engine::GenerateOptions opt_;
};

class Scheduler {
 public:
  // Borrows the session's model and tokenizer; the session must outlive this.
  static Result<std::unique_ptr<Scheduler>> create(const engine::Session& session, const SchedulerOptions& opt,
                                                   Metrics* metrics);
  ~Scheduler();  // cancels what is left and joins the thread
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  int64_t n_ctx() const { return n_ctx_; }
  // Queues a request; the caller has validated prompt (non-empty, shorter than n_ctx())
  // and options. Fails with Unsupported when the queue is full or the server is draining.
  Result<std::shared_ptr<Job>> submit(std::vector<int32_t> prompt, const engine::GenerateOptions& opt,
                                      std::vector<std::string> stops,
                                      std::chrono::steady_clock::time_point arrived);
  SchedulerGauges gauges() const;
  // Refuses new jobs, waits up to `grace` for queued and running ones to finish,
  // then cancels the rest. Returns true if all finished in time.
  bool drain(std::chrono::milliseconds grace);

 private:
  Scheduler(std::unique_ptr<engine::BatchGenerator> gen, const SchedulerOptions& opt, Metrics* metrics);
  void loop();
  void admit(const std::shared_ptr<Job>& job);      // scheduler thread
  void finish(Job& job, const std::string& reason);  // scheduler thread

  std::unique_ptr<engine::BatchGenerator> gen_;  // touched by the scheduler thread only
  SchedulerOptions opt_;
  int64_t n_ctx_;
  Metrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;       // wakes the scheduler: new job, stop
  std::condition_variable idle_cv_;  // wakes drain(): nothing queued or running
  std::deque<std::shared_ptr<Job>> queue_;     // guarded by mutex_
  std::vector<std::shared_ptr<Job>> running_;  // guarded by mutex_
  SchedulerGauges gauges_;                     // guarded by mutex_; refreshed every step
  bool draining_ = false, stop_ = false;       // guarded by mutex_
  std::atomic<int32_t> n_live_{0};             // submitted, not finished; grows under mutex_
  std::thread thread_;
};

}  // namespace slm::serve
