#include "slm/engine/session.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace slm::engine {

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
constexpr int64_t kPromptChunk = 512;  // prompt tokens per forward pass

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// A tokenizer file named directly; a llama2.c .bin needs the vocabulary size.
Result<std::unique_ptr<tokenizer::Tokenizer>> load_tokenizer_path(const std::string& path, int32_t n_vocab) {
  auto t = tokenizer::load_tokenizer_file(path, n_vocab);
  if (!t.ok()) return t.status().with_context("tokenizer");
  return t;
}

// The model's own tokenizer, or null when it has none.
Result<std::unique_ptr<tokenizer::Tokenizer>> tokenizer_of(const model::ModelSource& src) {
  if (src.gguf() != nullptr) {
    if (src.gguf()->find("tokenizer.ggml.model") == nullptr) return std::unique_ptr<tokenizer::Tokenizer>();
    auto t = tokenizer::load_from_gguf(*src.gguf());
    if (!t.ok()) return t.status().with_context(fmt::format("{}: tokenizer", src.path()));
    return t;
  }
  if (src.tokenizer_path().empty()) return std::unique_ptr<tokenizer::Tokenizer>();
  return load_tokenizer_path(src.tokenizer_path(), static_cast<int32_t>(src.config().n_vocab));
}
}  // namespace

Result<std::unique_ptr<tokenizer::Tokenizer>> open_tokenizer(const std::string& path) {
  const std::string base = std::filesystem::path(path).filename().string();
  const bool is_tokenizer_file = ends_with(path, ".json") || ends_with(path, ".model") || ends_with(path, ".tiktoken") ||
                                 ends_with(path, ".bpe") || (ends_with(path, ".bin") && base.rfind("tok", 0) == 0);
  if (is_tokenizer_file) return tokenizer::load_tokenizer_file(path);
  if (model::is_gguf_file(path)) {  // a model or a vocab-only GGUF
    SLM_ASSIGN_OR_RETURN(auto g, io::GgufFile::open(path));
    auto t = tokenizer::load_from_gguf(*g);
    if (!t.ok()) return t.status().with_context(path);
    return t;
  }
  SLM_ASSIGN_OR_RETURN(auto src, model::ModelSource::open(path));
  SLM_ASSIGN_OR_RETURN(auto t, tokenizer_of(*src));
  if (!t) return Status::NotFound(fmt::format("{}: no tokenizer in or beside the model", path));
  return t;
}

Result<std::unique_ptr<Session>> Session::open(const std::string& model_path, const SessionOptions& opt) {
  if (opt.n_threads < 0) return Status::InvalidArgument(fmt::format("thread count is {}, expected >= 0", opt.n_threads));
  if (opt.n_ctx < 0) return Status::InvalidArgument(fmt::format("context size is {}, expected >= 0", opt.n_ctx));
  std::unique_ptr<Session> s(new Session());
  s->n_threads_ = opt.n_threads;
  SLM_ASSIGN_OR_RETURN(s->src_, model::ModelSource::open(model_path));
  const model::ModelConfig& c = s->src_->config();
  const int64_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx : std::min<int64_t>(c.n_ctx_train, 4096);
  s->model_ = std::make_unique<model::Model>(c, s->src_->weights(), model::ModelOptions{opt.repack});
  SLM_ASSIGN_OR_RETURN(s->kv_, model::KvCache::create(c, 0, c.n_layer, 1, n_ctx, opt.kv_type));

  if (!opt.tokenizer_path.empty()) {
    auto t = load_tokenizer_path(opt.tokenizer_path, static_cast<int32_t>(c.n_vocab));
    if (!t.ok()) return t.status();
    s->tok_ = std::move(t).value();
  } else {
    auto t = tokenizer_of(*s->src_);
    if (!t.ok()) return t.status();
    s->tok_ = std::move(t).value();
  }
  if (s->tok_ && s->tok_->n_vocab() > c.n_vocab)
    return Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary is {}",
                                               s->tok_->n_vocab(), c.n_vocab));
  return s;
}

Result<std::vector<int32_t>> Session::tokenize(const std::string& text, bool add_bos) const {
  if (!tok_) return Status::InvalidArgument("this model has no tokenizer: give the prompt as token ids (--prompt-ids) "
                                            "or name a tokenizer file (--tokenizer)");
  return tok_->encode(text, add_bos);
}

Status Session::generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt, const TokenCallback& on_token,
                         GenerateStats* stats) {
  SLM_RETURN_IF_ERROR(opt.sampler.validate());
  // OpenMP's thread count belongs to the calling thread: set it on whichever
  // thread generates (a server's workers are not the thread that opened us).
  if (n_threads_ > 0) omp_set_num_threads(n_threads_);
  if (prompt.empty()) return Status::InvalidArgument("[generate] empty prompt: give at least one token");
  if (opt.n_predict < 0) return Status::InvalidArgument(fmt::format("[generate] -n is {}, expected >= 0", opt.n_predict));
  const int64_t n_ctx = kv_->n_ctx();
  if (static_cast<int64_t>(prompt.size()) >= n_ctx)
    return Status::InvalidArgument(fmt::format("[generate] the prompt has {} tokens but the context holds {}: shorten "
                                               "it or raise --ctx", prompt.size(), n_ctx));
  const int64_t n_vocab = src_->config().n_vocab;
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= n_vocab)
      return Status::InvalidArgument(fmt::format("[generate] prompt token {} at index {} is outside the vocabulary [0, {})",
                                                 prompt[i], i, n_vocab));

  GenerateStats st;
  st.n_prompt = static_cast<int64_t>(prompt.size());
  sample::Sampler sampler(opt.sampler);
  for (int32_t t : prompt) sampler.accept(t);
  const int32_t bos = tok_ ? tok_->bos() : src_->config().bos_id;
  std::unique_ptr<tokenizer::StreamDecoder> dec;
  if (tok_) dec = std::make_unique<tokenizer::StreamDecoder>(*tok_, prompt.size() == 1 && prompt[0] == bos);

  std::vector<float> logits;
  double t0 = now();
  for (size_t begin = 0; begin < prompt.size(); begin += kPromptChunk) {
    const size_t end = std::min(prompt.size(), begin + kPromptChunk);
    std::vector<model::BatchToken> batch;
    for (size_t i = begin; i < end; ++i)
      batch.push_back({prompt[i], static_cast<int64_t>(i), 0, i + 1 == prompt.size()});
    SLM_RETURN_IF_ERROR(model_->forward(batch, *kv_, &logits));
  }
  st.prompt_seconds = now() - t0;

  t0 = now();
  int64_t pos = static_cast<int64_t>(prompt.size());
  st.stop_reason = "length";
  for (int32_t i = 0; i < opt.n_predict; ++i) {
    const int32_t next = sampler.sample(logits.data(), n_vocab);
    ++st.n_generated;
    const bool eog = tok_ ? tok_->is_end_of_generation(next) : next == src_->config().eos_id;
    if (eog && opt.stop_at_eog) {
      st.stop_reason = "eog";
      break;
    }
    std::string text = dec ? dec->feed(next) : std::string();
    if (!on_token(next, text)) {
      st.stop_reason = "cancelled";
      break;
    }
    if (i + 1 == opt.n_predict) break;
    if (pos >= n_ctx) {
      st.stop_reason = "context";
      break;
    }
    SLM_RETURN_IF_ERROR(model_->forward({{next, pos++, 0, true}}, *kv_, &logits));
  }
  if (dec) {
    std::string rest = dec->flush();
    if (!rest.empty()) on_token(-1, rest);
  }
  st.generate_seconds = now() - t0;
  if (stats) *stats = st;
  return Status::Ok();
}

}  // namespace slm::engine
