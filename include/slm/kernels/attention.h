// Attention of one query position for the query heads that share one KV head
// (grouped-query attention reads each K/V row once for the whole group).
//
// attention() is flash-style: it walks the positions in tiles, keeping a
// running maximum and sum per head (online softmax), so no score matrix over
// the whole context is ever formed. attention_ref() is its oracle: all scores,
// a softmax, then the weighted sum, in double precision.
// Thread-safe: pure functions of their arguments.
#pragma once

#include <cstdint>

#include "slm/core/dtype.h"

namespace slm::kernels {

struct AttentionArgs {
  const float* q = nullptr;     // (group, head_dim) query heads, rotary applied
  int group = 1;                // query heads sharing this KV head
  int64_t head_dim = 0;
  const void* k = nullptr;      // row p (head_dim values) at k + p * row_bytes
  const void* v = nullptr;      // same layout as k
  DType kv_type = DType::kF32;  // F32 or F16
  int64_t row_bytes = 0;
  int64_t n_pos = 0;            // positions to attend to (>= 1)
  float scale = 1.0f;           // usually 1 / sqrt(head_dim)
  float* out = nullptr;         // (group, head_dim)
};

void attention(const AttentionArgs& a);
void attention_ref(const AttentionArgs& a);

}  // namespace slm::kernels
