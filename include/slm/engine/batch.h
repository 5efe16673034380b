// BatchGenerator: continuous batching over one loaded model. It holds up to
// n_slots sequences, each in its own KV cache slot with its own sampler and
// text decoder. step() runs ONE forward pass over every active sequence: one
// token for each sequence that is decoding, and prompt tokens (up to a budget
// per step, so long prompts do not stall the others) for sequences still
// reading their prompt. It then samples the next token of every sequence whose
// logits came out, reports its text, and retires the sequences that finished,
// freeing their slots. Sequences join (add) and leave (cancel) between steps.
//
// Memory is bounded: the KV cache holds n_slots x n_ctx positions, allocated
// once (the OS zeroes pages lazily, so unused positions cost nothing).
//
// Not thread-safe: one thread drives it (serve::Scheduler adds the locking).
// Callbacks run on that thread, inside add() never, inside step() only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slm/core/status.h"
#include "slm/engine/session.h"

namespace slm::engine {

struct BatchOptions {
  int32_t n_slots = 4;           // sequences decoded together at most
  int64_t n_ctx = 0;             // positions per sequence; 0: the session's
  DType kv_type = DType::kF32;
  int64_t prefill_budget = 256;  // prompt tokens per step over all sequences
};

class BatchGenerator {
 public:
  // Called with each generated token id and its text (complete UTF-8 only, possibly
  // empty; id -1 for the decoder's last bytes); return false to cancel the sequence.
  using TokenCallback = Session::TokenCallback;
  // Called once when the sequence is done (stop_reason "length", "eog", "context",
  // "cancelled" or "error"); its slot is free again by then.
  using DoneCallback = std::function<void(const GenerateStats& stats)>;

  // Borrows the session's model and tokenizer; the session must outlive this.
  static Result<std::unique_ptr<BatchGenerator>> create(const Session& session, const BatchOptions& opt);
  ~BatchGenerator();
  BatchGenerator(const BatchGenerator&) = delete;
  BatchGenerator& operator=(const BatchGenerator&) = delete;

  int32_t n_slots() const { return kv_->n_seq(); }
  int64_t n_ctx() const { return kv_->n_ctx(); }
  int32_t n_active() const { return static_cast<int32_t>(seqs_.size()); }
  bool has_free_slot() const { return n_active() < n_slots(); }
  // KV cache accounting: positions held by active sequences, positions in all, bytes in all.
  int64_t kv_used() const;
  int64_t kv_capacity() const { return static_cast<int64_t>(kv_->n_seq()) * kv_->n_ctx(); }
  size_t kv_bytes() const { return kv_->bytes(); }

  // Starts a sequence after prompt (at least one token, shorter than n_ctx);
  // returns its id. Fails when no slot is free or the prompt or options are invalid.
  // A finished sequence's KV rows stay in its slot: a later prompt that begins
  // with the same tokens takes the free slot holding the longest such prefix
  // and is fed from there (opt.reuse_prefix; GenerateStats::n_prompt_reused).
  // The rows are those a fresh prefill would write: each token's depend only
  // on its own sequence's earlier tokens, not on the batch around it.
  Result<int64_t> add(std::vector<int32_t> prompt, const GenerateOptions& opt, TokenCallback on_token,
                      DoneCallback on_done);
  // Retires the sequence at the next step with "cancelled"; unknown ids are ignored.
  void cancel(int64_t id);
  // One forward pass over all active sequences (a no-op when there are none).
  // A failed forward pass retires every active sequence with "error" and returns why.
  Status step();

 private:
  struct Sequence;
  BatchGenerator(const Session& session, std::unique_ptr<model::KvCache> kv, int64_t prefill_budget);
  void finish(Sequence& s, const char* reason);

  const Session& session_;
  std::unique_ptr<model::KvCache> kv_;
  int64_t prefill_budget_;
  int64_t next_id_ = 0;
  std::vector<std::unique_ptr<Sequence>> seqs_;  // in admission order
  std::vector<bool> slot_used_;
  std::vector<std::vector<int32_t>> slot_tokens_;  // the tokens of the KV rows each slot holds
  std::vector<float> logits_;  // (n_marked, n_vocab) of the last step
};

}  // namespace slm::engine
