#include "slm/engine/embed.h"

#include <algorithm>
#include <cmath>

#include "slm/engine/session.h"

namespace slm::engine {

Result<std::unique_ptr<Embedder>> Embedder::open(const std::string& model_path, const std::string& tokenizer_path) {
  std::unique_ptr<Embedder> e(new Embedder());
  SLM_ASSIGN_OR_RETURN(e->src_, model::ModelSource::open(model_path));
  const model::ModelConfig& c = e->src_->config();
  if (!c.is_encoder())
    return Status::InvalidArgument(fmt::format("{}: '{}' is a decoder; embed runs encoders (bert, distilbert)",
                                               model_path, c.arch));
  const bool has_tok = !tokenizer_path.empty() || !e->src_->tokenizer_path().empty() ||
                       (e->src_->gguf() != nullptr && e->src_->gguf()->find("tokenizer.ggml.tokens") != nullptr);
  if (has_tok) {
    SLM_ASSIGN_OR_RETURN(e->tok_, open_tokenizer(tokenizer_path.empty() ? model_path : tokenizer_path));
    if (e->tok_->n_vocab() > c.n_vocab)
      return Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary is {}",
                                                 e->tok_->n_vocab(), c.n_vocab));
  }
  e->model_ = std::make_unique<model::Model>(c, e->src_->weights());
  return e;
}

Result<std::vector<float>> Embedder::encode(const std::vector<int32_t>& ids, const std::vector<int32_t>& types) const {
  const model::ModelConfig& c = src_->config();
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return Status::InvalidArgument("[embed] empty sequence");
  if (n > c.n_ctx_train)
    return Status::InvalidArgument(fmt::format("[embed] {} tokens, but the model has {} positions", n, c.n_ctx_train));
  if (!types.empty() && types.size() != ids.size())
    return Status::InvalidArgument(fmt::format("[embed] {} token types for {} tokens", types.size(), ids.size()));
  std::vector<model::BatchToken> batch;
  for (int64_t i = 0; i < n; ++i)
    batch.push_back({ids[static_cast<size_t>(i)], i, 0, false, types.empty() ? 0 : types[static_cast<size_t>(i)]});
  model::KvCache kv(c, 0, c.n_layer, 1, n);
  std::vector<float> hidden;
  SLM_RETURN_IF_ERROR(model_->encode(batch, kv, &hidden));
  return hidden;
}

Result<std::vector<int32_t>> Embedder::tokenize(std::string_view text) const {
  if (!tok_) return Status::InvalidArgument("[embed] the model has no tokenizer: give token ids (--ids)");
  return tok_->encode(text, /*add_special=*/true);
}

Result<std::vector<float>> Embedder::embed_ids(const std::vector<int32_t>& ids, const std::vector<int32_t>& types) const {
  SLM_ASSIGN_OR_RETURN(std::vector<float> hidden, encode(ids, types));
  return model_->pool(hidden.data(), static_cast<int64_t>(ids.size()));
}

Result<std::vector<float>> Embedder::embed(std::string_view text) const {
  SLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenize(text));
  return embed_ids(ids);
}

Result<std::vector<float>> Embedder::classify_ids(const std::vector<int32_t>& ids, const std::vector<int32_t>& types) const {
  if (src_->config().n_labels == 0)
    return Status::InvalidArgument(fmt::format("[classify] {} has no classification head (classifier.weight)", src_->path()));
  SLM_ASSIGN_OR_RETURN(std::vector<float> hidden, encode(ids, types));
  std::vector<float> p = model_->classify(hidden.data());  // the first token is CLS
  const float mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (float& e : p) sum += (e = std::exp(e - mx));
  for (float& e : p) e = static_cast<float>(e / sum);
  return p;
}

Result<std::vector<float>> Embedder::classify(std::string_view text) const {
  SLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, tokenize(text));
  return classify_ids(ids);
}

}  // namespace slm::engine
