// Embedder: sentence vectors from an encoder (BERT, DistilBERT; any model
// slm opens whose config is bidirectional), and class probabilities where
// the model has a sequence classification head. Text is tokenized with the
// model's special tokens ([CLS] ... [SEP]), run through all layers at once,
// and pooled as the model's metadata says (mean or CLS; see ModelConfig).
// Thread safety: immutable after open; embed() may be called from several
// threads (each call has its own KV cache).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::engine {

class Embedder {
 public:
  // tokenizer_path "" takes the model's own (GGUF vocab or the file beside it);
  // a model without one embeds token ids only.
  static Result<std::unique_ptr<Embedder>> open(const std::string& model_path, const std::string& tokenizer_path = "");
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;

  const model::ModelSource& source() const { return *src_; }
  const tokenizer::Tokenizer* tokenizer() const { return tok_.get(); }

  // The pooled vector (n_embd) of a sequence of ids; types: BERT's segment
  // ids (empty: all 0). Names a sequence that is empty or longer than the
  // model's positions.
  Result<std::vector<float>> embed_ids(const std::vector<int32_t>& ids, const std::vector<int32_t>& types = {}) const;
  // Tokenizes text with the special tokens, then embed_ids.
  Result<std::vector<float>> embed(std::string_view text) const;

  // The head's label probabilities (softmax of its logits, n_labels, in the
  // order of config().labels); names a model without a head.
  Result<std::vector<float>> classify_ids(const std::vector<int32_t>& ids, const std::vector<int32_t>& types = {}) const;
  Result<std::vector<float>> classify(std::string_view text) const;

 private:
  // The last hidden states (n_tok, n_embd) of one sequence, checked.
  Result<std::vector<float>> encode(const std::vector<int32_t>& ids, const std::vector<int32_t>& types) const;
  Result<std::vector<int32_t>> tokenize(std::string_view text) const;

  Embedder() = default;
  std::unique_ptr<model::ModelSource> src_;
  std::unique_ptr<model::Model> model_;
  std::unique_ptr<tokenizer::Tokenizer> tok_;
};

}  // namespace slm::engine
