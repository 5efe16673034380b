// The Llama-family decoder, written once for inference (and, later, training):
// embedding, then per layer RMSNorm -> attention (rotary, grouped-query,
// optional qkv bias and sliding window) -> residual -> RMSNorm -> SwiGLU ->
// residual, then the final norm and the output projection.
//
// Every call takes a batch of tokens from one or more sequences (each token
// names its sequence slot and position), so a prompt, a decoding step and a
// batch of many users go through the same code. forward_layers runs any range
// of layers [begin, end), the unit distributed inference ships between machines.
//
// Thread safety: a Model is immutable after construction; concurrent calls
// must use distinct KV caches (or distinct sequence slots of one cache).
#pragma once

#include <cstdint>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/config.h"
#include "slm/model/kv_cache.h"
#include "slm/model/weights.h"

namespace slm::model {

struct BatchToken {
  int32_t token = 0;
  int64_t pos = 0;      // position in its sequence
  int32_t seq = 0;      // KV cache slot
  bool logits = false;  // return logits for this token
};

class Model {
 public:
  // cfg and w must outlive the model (they usually live in a ModelSource).
  Model(const ModelConfig& cfg, const Weights& w);

  const ModelConfig& config() const { return cfg_; }

  // Embeds the batch's tokens: hidden (n_tok, n_embd).
  Status embed(const std::vector<BatchToken>& batch, float* hidden) const;
  // Runs layers [begin, end) in place on hidden (n_tok, n_embd), writing K/V for each token.
  Status forward_layers(const std::vector<BatchToken>& batch, int64_t begin, int64_t end, float* hidden,
                        KvCache& kv) const;
  // Final norm and output projection of the rows whose token asked for logits:
  // logits (n_marked, n_vocab), in batch order.
  void output(const std::vector<BatchToken>& batch, const float* hidden, std::vector<float>* logits) const;
  // embed + all layers + output.
  Status forward(const std::vector<BatchToken>& batch, KvCache& kv, std::vector<float>* logits) const;

 private:
  Status check_batch(const std::vector<BatchToken>& batch, const KvCache* kv) const;
  void attention(const std::vector<BatchToken>& batch, int64_t layer, const float* q, KvCache& kv, float* out) const;

  const ModelConfig& cfg_;
  const Weights& w_;
  std::vector<float> freqs_;  // (n_rot / 2)
  // Norm weights as F32 (tiny; converted once): per layer attn, ffn; then output.
  std::vector<std::vector<float>> attn_norm_, ffn_norm_;
  std::vector<float> output_norm_;
};

}  // namespace slm::model
