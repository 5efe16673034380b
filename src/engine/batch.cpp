#include "slm/engine/batch.h"

#include <algorithm>
#include <chrono>

namespace slm::engine {

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

struct BatchGenerator::Sequence {
  int64_t id;
  int32_t slot;
  std::vector<int32_t> prompt;
  std::vector<int32_t> generated;  // sampled tokens, in order
  size_t n_fed = 0;      // prompt tokens already in the KV cache
  int32_t next = -1;     // sampled, not yet fed
  int64_t pos = 0;       // position of the next token fed
  GenerateOptions opt;
  sample::Sampler sampler;
  std::unique_ptr<tokenizer::StreamDecoder> dec;
  TokenCallback on_token;
  DoneCallback on_done;
  GenerateStats stats;
  double t_added = 0, t_first = 0;
  bool cancelled = false;
  bool done = false;

  Sequence(const GenerateOptions& o) : opt(o), sampler(o.sampler) {}
  bool decoding() const { return n_fed == prompt.size(); }
};

Result<std::unique_ptr<BatchGenerator>> BatchGenerator::create(const Session& session, const BatchOptions& opt) {
  if (opt.n_slots < 1 || opt.n_slots > 1024)
    return Status::InvalidArgument(fmt::format("[batch] {} sequence slots, expected 1 to 1024", opt.n_slots));
  if (opt.n_ctx < 0) return Status::InvalidArgument(fmt::format("[batch] context size is {}, expected >= 0", opt.n_ctx));
  if (opt.prefill_budget < 1)
    return Status::InvalidArgument(fmt::format("[batch] prefill budget is {}, expected >= 1", opt.prefill_budget));
  const model::ModelConfig& c = session.source().config();
  const int64_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx : session.n_ctx();
  SLM_ASSIGN_OR_RETURN(auto kv, model::KvCache::create(c, 0, c.n_layer, opt.n_slots, n_ctx, opt.kv_type));
  return std::unique_ptr<BatchGenerator>(new BatchGenerator(session, std::move(kv), opt.prefill_budget));
}

BatchGenerator::BatchGenerator(const Session& session, std::unique_ptr<model::KvCache> kv, int64_t prefill_budget)
    : session_(session), kv_(std::move(kv)), prefill_budget_(prefill_budget),
      slot_used_(static_cast<size_t>(kv_->n_seq()), false), slot_tokens_(static_cast<size_t>(kv_->n_seq())) {}

BatchGenerator::~BatchGenerator() = default;

int64_t BatchGenerator::kv_used() const {
  int64_t n = 0;
  for (const auto& s : seqs_) n += kv_->length(s->slot);
  return n;
}

Result<int64_t> BatchGenerator::add(std::vector<int32_t> prompt, const GenerateOptions& opt, TokenCallback on_token,
                                    DoneCallback on_done) {
  SLM_RETURN_IF_ERROR(opt.sampler.validate());
  if (prompt.empty()) return Status::InvalidArgument("[batch] empty prompt: give at least one token");
  if (opt.n_predict < 0) return Status::InvalidArgument(fmt::format("[batch] n_predict is {}, expected >= 0", opt.n_predict));
  if (static_cast<int64_t>(prompt.size()) >= n_ctx())
    return Status::InvalidArgument(
        fmt::format("[batch] the prompt has {} tokens but the context holds {}", prompt.size(), n_ctx()));
  const int64_t n_vocab = session_.source().config().n_vocab;
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= n_vocab)
      return Status::InvalidArgument(
          fmt::format("[batch] prompt token {} at index {} is outside the vocabulary [0, {})", prompt[i], i, n_vocab));
  // The free slot whose rows begin the prompt longest (at least its last
  // token is fed, for the logits; a sliding-window ring restarts only where
  // it still holds the window).
  int32_t slot = -1;
  int64_t reuse = -1;
  for (int32_t i = 0; i < n_slots(); ++i) {
    if (slot_used_[static_cast<size_t>(i)]) continue;
    const std::vector<int32_t>& held = slot_tokens_[static_cast<size_t>(i)];
    int64_t n = 0;
    if (opt.reuse_prefix) {
      n = std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end()).first - held.begin();
      n = std::min<int64_t>(n, static_cast<int64_t>(prompt.size()) - 1);
      if (n > 0 && n < kv_->min_rewind(i)) n = 0;
    }
    if (n > reuse) slot = i, reuse = n;
  }
  if (slot < 0)
    return Status::InvalidArgument(fmt::format("[batch] all {} sequence slots are busy: check has_free_slot()", n_slots()));

  auto s = std::make_unique<Sequence>(opt);
  s->id = next_id_++;
  s->slot = slot;
  slot_used_[static_cast<size_t>(slot)] = true;
  slot_tokens_[static_cast<size_t>(slot)].clear();  // until it finishes
  for (int32_t t : prompt) s->sampler.accept(t);
  if (const tokenizer::Tokenizer* tok = session_.tokenizer()) {
    const bool at_start = prompt.size() == 1 && prompt[0] == tok->bos();
    s->dec = std::make_unique<tokenizer::StreamDecoder>(*tok, at_start);
  }
  s->prompt = std::move(prompt);
  s->on_token = std::move(on_token);
  s->on_done = std::move(on_done);
  s->stats.n_prompt = static_cast<int64_t>(s->prompt.size());
  s->stats.n_prompt_reused = reuse;
  s->n_fed = static_cast<size_t>(reuse);
  s->t_added = now();
  kv_->set_length(s->slot, reuse);
  seqs_.push_back(std::move(s));
  return seqs_.back()->id;
}

void BatchGenerator::cancel(int64_t id) {
  for (auto& s : seqs_)
    if (s->id == id) s->cancelled = true;
}

void BatchGenerator::finish(Sequence& s, const char* reason) {
  if (s.dec && std::string(reason) != "error") {
    std::string rest = s.dec->flush();
    if (!rest.empty()) s.on_token(-1, rest);
  }
  s.stats.stop_reason = reason;
  const double t = now();
  s.stats.prompt_seconds = (s.t_first > 0 ? s.t_first : t) - s.t_added;
  s.stats.generate_seconds = s.t_first > 0 ? t - s.t_first : 0;
  // The rows stay for a later prompt with the same beginning (not after a
  // failed forward pass, which may have left them half written).
  std::vector<int32_t>& held = slot_tokens_[static_cast<size_t>(s.slot)];
  const int64_t n_held = std::string(reason) == "error" ? 0 : kv_->length(s.slot);
  held = s.prompt;
  held.insert(held.end(), s.generated.begin(), s.generated.end());
  held.resize(static_cast<size_t>(std::min<int64_t>(n_held, static_cast<int64_t>(held.size()))));
  kv_->set_length(s.slot, static_cast<int64_t>(held.size()));
  slot_used_[static_cast<size_t>(s.slot)] = false;
  s.done = true;
  s.on_done(s.stats);
}

Status BatchGenerator::step() {
  for (auto& s : seqs_) {
    if (s->cancelled) finish(*s, "cancelled");
    else if (s->opt.n_predict == 0) finish(*s, "length");
  }
  std::erase_if(seqs_, [](const auto& s) { return s->done; });
  if (seqs_.empty()) return Status::Ok();

  // Decoding sequences first (one token each), then prompt chunks within the budget.
  std::vector<model::BatchToken> batch;
  std::vector<Sequence*> marked;  // the sequence of each row of logits, in batch order
  for (auto& s : seqs_) {
    if (!s->decoding()) continue;
    batch.push_back({s->next, s->pos, s->slot, true});
    marked.push_back(s.get());
  }
  int64_t budget = prefill_budget_;
  std::vector<std::pair<Sequence*, size_t>> fed;  // prompt tokens this step adds, per sequence
  for (auto& s : seqs_) {
    if (s->decoding() || budget == 0) continue;
    const size_t n = std::min<size_t>(s->prompt.size() - s->n_fed, static_cast<size_t>(budget));
    for (size_t i = s->n_fed; i < s->n_fed + n; ++i)
      batch.push_back({s->prompt[i], static_cast<int64_t>(i), s->slot, i + 1 == s->prompt.size()});
    if (s->n_fed + n == s->prompt.size()) marked.push_back(s.get());
    fed.emplace_back(s.get(), n);
    budget -= static_cast<int64_t>(n);
  }

  Status st = session_.model().forward(batch, *kv_, &logits_);
  if (!st.ok()) {
    for (auto& s : seqs_) finish(*s, "error");
    seqs_.clear();
    return st;
  }
  for (auto& [s, n] : fed) {
    s->n_fed += n;
    if (s->decoding()) s->pos = static_cast<int64_t>(s->prompt.size());
  }

  const int64_t n_vocab = session_.source().config().n_vocab;
  const tokenizer::Tokenizer* tok = session_.tokenizer();
  for (size_t row = 0; row < marked.size(); ++row) {
    Sequence& s = *marked[row];
    if (s.next >= 0) ++s.pos;  // the token fed this step is in the cache now
    const int32_t next = s.sampler.sample(logits_.data() + row * n_vocab, n_vocab);
    s.generated.push_back(next);
    if (s.t_first == 0) s.t_first = now();
    ++s.stats.n_generated;
    const bool eog = tok ? tok->is_end_of_generation(next) : next == session_.source().config().eos_id;
    if (eog && s.opt.stop_at_eog) {
      finish(s, "eog");
      continue;
    }
    const std::string text = s.dec ? s.dec->feed(next) : std::string();
    if (!s.on_token(next, text)) finish(s, "cancelled");
    else if (s.stats.n_generated >= s.opt.n_predict) finish(s, "length");
    else if (s.pos >= n_ctx()) finish(s, "context");
    else s.next = next;
  }
  std::erase_if(seqs_, [](const auto& s) { return s->done; });
  return Status::Ok();
}

}  // namespace slm::engine
