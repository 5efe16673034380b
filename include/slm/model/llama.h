// The transformer, written once for inference (and, later, training), its
// variants chosen by ModelConfig flags. A Llama block: embedding, then per
// layer RMSNorm -> attention (rotary, grouped-query, optional qkv bias and
// sliding window) -> residual -> RMSNorm -> SwiGLU -> residual, then the
// final norm and the output projection. The same code runs Phi-3 (partial
// rotary, LongRoPE), Gemma ((1 + w) norms, GeGLU, scaled embeddings), GPT-2
// (learned positions, LayerNorm, GELU MLP, biases) and BERT-style encoders
// (token types, post-norm blocks, bidirectional attention, pooler).
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
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "slm/core/status.h"
#include "slm/kernels/ops.h"
#include "slm/model/config.h"
#include "slm/model/kv_cache.h"
#include "slm/model/weights.h"

namespace slm::model {

struct BatchToken {
  int32_t token = 0;
  int64_t pos = 0;      // position in its sequence
  int32_t seq = 0;      // KV cache slot
  bool logits = false;  // return logits for this token
  int32_t type = 0;     // token type (BERT's segment id); 0 for other models
};

// Sees the input of a layer's matrix products before they run (calibration
// for GPTQ, AWQ, Wanda, SparseGPT): x (n_tok, n). which names the weights that
// read it: "attn_in" (attn_q, attn_k, attn_v), "attn_output", "ffn_in"
// (ffn_gate, ffn_up) or "ffn_down"; and "output" (the output projection, in
// output(), with layer = n_layer).
using LinearObserver = std::function<void(int64_t layer, const char* which, const float* x, int64_t n_tok, int64_t n)>;

struct ModelOptions {
  // Copy the matrices whose type has stored row panels on this CPU
  // (kernels::repack: Q4_0, Q8_0, Q4_K on AVX-512 VNNI) into them once: batched decoding
  // and prompts go faster, at the price of that copy (time at load, memory
  // beside the mapped file). Off by default: loading copies nothing.
  bool repack = false;
};

class Model {
 public:
  // cfg, w and the storage w views must outlive the model (they usually live
  // in a ModelSource); forward reads w as it is at each call, unless repacked.
  Model(const ModelConfig& cfg, const Weights& w, const ModelOptions& opt = {});
  // Bytes of weights repacked (ModelOptions::repack); 0 without.
  int64_t repacked_bytes() const { return repacked_bytes_; }

  const ModelConfig& config() const { return cfg_; }
  // Set before forward calls, not during them (the model stays shareable
  // between threads only while no observer is set).
  void set_observer(LinearObserver obs) { observer_ = std::move(obs); }

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
  // embed + all layers, for encoders: the last hidden states (n_tok, n_embd)
  // (after the final norm where the model has one). An encoder's sequences
  // must each be whole in the batch: every token attends to all of its own.
  Status encode(const std::vector<BatchToken>& batch, KvCache& kv, std::vector<float>* hidden) const;
  // One vector (n_embd) for a sequence's hidden states (n_tok, n_embd): the
  // mean or the first (CLS) token, as config().pooling says (mean when unset).
  std::vector<float> pool(const float* hidden, int64_t n_tok) const;
  // BERT's pooler: tanh(dense(CLS hidden)) (DistilBERT's pre_classifier: relu),
  // (n_embd); the model must have one.
  std::vector<float> pooler(const float* cls_hidden) const;
  // A classification head's logits (n_labels) from the CLS hidden state,
  // through the pooler where there is one; the model must have a head.
  std::vector<float> classify(const float* cls_hidden) const;

 private:
  Status check_batch(const std::vector<BatchToken>& batch, const KvCache* kv) const;
  // Norm weights as F32 (tiny; converted once, Gemma's 1 + w applied); b empty for RMSNorm.
  struct Norm {
    std::vector<float> w, b;
  };
  Norm make_norm(const TensorView& w, const TensorView& b) const;
  // out (n_tok, n_embd) = norm of each row of x; out may alias x.
  void norm(const Norm& n, const float* x, float* out, int64_t n_tok) const;
  // y (n_tok, w.rows) = x @ w^T + b (b optional); prep makes x's rows (kernels::RowPrep).
  void linear(const TensorView& w, const TensorView& b, const float* x, int64_t n_tok, float* y,
              const kernels::RowPrep& prep = {}) const;
  // The same for weights of one input (q, k, v; gate, up): kernels::matmul_shared.
  void linear_shared(std::span<const TensorView* const> w, std::span<const TensorView* const> b, const float* x,
                     int64_t n_tok, std::span<float* const> y, const kernels::RowPrep& prep = {}) const;
  // Rotates q and kb by rope_cs (n_rot per token), stores kb and vb in the cache,
  // then attends: one parallel region, the tokens shared out for the first,
  // (token, KV head) for the second. seq_end: per token, the end of its
  // sequence's positions in this batch (encoders) or -1.
  void attention(const std::vector<BatchToken>& batch, int64_t layer, float* q, float* kb, const float* vb,
                 const std::vector<float>& rope_cs, const std::vector<int64_t>& seq_end, KvCache& kv, float* out) const;

  const ModelConfig& cfg_;
  // The caller's weights (read through, so a compressor's edits between
  // forward calls are seen), or with repack a copy of the views, the
  // repacked ones into repacked_.
  Weights own_;
  const Weights& w_;
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> repacked_;
  int64_t repacked_bytes_ = 0;
  // Rotary inverse frequencies (n_rot / 2) within and past the original
  // context (they differ only for LongRoPE), and what cos/sin are scaled by.
  std::vector<float> freqs_short_, freqs_long_;
  float rope_mscale_ = 1.0f;
  std::vector<Norm> attn_norm_, ffn_norm_;  // per layer
  Norm embd_norm_, output_norm_;
  LinearObserver observer_;
};

}  // namespace slm::model
