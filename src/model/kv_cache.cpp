#include "slm/model/kv_cache.h"

namespace slm::model {

KvCache::KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx)
    : layer_begin_(layer_begin), layer_end_(layer_end), n_seq_(n_seq), n_ctx_(n_ctx), kv_dim_(c.n_head_kv * c.head_dim) {
  const size_t n = static_cast<size_t>(layer_end - layer_begin) * n_seq * n_ctx * kv_dim_;
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
}

}  // namespace slm::model
