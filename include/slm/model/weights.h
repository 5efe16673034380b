// Weights of a transformer: typed views, usually into a mapped file. Names
// follow GGUF (token_embd.weight, blk.N.attn_q.weight, ...). Shapes are
// {out_features, in_features}. Views are absent (data == nullptr) when a
// config does not use them (biases, a tied output, learned positions). Fused
// projections (Phi-3's qkv and gate/up, GPT-2's c_attn) are split into
// views of row ranges at load, so the forward pass sees one layout.
#pragma once

#include <vector>

#include "slm/core/tensor.h"

namespace slm::model {

struct LayerWeights {
  // Pre-norm: applied before attention / the MLP. Post-norm (BERT): after
  // each residual add. b: the LayerNorm bias, absent for RMSNorm.
  TensorView attn_norm, attn_norm_b;  // (n_embd)
  TensorView wq, wk, wv, wo;          // (n_head*head_dim, n_embd), (n_head_kv*head_dim, n_embd) x2, (n_embd, n_head*head_dim)
  TensorView bq, bk, bv, bo;          // biases, optional
  TensorView ffn_norm, ffn_norm_b;    // (n_embd)
  TensorView ffn_gate, ffn_up;        // (n_ff, n_embd); no gate for a plain MLP
  TensorView ffn_down;                // (n_embd, n_ff)
  TensorView ffn_gate_b, ffn_up_b, ffn_down_b;  // optional
};

struct Weights {
  TensorView token_embd;           // (n_vocab, n_embd)
  TensorView position_embd;        // (n_ctx_train, n_embd), learned positions only
  TensorView token_types;          // (n_token_types, n_embd), BERT
  TensorView embd_norm, embd_norm_b;  // (n_embd), BERT
  std::vector<LayerWeights> layers;
  TensorView output_norm, output_norm_b;  // (n_embd), absent without a final norm
  TensorView output;               // (n_vocab, n_embd); = token_embd when tied; absent for encoders
  TensorView rope_freqs;           // optional per-pair frequency divisors (Llama 3 GGUF)
  TensorView pooler, pooler_b;     // (n_embd, n_embd), (n_embd): BERT's pooler, optional
  TensorView classifier, classifier_b;  // (n_labels, n_embd), (n_labels): a classification head, optional
};

}  // namespace slm::model
