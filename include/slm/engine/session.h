// Session: a loaded model with its tokenizer, a KV cache and a sampler; the
// one object `slm run` (and later chat and serve) drives to generate text.
// Prompts go through the model as one batch; generation then feeds one token
// per step. Text is streamed as complete UTF-8 through a callback.
// Not thread-safe: one session per thread (share the ModelSource instead).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/kv_cache.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "slm/sample/sampler.h"
#include "slm/tokenizer/load.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::engine {

struct SessionOptions {
  std::string tokenizer_path;  // overrides the tokenizer found beside the model
  int64_t n_ctx = 0;           // 0: the model's training context, at most 4096
  int32_t n_threads = 0;       // 0: all cores
  DType kv_type = DType::kF32; // F32, or F16 for half the KV memory
  bool repack = false;         // model::ModelOptions::repack
};

struct GenerateOptions {
  int32_t n_predict = 256;     // tokens to generate at most
  bool stop_at_eog = true;     // stop at an end-of-generation token
  // BatchGenerator: start from the KV cache rows a slot still holds of an
  // earlier sequence's tokens where the prompt begins with them.
  bool reuse_prefix = true;
  sample::SamplerConfig sampler;
};

struct GenerateStats {
  int64_t n_prompt = 0, n_generated = 0;
  int64_t n_prompt_reused = 0;  // prompt tokens whose KV rows came from an earlier sequence
  double prompt_seconds = 0, generate_seconds = 0;
  std::string stop_reason;     // "length", "eog", "context", "cancelled"
};

// The tokenizer of a model path: a GGUF's own vocab (vocab-only files too), a
// tokenizer file named directly (tokenizer.json, tokenizer.model, encoder.json,
// *.tiktoken), or the tokenizer file beside a safetensors folder or llama2.c .bin.
Result<std::unique_ptr<tokenizer::Tokenizer>> open_tokenizer(const std::string& path);

class Session {
 public:
  static Result<std::unique_ptr<Session>> open(const std::string& model_path, const SessionOptions& opt);

  const model::ModelSource& source() const { return *src_; }
  const model::Model& model() const { return *model_; }
  // Null when the model has no tokenizer (then only token ids work).
  const tokenizer::Tokenizer* tokenizer() const { return tok_.get(); }
  int64_t n_ctx() const { return kv_->n_ctx(); }
  int32_t n_threads() const { return n_threads_; }  // 0: OpenMP's default
  DType kv_type() const { return kv_->type(); }

  Result<std::vector<int32_t>> tokenize(const std::string& text, bool add_bos) const;

  // Called with each generated token id and its text (complete UTF-8 only,
  // possibly empty); return false to stop.
  using TokenCallback = std::function<bool(int32_t id, const std::string& text)>;
  // Generates after prompt (at least one token) from a fresh context.
  Status generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt, const TokenCallback& on_token,
                  GenerateStats* stats);

 private:
  Session() = default;
  std::unique_ptr<model::ModelSource> src_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<model::KvCache> kv_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
  int32_t n_threads_ = 0;  // 0: OpenMP's default
};

}  // namespace slm::engine
