// ModelConfig: the hyperparameters of a decoder from the Llama family, read
// from GGUF metadata, a Hugging Face config.json or a llama2.c header. One
// config drives one model definition (model/llama.h); features a config names
// that slm does not implement yet are refused at load with a clear message.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/status.h"

namespace slm::model {

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct ModelConfig {
  std::string arch = "llama";  // llama, mistral, qwen2 (as named by the file)
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  int64_t n_ctx_train = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.0f;
  int64_t n_rot = 0;                 // dims rotated per head (= head_dim for Llama)
  bool rope_interleaved = true;      // GGUF/llama2.c pairs (2i, 2i+1); false: HF rotate_half
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_factor = 1.0f;
  float rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  int64_t rope_orig_ctx = 8192;
  int64_t sliding_window = 0;        // 0: attend to all earlier positions
  bool attn_qkv_bias = false;        // Qwen2
  bool tied_output = false;          // output = token embedding
  int32_t bos_id = -1, eos_id = -1;

  // Checks that the numbers are sane and consistent; names the bad key.
  Status validate() const;
  // Per-pair inverse frequencies (n_rot / 2) with the scaling applied.
  std::vector<float> rope_freqs() const;
  std::string describe() const;
};

}  // namespace slm::model
