// KvCache: keys and values of past positions, for a range of layers and a
// number of sequence slots. Layout per layer: (n_seq, n_ctx, n_head_kv * head_dim)
// for K and for V, in F32 or F16 (half the memory, rounding to half precision).
// Each slot knows how many positions it holds; a forward pass may append to
// a slot or rewind it (overwrite from an earlier position), never leave a gap.
// Memory is zeroed lazily by the OS, so an unused context costs nothing.
// A sequence slot is owned by one caller at a time; distinct slots may be
// written from different threads.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "slm/core/dtype.h"
#include "slm/core/status.h"
#include "slm/model/config.h"

namespace slm::model {

class KvCache {
 public:
  // Caches layers [layer_begin, layer_end) for n_seq sequences of up to n_ctx positions.
  // Checks the sizes and that the memory fits this machine; names what to change.
  static Result<std::unique_ptr<KvCache>> create(const ModelConfig& c, int64_t layer_begin, int64_t layer_end,
                                                 int32_t n_seq, int64_t n_ctx, DType type = DType::kF32);
  // The same for sizes the caller has checked (tests, small fixed caches).
  KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx,
          DType type = DType::kF32);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t layer_begin() const { return layer_begin_; }
  int64_t layer_end() const { return layer_end_; }
  int32_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }
  DType type() const { return type_; }
  size_t row_bytes() const { return row_bytes_; }  // one position's K (or V)
  size_t head_bytes() const { return row_bytes_ / static_cast<size_t>(n_head_kv_); }  // one KV head of a row
  size_t bytes() const { return 2 * bytes_per_buffer_; }

  // Positions slot seq holds: [0, length).
  int64_t length(int32_t seq) const { return len_[static_cast<size_t>(seq)]; }
  void set_length(int32_t seq, int64_t n) { len_[static_cast<size_t>(seq)] = n; }

  const uint8_t* k(int64_t layer, int32_t seq, int64_t pos) const { return k_.get() + offset(layer, seq, pos); }
  const uint8_t* v(int64_t layer, int32_t seq, int64_t pos) const { return v_.get() + offset(layer, seq, pos); }
  // Stores one position's K and V (kv_dim floats each), converting to the cache type.
  void store(int64_t layer, int32_t seq, int64_t pos, const float* k, const float* v);

 private:
  size_t offset(int64_t layer, int32_t seq, int64_t pos) const {
    return ((static_cast<size_t>(layer - layer_begin_) * n_seq_ + seq) * n_ctx_ + pos) * row_bytes_;
  }
  int64_t layer_begin_, layer_end_;
  int32_t n_seq_;
  int64_t n_ctx_, kv_dim_, n_head_kv_;
  DType type_;
  size_t row_bytes_, bytes_per_buffer_;
  std::unique_ptr<uint8_t, decltype(&std::free)> k_{nullptr, &std::free}, v_{nullptr, &std::free};
  std::vector<int64_t> len_;
};

}  // namespace slm::model
