#include "slm/serve/scheduler.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>

namespace slm::serve {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

Job::Job(std::vector<std::string> stops, Clock::time_point arrived) : filter_(std::move(stops)), arrived_(arrived) {}

bool Job::wait(std::vector<std::string>* pieces, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return finished_ || !pending_.empty(); });
  for (auto& p : pending_) pieces->push_back(std::move(p));
  pending_.clear();
  return finished_;
}

Result<std::unique_ptr<Scheduler>> Scheduler::create(const engine::Session& session, const SchedulerOptions& opt,
                                                     Metrics* metrics) {
  if (opt.max_queue < 0)
    return Status::InvalidArgument("[scheduler] queue length is " + std::to_string(opt.max_queue) + ", expected >= 0");
  engine::BatchOptions bo;
  bo.n_slots = opt.n_parallel;
  bo.n_ctx = opt.n_ctx;
  bo.kv_type = opt.kv_type;
  SLM_ASSIGN_OR_RETURN(auto gen, engine::BatchGenerator::create(session, bo));
  return std::unique_ptr<Scheduler>(new Scheduler(std::move(gen), opt, metrics));
}

Scheduler::Scheduler(std::unique_ptr<engine::BatchGenerator> gen, const SchedulerOptions& opt, Metrics* metrics)
    : gen_(std::move(gen)), opt_(opt), n_ctx_(gen_->n_ctx()), metrics_(metrics) {
  gauges_.slots = gen_->n_slots();
  gauges_.kv_capacity = gen_->kv_capacity();
  gauges_.kv_bytes = static_cast<int64_t>(gen_->kv_bytes());
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Result<std::shared_ptr<Job>> Scheduler::submit(std::vector<int32_t> prompt, const engine::GenerateOptions& opt,
                                               std::vector<std::string> stops, Clock::time_point arrived) {
  auto job = std::make_shared<Job>(std::move(stops), arrived);
  job->prompt_ = std::move(prompt);
  job->opt_ = opt;
  job->n_prompt_ = static_cast<int64_t>(job->prompt_.size());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (draining_ || stop_) return Status::Unsupported("the server is shutting down");
    // Unfinished jobs: at most n_parallel run and max_queue wait.
    if (n_live_ >= opt_.n_parallel + opt_.max_queue)
      return Status::Unsupported("the server is busy: " + std::to_string(opt_.n_parallel) + " requests running and " +
                                 std::to_string(queue_.size()) + " waiting; retry later");
    ++n_live_;
    queue_.push_back(job);
    gauges_.queue_depth = static_cast<int64_t>(queue_.size());
  }
  cv_.notify_all();
  return job;
}

SchedulerGauges Scheduler::gauges() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return gauges_;
}

bool Scheduler::drain(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> lock(mutex_);
  draining_ = true;
  auto idle = [&] { return queue_.empty() && running_.empty(); };
  if (idle_cv_.wait_for(lock, grace, idle)) return true;
  for (auto& j : queue_) j->cancel();
  for (auto& j : running_) j->cancel();
  cv_.notify_all();
  idle_cv_.wait_for(lock, std::chrono::seconds(10), idle);
  return false;
}

void Scheduler::finish(Job& job, const std::string& reason) {
  if (reason == "cancelled") ++metrics_->cancelled;
  --n_live_;
  std::lock_guard<std::mutex> lock(job.mutex_);
  job.finished_ = true;
  job.finish_reason_ = reason;
  job.cv_.notify_all();
}

void Scheduler::admit(const std::shared_ptr<Job>& job) {
  Job* j = job.get();
  metrics_->queue_seconds.observe(seconds_since(j->arrived_));
  metrics_->prompt_tokens += static_cast<uint64_t>(j->prompt_.size());
  auto on_token = [this, j](int32_t id, const std::string& text) {
    if (id >= 0) {
      ++metrics_->generated_tokens;
      const auto t = Clock::now();
      if (j->first_token_) metrics_->ttft_seconds.observe(std::chrono::duration<double>(t - j->arrived_).count());
      else metrics_->itl_seconds.observe(std::chrono::duration<double>(t - j->last_token_).count());
      j->first_token_ = false;
      j->last_token_ = t;
    }
    if (j->cancelled_) return false;
    std::string out;
    j->hit_stop_ = j->filter_.push(text, &out);
    if (!out.empty()) {
      std::lock_guard<std::mutex> lock(j->mutex_);
      j->pending_.push_back(std::move(out));
      j->cv_.notify_all();
    }
    return !j->hit_stop_;
  };
  auto on_done = [this, j](const engine::GenerateStats& st) {
    std::string reason = st.stop_reason == "eog" ? "stop" : st.stop_reason == "error" ? "error" : "length";
    if (st.stop_reason == "cancelled") reason = j->hit_stop_ ? "stop" : "cancelled";
    if (reason == "stop" || reason == "length") {
      if (!j->hit_stop_) {
        std::string rest = j->filter_.flush();
        std::lock_guard<std::mutex> lock(j->mutex_);
        if (!rest.empty()) j->pending_.push_back(std::move(rest));
      }
    }
    metrics_->cached_prompt_tokens += static_cast<uint64_t>(st.n_prompt_reused);
    {
      std::lock_guard<std::mutex> lock(j->mutex_);
      j->n_generated_ = st.n_generated;
      j->n_cached_ = st.n_prompt_reused;
    }
    j->seq_id_ = -2;  // done: the loop drops it from running_
    finish(*j, reason);
  };
  auto id = gen_->add(j->prompt_, j->opt_, on_token, on_done);
  if (!id.ok()) {
    finish(*j, "error");
    return;
  }
  j->seq_id_ = *id;
  running_.push_back(job);
}

void Scheduler::loop() {
  // OpenMP's thread count belongs to the calling thread: set it on the one that runs forward passes.
  if (opt_.n_threads > 0) omp_set_num_threads(opt_.n_threads);
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !running_.empty(); });
    if (stop_) break;
    std::erase_if(queue_, [&](const std::shared_ptr<Job>& j) {
      if (j->cancelled_) finish(*j, "cancelled");
      return j->cancelled_.load();
    });
    for (auto& j : running_)
      if (j->cancelled_) gen_->cancel(j->seq_id_);
    while (gen_->has_free_slot() && !queue_.empty()) {
      auto j = queue_.front();
      queue_.pop_front();
      admit(j);
    }
    std::erase_if(running_, [](const std::shared_ptr<Job>& j) { return j->seq_id_ == -2; });
    const int64_t n_rows = gen_->n_active();
    lock.unlock();
    Status st = gen_->step();  // callbacks take job locks only
    lock.lock();
    if (n_rows > 0) {
      ++metrics_->batch_steps;
      metrics_->batch_rows += static_cast<uint64_t>(n_rows);
    }
    // A failed step has finished its jobs with "error"; the server log says why.
    if (!st.ok()) std::fprintf(stderr, "slm serve: a forward pass failed: %s\n", st.message().c_str());
    std::erase_if(running_, [](const std::shared_ptr<Job>& j) { return j->seq_id_ == -2; });
    gauges_.queue_depth = static_cast<int64_t>(queue_.size());
    gauges_.active = static_cast<int64_t>(running_.size());
    gauges_.kv_used = gen_->kv_used();
    if (queue_.empty() && running_.empty()) idle_cv_.notify_all();
  }
  for (auto& j : queue_) finish(*j, "cancelled");
  for (auto& j : running_) finish(*j, "cancelled");
  queue_.clear();
  running_.clear();
  idle_cv_.notify_all();
}

}  // namespace slm::serve
