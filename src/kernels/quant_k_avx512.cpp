// AVX-512 (F, BW, VL, VNNI) k-quant dot products. As the AVX2 versions, with
// 64 quants per step: u8 x s8 pairs summed by maddubs, then the scale product
// and pair sum fused into the int32 accumulator by VNNI's dpwssd. Scales are
// spread over their sub-block's lanes by a word permute.
// Layouts: include/slm/kernels/quant_k.h. Plain functions only (simd.h).
#include <immintrin.h>

#include <cstring>

#include "quant_k_simd.h"
#include "simd_common.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {

namespace {

__m512i load512(const void* p) { return _mm512_loadu_si512(p); }

// Two 256-bit halves as one 512-bit vector (lo in lanes 0..31 bytes).
__m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }


// Word-permute indices: lane i takes element base + i / group.
__m512i spread_idx(int base, int group) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 32; ++i) idx[i] = static_cast<int16_t>(base + i / group);
  return _mm512_load_si512(idx);
}

float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// Q4_K/Q5_K: sum_s sc[s] * dot(q_s, a_s); quants_of(k) gives the 64 quants of
// sub-blocks 2k and 2k + 1 (elements 64k..64k+63, in order).
template <class QuantsOf>
__m512i scaled_dots_k4(const uint8_t sc[8], const int8_t* aq, const __m512i idx[4], QuantsOf quants_of) {
  const __m512i sc16 = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
  __m512i sumi = _mm512_setzero_si512();
  for (int k = 0; k < 4; ++k) {
    const __m512i p = _mm512_maddubs_epi16(quants_of(k), load512(aq + 64 * k));
    sumi = _mm512_dpwssd_epi32(sumi, p, _mm512_permutexvar_epi16(idx[k], sc16));
  }
  return sumi;
}


// 16 sub-blocks of 16 (Q2_K, Q3_K): sum_s sc[s] * dot(q_s, a_s), sc16 the 16
// scales as words; quants_of(t) the 64 unsigned quants of elements 64t..64t+63.
template <class QuantsOf>
__m512i scaled_dots_16(__m256i sc16, const int8_t* aq, const __m512i idx[4], QuantsOf quants_of) {
  const __m512i sc512 = _mm512_castsi256_si512(sc16);
  __m512i sumi = _mm512_setzero_si512();
  for (int t = 0; t < 4; ++t) {
    const __m512i p = _mm512_maddubs_epi16(quants_of(t), load512(aq + 64 * t));
    sumi = _mm512_dpwssd_epi32(sumi, p, _mm512_permutexvar_epi16(idx[t], sc512));
  }
  return sumi;
}

}  // namespace

float vec_dot_q2_K_avx512(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m512i m3 = _mm512_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0x0f);
  const __m512i idx[4] = {spread_idx(0, 8), spread_idx(4, 8), spread_idx(8, 8), spread_idx(12, 8)};
  __m512 acc = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, m4));
    const __m256i m16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), m4));
    const uint8_t* qs = x[b].qs;
    // Elements 64t..64t+63 (half h = t / 2): bit pairs 4(t % 2) and 4(t % 2) + 2 of qs[32h..32h+31].
    const __m512i sumi = scaled_dots_16(sc16, a[b].qs, idx, [&](int t) {
      const __m256i q = _mm256_srli_epi16(load256(qs + 32 * (t / 2)), 4 * (t % 2));
      return _mm512_and_si512(join(q, _mm256_srli_epi16(q, 2)), m3);
    });
    const __m256i summ = _mm256_madd_epi16(m16, load256(a[b].bsums));
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(dmin), accm);
  }
  return hsum(_mm512_sub_ps(acc, _mm512_zextps256_ps512(accm)));
}

float vec_dot_q3_K_avx512(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m512i m3 = _mm512_set1_epi8(3), bit2 = _mm512_set1_epi8(4);
  const __m512i idx[4] = {spread_idx(0, 8), spread_idx(4, 8), spread_idx(8, 8), spread_idx(12, 8)};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(unpack_q3_scales(x[b].scales));
    // q - 4 * !hbit = (q | hbit << 2) - 4: unsigned quants 0..7, the -4 through bsums.
    const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(a[b].bsums)), 2);
    const uint8_t* qs = x[b].qs;
    const __m256i hm = load256(x[b].hmask);
    const __m512i sumi = scaled_dots_16(sc16, a[b].qs, idx, [&](int t) {
      // Groups j = 2(t % 2), +1 of half h = t / 2; hmask bits 4h + j moved to bit 2.
      const int k = 4 * (t / 2) + 2 * (t % 2);
      const __m256i q = _mm256_srli_epi16(load256(qs + 32 * (t / 2)), 4 * (t % 2));
      const __m256i h0 = k >= 2 ? _mm256_srli_epi16(hm, k - 2) : _mm256_slli_epi16(hm, 2);
      const __m256i h1 = k + 1 >= 2 ? _mm256_srli_epi16(hm, k - 1) : _mm256_slli_epi16(hm, 1);
      return _mm512_or_si512(_mm512_and_si512(join(q, _mm256_srli_epi16(q, 2)), m3),
                             _mm512_and_si512(join(h0, h1), bit2));
    });
    const __m512i total = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(off));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_set1_ps(_cvtsh_ss(x[b].d) * a[b].d), acc);
  }
  return hsum(acc);
}

float vec_dot_q4_K_avx512(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const __m512i idx[4] = {spread_idx(0, 16), spread_idx(2, 16), spread_idx(4, 16), spread_idx(6, 16)};
  __m512 acc = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_k4(x[b].scales, sc, m);
    const uint8_t* qs = x[b].qs;
    const __m512i sumi = scaled_dots_k4(sc, a[b].qs, idx, [&](int k) {
      const __m256i q = load256(qs + 32 * k);
      return _mm512_and_si512(join(q, _mm256_srli_epi16(q, 4)), m4);
    });
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_dot(m, a[b].bsums)), _mm256_set1_ps(dmin), accm);
  }
  return hsum(_mm512_sub_ps(acc, _mm512_zextps256_ps512(accm)));
}

float vec_dot_q5_K_avx512(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m512i m4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
  const __m512i idx[4] = {spread_idx(0, 16), spread_idx(2, 16), spread_idx(4, 16), spread_idx(6, 16)};
  __m512 acc = _mm512_setzero_ps();
  __m256 accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_k4(x[b].scales, sc, m);
    const uint8_t* qs = x[b].qs;
    __m256i qh = load256(x[b].qh);  // bits 2k, 2k + 1 brought down to 0, 1 for pair k
    const __m512i sumi = scaled_dots_k4(sc, a[b].qs, idx, [&](int k) {
      const __m256i q = load256(qs + 32 * k);
      const __m512i nib = _mm512_and_si512(join(q, _mm256_srli_epi16(q, 4)), m4);
      const __m512i fifth = _mm512_and_si512(join(_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 3)), bit4);
      qh = _mm256_srli_epi16(qh, 2);
      return _mm512_or_si512(nib, fifth);
    });
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_dot(m, a[b].bsums)), _mm256_set1_ps(dmin), accm);
  }
  return hsum(_mm512_sub_ps(acc, _mm512_zextps256_ps512(accm)));
}

float vec_dot_q6_K_avx512(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
  // 64 quants = 4 sub-blocks of 16 = 8 words each after maddubs.
  const __m512i idx[4] = {spread_idx(0, 8), spread_idx(4, 8), spread_idx(8, 8), spread_idx(12, 8)};
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales)));
    const __m512i sc512 = _mm512_castsi256_si512(sc16);
    // -32 * sum_s sc[s] * bsums[s], from the offset of q - 32.
    const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, load256(a[b].bsums)), 5);
    __m512i sumi = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(off));
    for (int h = 0; h < 2; ++h) {
      // Elements 128h + 0..63: low nibbles of ql[64h..64h+63] with qh bits 0-1 (l < 32) or 2-3;
      // elements 128h + 64..127: high nibbles with qh bits 4-5 or 6-7. Top bits moved to 4..5.
      const __m512i ql = load512(x[b].ql + 64 * h);
      const __m256i qh = load256(x[b].qh + 32 * h);
      const __m512i lo = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                         _mm512_and_si512(join(_mm256_slli_epi16(qh, 4), _mm256_slli_epi16(qh, 2)), m30));
      const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                         _mm512_and_si512(join(qh, _mm256_srli_epi16(qh, 2)), m30));
      const int8_t* aq = a[b].qs + 128 * h;
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(lo, load512(aq)),
                                 _mm512_permutexvar_epi16(idx[2 * h], sc512));
      sumi = _mm512_dpwssd_epi32(sumi, _mm512_maddubs_epi16(hi, load512(aq + 64)),
                                 _mm512_permutexvar_epi16(idx[2 * h + 1], sc512));
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), _mm512_set1_ps(_cvtsh_ss(x[b].d) * a[b].d), acc);
  }
  return hsum(acc);
}

}  // namespace slm::kernels
