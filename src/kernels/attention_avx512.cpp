// AVX-512 attention of one query position (attention.h) for head sizes that
// are multiples of 16 up to 256: the query (times the scale) and the running
// output stay in registers for the whole pass over the KV rows; a tile's
// scores go through exp in 16 lanes at once. The generic attention() covers
// everything else.
#include <immintrin.h>

#include <math.h>

#include "simd.h"
#include "simd_avx512.h"
#include "slm/kernels/attention.h"

namespace slm::kernels {

namespace {

constexpr int64_t kTile = 64;  // positions per tile (a multiple of 16)

// K/V rows are asked for kAhead rows on (the KV cache keeps a head's rows
// together, but a run of them is too short for the hardware prefetchers to
// get going: 32 rows on read 200 positions from memory 1.2x faster than 8).
constexpr int64_t kAhead = 32;
template <bool kF16, int NV>
void prefetch_row(const uint8_t* row) {
  constexpr int kBytes = NV * 16 * (kF16 ? 2 : 4);
  for (int o = 0; o < kBytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(row + o), _MM_HINT_T0);
}

template <bool kF16>
__m512 load_row(const uint8_t* row, int c) {
  if constexpr (kF16)
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row) + c));
  else
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + 16 * c);
}

// One query head against n_pos KV rows; NV = head_dim / 16 vectors.
template <int NV, bool kF16>
void attend_head(const AttentionArgs& a, const float* q_in, float* out) {
  const auto* k = static_cast<const uint8_t*>(a.k);
  const auto* v = static_cast<const uint8_t*>(a.v);
  __m512 q[NV], o[NV];
  for (int c = 0; c < NV; ++c) {
    q[c] = _mm512_mul_ps(_mm512_loadu_ps(q_in + 16 * c), _mm512_set1_ps(a.scale));
    o[c] = _mm512_setzero_ps();
  }
  float m = -INFINITY, l = 0;
  alignas(64) float s[kTile];
  for (int64_t p0 = 0; p0 < a.n_pos; p0 += kTile) {
    const int64_t n = a.n_pos - p0 < kTile ? a.n_pos - p0 : kTile;
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* kr = k + (p0 + i) * a.row_bytes;
      if (p0 + i + kAhead < a.n_pos) prefetch_row<kF16, NV>(kr + kAhead * a.row_bytes);
      __m512 acc = _mm512_mul_ps(load_row<kF16>(kr, 0), q[0]);
      for (int c = 1; c < NV; ++c) acc = _mm512_fmadd_ps(load_row<kF16>(kr, c), q[c], acc);
      s[i] = _mm512_reduce_add_ps(acc);
    }
    // The tile's maximum, one rescale of what was summed so far, then its exponentials.
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 mk = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
      mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mk, s + i));
    }
    const float m_new = fmaxf(m, _mm512_reduce_max_ps(mx));
    const float corr = expf(m - m_new);  // 0 on the first tile
    l *= corr;
    for (int c = 0; c < NV; ++c) o[c] = _mm512_mul_ps(o[c], _mm512_set1_ps(corr));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 mk = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
      const __m512 e = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(_mm512_loadu_ps(s + i), _mm512_set1_ps(m_new))));
      _mm512_store_ps(s + i, e);
      sum = _mm512_add_ps(sum, e);
    }
    l += _mm512_reduce_add_ps(sum);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* vr = v + (p0 + i) * a.row_bytes;
      if (p0 + i + kAhead < a.n_pos) prefetch_row<kF16, NV>(vr + kAhead * a.row_bytes);
      const __m512 e = _mm512_set1_ps(s[i]);
      for (int c = 0; c < NV; ++c) o[c] = _mm512_fmadd_ps(e, load_row<kF16>(vr, c), o[c]);
    }
    m = m_new;
  }
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int c = 0; c < NV; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(o[c], inv));
}

template <int NV>
void attend(const AttentionArgs& a) {
  for (int g = 0; g < a.group; ++g) {
    if (a.kv_type == DType::kF16)
      attend_head<NV, true>(a, a.q + g * a.head_dim, a.out + g * a.head_dim);
    else
      attend_head<NV, false>(a, a.q + g * a.head_dim, a.out + g * a.head_dim);
  }
}

}  // namespace

bool attention_avx512(const AttentionArgs& a) {
  if (a.head_dim % 16 != 0 || a.head_dim > 256 || (a.kv_type != DType::kF32 && a.kv_type != DType::kF16)) return false;
  switch (a.head_dim / 16) {
#define SLM_ATTEND(nv) \
  case nv: attend<nv>(a); return true;
    SLM_ATTEND(1) SLM_ATTEND(2) SLM_ATTEND(3) SLM_ATTEND(4) SLM_ATTEND(5) SLM_ATTEND(6) SLM_ATTEND(7) SLM_ATTEND(8)
    SLM_ATTEND(9) SLM_ATTEND(10) SLM_ATTEND(11) SLM_ATTEND(12) SLM_ATTEND(13) SLM_ATTEND(14) SLM_ATTEND(15)
    SLM_ATTEND(16)
#undef SLM_ATTEND
  }
  return false;
}

}  // namespace slm::kernels
