#include "slm/model/kv_cache.h"

#include <cstring>

#include "slm/core/assert.h"
#include "slm/core/half.h"

namespace slm::model {

KvCache::KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx, DType type)
    : layer_begin_(layer_begin),
      layer_end_(layer_end),
      n_seq_(n_seq),
      n_ctx_(n_ctx),
      kv_dim_(c.n_head_kv * c.head_dim),
      type_(type),
      row_bytes_(static_cast<size_t>(kv_dim_) * (type == DType::kF16 ? 2 : 4)) {
  SLM_ASSERT(type == DType::kF32 || type == DType::kF16);
  const size_t n = static_cast<size_t>(layer_end - layer_begin) * n_seq * n_ctx * row_bytes_;
  k_.assign(n, 0);
  v_.assign(n, 0);
}

void KvCache::store(int64_t layer, int32_t seq, int64_t pos, const float* k, const float* v) {
  const size_t o = offset(layer, seq, pos);
  if (type_ == DType::kF32) {
    std::memcpy(&k_[o], k, row_bytes_);
    std::memcpy(&v_[o], v, row_bytes_);
    return;
  }
  auto* kd = reinterpret_cast<uint16_t*>(&k_[o]);
  auto* vd = reinterpret_cast<uint16_t*>(&v_[o]);
  for (int64_t i = 0; i < kv_dim_; ++i) {
    kd[i] = f32_to_f16(k[i]);
    vd[i] = f32_to_f16(v[i]);
  }
}

}  // namespace slm::model
