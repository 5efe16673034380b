// Weights of a Llama-family decoder: typed views, usually into a mapped file.
// Names follow GGUF (token_embd.weight, blk.N.attn_q.weight, ...). Shapes are
// {out_features, in_features}. Views are absent (data == nullptr) when a
// config does not use them (biases, a tied output).
#pragma once

#include <vector>

#include "slm/core/tensor.h"

namespace slm::model {

struct LayerWeights {
  TensorView attn_norm;            // (n_embd)
  TensorView wq, wk, wv, wo;       // (n_head*head_dim, n_embd), (n_head_kv*head_dim, n_embd) x2, (n_embd, n_head*head_dim)
  TensorView bq, bk, bv;           // biases (Qwen2), optional
  TensorView ffn_norm;             // (n_embd)
  TensorView ffn_gate, ffn_up;     // (n_ff, n_embd)
  TensorView ffn_down;             // (n_embd, n_ff)
};

struct Weights {
  TensorView token_embd;           // (n_vocab, n_embd)
  std::vector<LayerWeights> layers;
  TensorView output_norm;          // (n_embd)
  TensorView output;               // (n_vocab, n_embd); = token_embd when tied
  TensorView rope_freqs;           // optional per-pair frequency divisors (Llama 3 GGUF)
};

}  // namespace slm::model
