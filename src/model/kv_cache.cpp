#include "slm/model/kv_cache.h"

#include <unistd.h>

#include <cstring>

#include "slm/core/assert.h"
#include "slm/kernels/ops.h"

namespace slm::model {

namespace {
// Rows of one copy of the ring for a context of n_ctx, or 0 where a ring does not pay.
int64_t ring_rows(const ModelConfig& c, int64_t n_ctx, int64_t chunk) {
  if (!c.causal || c.sliding_window <= 0 || chunk < 1) return 0;
  const int64_t ring = c.sliding_window + chunk - 1;
  return 2 * ring < n_ctx ? ring : 0;
}
}  // namespace

Result<std::unique_ptr<KvCache>> KvCache::create(const ModelConfig& c, int64_t layer_begin, int64_t layer_end,
                                                 int32_t n_seq, int64_t n_ctx, DType type) {
  if (type != DType::kF32 && type != DType::kF16)
    return Status::InvalidArgument(fmt::format("[kv cache] type {} (F32 or F16)", dtype_name(type)));
  if (layer_begin < 0 || layer_end > c.n_layer || layer_begin >= layer_end)
    return Status::InvalidArgument(fmt::format("[kv cache] layers [{}, {}) outside [0, {})", layer_begin, layer_end,
                                               c.n_layer));
  if (n_seq < 1 || n_seq > 4096) return Status::InvalidArgument(fmt::format("[kv cache] {} sequences, expected 1..4096", n_seq));
  if (n_ctx < 1 || n_ctx > (int64_t{1} << 24))
    return Status::InvalidArgument(fmt::format("[kv cache] context {}, expected 1..16M", n_ctx));
  const int64_t ring = ring_rows(c, n_ctx, kRingChunk);
  const double bytes = 2.0 * static_cast<double>(layer_end - layer_begin) * n_seq * static_cast<double>(ring > 0 ? 2 * ring : n_ctx) *
                       static_cast<double>(c.n_head_kv * c.head_dim) * (type == DType::kF16 ? 2 : 4);
  const double phys = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
  if (phys > 0 && bytes > phys)
    return Status::InvalidArgument(fmt::format("[kv cache] a context of {} positions needs {:.1f} GiB of KV cache, more "
                                               "than this machine's {:.1f} GiB: lower --ctx (or use --kv-type f16)",
                                               n_ctx, bytes / (1 << 30), phys / (1 << 30)));
  auto kv = std::make_unique<KvCache>(c, layer_begin, layer_end, n_seq, n_ctx, type);
  return kv;
}

KvCache::KvCache(const ModelConfig& c, int64_t layer_begin, int64_t layer_end, int32_t n_seq, int64_t n_ctx, DType type,
                 int64_t ring_chunk)
    : layer_begin_(layer_begin),
      layer_end_(layer_end),
      n_seq_(n_seq),
      n_ctx_(n_ctx),
      kv_dim_(c.n_head_kv * c.head_dim),
      n_head_kv_(c.n_head_kv),
      head_dim_(c.head_dim),
      ring_chunk_(ring_chunk),
      ring_(ring_rows(c, n_ctx, ring_chunk)),
      rows_(ring_ > 0 ? 2 * ring_ : n_ctx),
      type_(type),
      head_bytes_(static_cast<size_t>(c.head_dim) * (type == DType::kF16 ? 2 : 4)),
      len_(static_cast<size_t>(n_seq), 0) {
  SLM_ASSERT(type == DType::kF32 || type == DType::kF16);
  bytes_per_buffer_ = static_cast<size_t>(layer_end - layer_begin) * n_seq * n_head_kv_ * rows_ * head_bytes_;
  // calloc: large blocks come zeroed from the OS, page by page as they are touched.
  k_.reset(static_cast<uint8_t*>(std::calloc(bytes_per_buffer_, 1)));
  v_.reset(static_cast<uint8_t*>(std::calloc(bytes_per_buffer_, 1)));
  SLM_ASSERT(k_ != nullptr && v_ != nullptr);
}

void KvCache::store(int64_t layer, int32_t seq, int64_t pos, const float* k, const float* v) {
  for (int64_t h = 0; h < n_head_kv_; ++h) {
    const size_t o = offset(layer, seq, h, pos);
    store_row(o, k + h * head_dim_, v + h * head_dim_);
    if (ring_ > 0) store_row(o + static_cast<size_t>(ring_) * head_bytes_, k + h * head_dim_, v + h * head_dim_);  // the second copy
  }
}

// One head's K and V at one position.
void KvCache::store_row(size_t o, const float* k, const float* v) {
  if (type_ == DType::kF32) {
    std::memcpy(k_.get() + o, k, head_bytes_);
    std::memcpy(v_.get() + o, v, head_bytes_);
    return;
  }
  kernels::to_f16(k, reinterpret_cast<uint16_t*>(k_.get() + o), head_dim_);
  kernels::to_f16(v, reinterpret_cast<uint16_t*>(v_.get() + o), head_dim_);
}

}  // namespace slm::model
