// ModelConfig: the hyperparameters of a transformer, read from GGUF metadata,
// a Hugging Face config.json or a llama2.c header. One config drives one model
// definition (model/llama.h): the Llama family (Llama, Mistral, Qwen2, Phi-3,
// Gemma), GPT-2 and BERT-style encoders differ only in the flags below.
// Features a config names that slm does not implement are refused at load
// with a clear message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/status.h"

namespace slm::model {

enum class RopeScaling { kNone, kLinear, kLlama3, kLongRope };
enum class NormType { kRms, kLayerNorm };         // LayerNorm: mean-centred, with a bias
enum class Activation { kSilu, kGeluTanh, kGelu };  // kGelu: the exact (erf) GELU
enum class Pooling { kNone, kMean, kCls };          // encoders: how `embed` pools a sequence

struct ModelConfig {
  std::string arch = "llama";  // llama, mistral, qwen2, phi3, gemma, gpt2, bert, distilbert (as named by the file)
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 2048;
  float norm_eps = 1e-5f;
  NormType norm = NormType::kRms;
  bool norm_plus_one = false;        // Gemma: norms scale by (1 + w)
  bool norm_plus_one_stored = false; // the file holds 1 + w already (GGUF, as llama.cpp converts Gemma)
  Activation act = Activation::kSilu;
  bool ffn_gated = true;             // act(gate) * up (SwiGLU, GeGLU); false: act(up) (GPT-2, BERT)
  float embd_scale = 1.0f;           // Gemma: sqrt(n_embd)
  bool learned_pos = false;          // position embedding table (GPT-2, BERT); then n_rot = 0
  int64_t n_token_types = 0;         // BERT token-type embeddings
  bool embd_norm = false;            // LayerNorm after the embeddings (BERT)
  bool post_norm = false;            // norm after each residual add (BERT) instead of before each block
  bool causal = true;                // false: every token sees its whole sequence (encoders)
  bool final_norm = true;            // a norm before the output (all decoders; not BERT)
  Pooling pooling = Pooling::kNone;
  bool has_pooler = false;           // BERT's tanh(dense(CLS)); DistilBERT's relu(pre_classifier(CLS))
  bool pooler_relu = false;          // the pooler's activation: relu (DistilBERT) instead of tanh
  int64_t n_labels = 0;              // a sequence classification head's outputs (0: none)
  std::vector<std::string> labels;   // their names (id2label), n_labels of them
  int64_t n_rot = 0;                 // dims rotated per head (= head_dim for Llama; fewer for Phi-3)
  float rope_theta = 10000.0f;
  bool rope_interleaved = true;      // GGUF/llama2.c pairs (2i, 2i+1); false: HF rotate_half
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_factor = 1.0f;
  float rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  int64_t rope_orig_ctx = 8192;
  std::vector<float> rope_short_factor, rope_long_factor;  // LongRoPE (n_rot / 2 each)
  int64_t sliding_window = 0;        // 0: attend to all earlier positions
  bool attn_qkv_bias = false;        // Qwen2, GPT-2, BERT
  bool attn_out_bias = false;        // GPT-2, BERT
  bool ffn_bias = false;             // GPT-2, BERT (Llama's mlp_bias)
  bool tied_output = false;          // output = token embedding
  int32_t bos_id = -1, eos_id = -1;

  bool is_encoder() const { return !causal; }
  // Checks that the numbers are sane and consistent; names the bad key.
  Status validate() const;
  // Per-pair inverse frequencies (n_rot / 2) with the scaling applied, for a
  // context of n_ctx positions (LongRoPE picks its long factors past the
  // original context, as llama.cpp does).
  std::vector<float> rope_freqs(int64_t n_ctx = 0) const;
  // What cos and sin are multiplied by (LongRoPE's attention factor; else 1).
  float rope_attn_factor() const;
  // The features this config uses, for `slm info` and docs: "rotary", "GQA", ...
  std::vector<std::string> features() const;
  std::string describe() const;
};

}  // namespace slm::model
