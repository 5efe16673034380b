// KvCache: keys and values of past positions, for a range of layers and a
// number of sequence slots. Layout per layer: (n_seq, n_head_kv, n_ctx, head_dim)
// for K and for V, in F32 or F16 (half the memory, rounding to half precision):
// a head's rows follow one another, so attention reads each head's keys and
// values as one run of memory (with all heads of a position in one row it
// read 128 bytes every 1.5 KiB: 1.9x slower from cache on the 110m shape).
// Each slot knows how many positions it holds; a forward pass may append to
// a slot or rewind it (overwrite from an earlier position), never leave a gap.
// Memory is zeroed lazily by the OS, so an unused context costs nothing.
// Sliding-window models (Mistral, Phi-3) with a context much longer than the
// window keep a ring instead: window + chunk - 1 rows per sequence, each
// written twice (at r and at r + ring rows) so that any window of positions
// is contiguous; the forward pass then feeds at most `ring_chunk()` tokens of
// a sequence at a time, so a batch never overwrites a row it still reads.
// A sequence slot is owned by one caller at a time; distinct slots may be
// written from different threads.
#pragma once

#include <algorithm>
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
  // ring_chunk: tokens per sequence per step when the cache is a ring.
  KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx,
          DType type = DType::kF32, int64_t ring_chunk = kRingChunk);
  static constexpr int64_t kRingChunk = 512;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t layer_begin() const { return layer_begin_; }
  int64_t layer_end() const { return layer_end_; }
  int32_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }
  DType type() const { return type_; }
  size_t head_bytes() const { return head_bytes_; }  // one KV head's K (or V) at one position
  size_t bytes() const { return 2 * bytes_per_buffer_; }
  bool is_ring() const { return ring_ > 0; }
  int64_t ring_chunk() const { return ring_chunk_; }
  // The earliest position a batch may restart slot seq at (0, or for a ring
  // one whose window the ring still holds).
  int64_t min_rewind(int32_t seq) const { return ring_ > 0 ? std::max<int64_t>(0, length(seq) - ring_chunk_) : 0; }

  // Positions slot seq holds: [0, length).
  int64_t length(int32_t seq) const { return len_[static_cast<size_t>(seq)]; }
  void set_length(int32_t seq, int64_t n) { len_[static_cast<size_t>(seq)] = n; }

  // KV head head's row at pos; its rows of the positions after it (up to a
  // window) follow, head_bytes() apart.
  const uint8_t* k(int64_t layer, int32_t seq, int64_t head, int64_t pos) const {
    return k_.get() + offset(layer, seq, head, pos);
  }
  const uint8_t* v(int64_t layer, int32_t seq, int64_t head, int64_t pos) const {
    return v_.get() + offset(layer, seq, head, pos);
  }
  // Stores one position's K and V (kv_dim floats each), converting to the cache type.
  void store(int64_t layer, int32_t seq, int64_t pos, const float* k, const float* v);

 private:
  size_t offset(int64_t layer, int32_t seq, int64_t head, int64_t pos) const {
    const int64_t row = ring_ > 0 ? pos % ring_ : pos;
    return (((static_cast<size_t>(layer - layer_begin_) * n_seq_ + seq) * n_head_kv_ + head) * rows_ + row) * head_bytes_;
  }
  void store_row(size_t offset, const float* k, const float* v);
  int64_t layer_begin_, layer_end_;
  int32_t n_seq_;
  int64_t n_ctx_, kv_dim_, n_head_kv_, head_dim_;
  int64_t ring_chunk_;
  int64_t ring_ = 0;  // rows of one copy of the ring (0: no ring)
  int64_t rows_;      // rows per sequence and layer: n_ctx, or 2 * ring_
  DType type_;
  size_t head_bytes_, bytes_per_buffer_;
  std::unique_ptr<uint8_t, decltype(&std::free)> k_{nullptr, &std::free}, v_{nullptr, &std::free};
  std::vector<int64_t> len_;
};

}  // namespace slm::model
