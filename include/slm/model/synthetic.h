// Synthetic models: a valid GGUF of any Llama shape and weight type with
// random weights, for benchmarks (speed does not depend on the values) and
// tests. Written atomically.
#pragma once

#include <cstdint>
#include <string>

#include "slm/core/dtype.h"
#include "slm/core/status.h"

namespace slm::model {

struct SyntheticSpec {
  int64_t n_embd = 288, n_layer = 6, n_head = 6, n_head_kv = 0, n_ff = 0, n_vocab = 32000, n_ctx = 2048;
  DType type = DType::kF32;  // matrices; norms stay F32
  uint64_t seed = 1;
};

// Named shapes: "15m", "110m", "tinyllama-1.1b". NotFound for other names.
Result<SyntheticSpec> synthetic_preset(const std::string& name);

// Fills in defaults (kv heads = heads, ffn as llama2.c sizes it) and checks the shape.
Status finish_spec(SyntheticSpec* s);

// Writes the model (no tokenizer inside; run it with --prompt-ids).
Status write_synthetic_gguf(const SyntheticSpec& spec, const std::string& path);

}  // namespace slm::model
