// KvCache: keys and values of past positions, for a range of layers and a
// number of sequence slots. Layout per layer: (n_seq, n_ctx, n_head_kv * head_dim)
// for K and for V, float32. A sequence slot is owned by one caller at a time;
// distinct slots may be written from different threads.
#pragma once

#include <cstdint>
#include <vector>

#include "slm/model/config.h"

namespace slm::model {

class KvCache {
 public:
  // Caches layers [layer_begin, layer_end) for n_seq sequences of up to n_ctx positions.
  KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx);

  int64_t layer_begin() const { return layer_begin_; }
  int64_t layer_end() const { return layer_end_; }
  int32_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

  float* k(int64_t layer, int32_t seq, int64_t pos) { return &k_[offset(layer, seq, pos)]; }
  float* v(int64_t layer, int32_t seq, int64_t pos) { return &v_[offset(layer, seq, pos)]; }

 private:
  size_t offset(int64_t layer, int32_t seq, int64_t pos) const {
    return ((static_cast<size_t>(layer - layer_begin_) * n_seq_ + seq) * n_ctx_ + pos) * kv_dim_;
  }
  int64_t layer_begin_, layer_end_;
  int32_t n_seq_;
  int64_t n_ctx_, kv_dim_;
  std::vector<float> k_, v_;
};

}  // namespace slm::model
