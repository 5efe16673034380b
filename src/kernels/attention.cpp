#include "slm/kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "slm/core/assert.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {
constexpr int64_t kTile = 64;  // positions per tile
constexpr int kMaxGroup = 64;
}  // namespace

void attention(const AttentionArgs& a) {
  SLM_ASSERT(a.group >= 1 && a.n_pos >= 1);
  if (a.group > kMaxGroup) {  // very wide groups: in chunks that fit the per-head state
    for (int g0 = 0; g0 < a.group; g0 += kMaxGroup) {
      AttentionArgs c = a;
      c.group = std::min(kMaxGroup, a.group - g0);
      c.q = a.q + g0 * a.head_dim;
      c.out = a.out + g0 * a.head_dim;
      attention(c);
    }
    return;
  }
  SLM_ASSERT(a.kv_type == DType::kF32 || a.kv_type == DType::kF16);
  const KernelSet& ks = kernels();
  if (ks.attention != nullptr && ks.attention(a)) return;
  const VecDotFn dot = ks.of(a.kv_type).vec_dot;  // K row (F32/F16) . q (F32)
  const AxpyFn axpy = a.kv_type == DType::kF16 ? ks.axpy_f16 : ks.axpy_f32;
  const auto* k = static_cast<const uint8_t*>(a.k);
  const auto* v = static_cast<const uint8_t*>(a.v);
  const int64_t hd = a.head_dim;
  float m[kMaxGroup], l[kMaxGroup];
  float s[kMaxGroup][kTile];
  for (int g = 0; g < a.group; ++g) {
    m[g] = -std::numeric_limits<float>::infinity();
    l[g] = 0;
    for (int64_t d = 0; d < hd; ++d) a.out[g * hd + d] = 0;
  }
  for (int64_t p0 = 0; p0 < a.n_pos; p0 += kTile) {
    const int64_t n = std::min(kTile, a.n_pos - p0);
    for (int g = 0; g < a.group; ++g) {
      // Scores of the tile, then one rescale of what was summed so far.
      float tile_max = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < n; ++i) {
        s[g][i] = dot(hd, k + (p0 + i) * a.row_bytes, a.q + g * hd) * a.scale;
        tile_max = std::max(tile_max, s[g][i]);
      }
      const float m_new = std::max(m[g], tile_max);
      const float correction = std::exp(m[g] - m_new);  // 0 on the first tile
      if (correction != 1.0f) {
        l[g] *= correction;
        for (int64_t d = 0; d < hd; ++d) a.out[g * hd + d] *= correction;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float e = std::exp(s[g][i] - m_new);
        l[g] += e;
        axpy(hd, e, v + (p0 + i) * a.row_bytes, a.out + g * hd);
      }
      m[g] = m_new;
    }
  }
  for (int g = 0; g < a.group; ++g) {
    const float inv = 1.0f / l[g];
    for (int64_t d = 0; d < hd; ++d) a.out[g * hd + d] *= inv;
  }
}

void attention_ref(const AttentionArgs& a) {
  const int64_t hd = a.head_dim;
  std::vector<float> kr(static_cast<size_t>(hd)), vr(static_cast<size_t>(hd));
  std::vector<double> sc(static_cast<size_t>(a.n_pos));
  const auto* k = static_cast<const uint8_t*>(a.k);
  const auto* v = static_cast<const uint8_t*>(a.v);
  for (int g = 0; g < a.group; ++g) {
    double mx = -1e300;
    for (int64_t p = 0; p < a.n_pos; ++p) {
      dequantize_row_ref(a.kv_type, k + p * a.row_bytes, kr.data(), hd);
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(kr[i]) * a.q[g * hd + i];
      sc[p] = d * a.scale;
      mx = std::max(mx, sc[p]);
    }
    double sum = 0;
    for (auto& x : sc) sum += x = std::exp(x - mx);
    std::vector<double> o(static_cast<size_t>(hd), 0.0);
    for (int64_t p = 0; p < a.n_pos; ++p) {
      dequantize_row_ref(a.kv_type, v + p * a.row_bytes, vr.data(), hd);
      for (int64_t i = 0; i < hd; ++i) o[i] += sc[p] / sum * vr[i];
    }
    for (int64_t i = 0; i < hd; ++i) a.out[g * hd + i] = static_cast<float>(o[i]);
  }
}

}  // namespace slm::kernels
