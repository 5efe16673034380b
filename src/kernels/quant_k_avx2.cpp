// AVX2 k-quant dot products (compiled with -mavx2 -mfma -mf16c). Per block:
// u8 quants x s8 activations summed in pairs (maddubs, at most 63 * 127 * 2),
// then times the sub-block's scale and summed in pairs to int32 (madd); the
// mins (Q4_K/Q5_K) and Q6_K's -32 offset go through the activation's bsums.
// Layouts: include/slm/kernels/quant_k.h. Plain functions only (simd.h).
#include <immintrin.h>

#include <cstring>

#include "quant_k_simd.h"
#include "simd_common.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {

namespace {

// Q4_K/Q5_K: sum_s sc[s] * dot(q_s, a_s) for the 8 sub-blocks of 32, given the
// quants of sub-block pair k (2k, 2k + 1) by a callback.
template <class QuantsOf>
__m256i scaled_dots_k4(const uint8_t sc[8], const int8_t* aq, QuantsOf quants_of) {
  __m256i sumi = _mm256_setzero_si256();
  for (int k = 0; k < 4; ++k) {
    __m256i lo, hi;
    quants_of(k, &lo, &hi);
    __m256i p0 = _mm256_maddubs_epi16(lo, load256(aq + 64 * k));
    __m256i p1 = _mm256_maddubs_epi16(hi, load256(aq + 64 * k + 32));
    p0 = _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * k]));
    p1 = _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * k + 1]));
    sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
  }
  return sumi;
}

// 16 sub-blocks of 16 (Q2_K, Q3_K, Q6_K): sum_s sc[s] * dot(q_s, a_s) with
// sc 16 int8 (signed: scales_signed) and quants_of(h, j) the 32 unsigned
// quants of elements 128h + 32j .. + 31 (sub-blocks 8h + 2j, 8h + 2j + 1).
template <class QuantsOf>
__m256i scaled_dots_16(__m128i sc8, bool scales_signed, const int8_t* aq, QuantsOf quants_of) {
  __m256i sumi = _mm256_setzero_si256();
  for (int h = 0; h < 2; ++h) {
    for (int j = 0; j < 4; ++j) {
      const int pair = 4 * h + j;
      const __m128i idx = _mm_set_epi64x(0x0101010101010101LL * (2 * pair + 1), 0x0101010101010101LL * (2 * pair));
      const __m128i s8 = _mm_shuffle_epi8(sc8, idx);
      const __m256i s = scales_signed ? _mm256_cvtepi8_epi16(s8) : _mm256_cvtepu8_epi16(s8);
      const __m256i p = _mm256_maddubs_epi16(quants_of(h, j), load256(aq + 128 * h + 32 * j));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
    }
  }
  return sumi;
}

}  // namespace

float vec_dot_q2_K_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m256i m3 = _mm256_set1_epi8(3);
  const __m128i m4 = _mm_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m128i sm = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    const __m128i sc8 = _mm_and_si128(sm, m4), m8 = _mm_and_si128(_mm_srli_epi16(sm, 4), m4);
    const uint8_t* qs = x[b].qs;
    const __m256i sumi = scaled_dots_16(sc8, false, a[b].qs, [&](int h, int j) {
      return _mm256_and_si256(_mm256_srli_epi16(load256(qs + 32 * h), 2 * j), m3);
    });
    const __m256i summ = _mm256_madd_epi16(_mm256_cvtepu8_epi16(m8), load256(a[b].bsums));
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(dmin), accm);
  }
  return hsum256(_mm256_sub_ps(acc, accm));
}

float vec_dot_q3_K_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m256i m3 = _mm256_set1_epi8(3), bit2 = _mm256_set1_epi8(4);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m128i sc8 = unpack_q3_scales(x[b].scales);
    // q - 4 * !hbit = (q | hbit << 2) - 4: unsigned quants 0..7, the -4 through bsums.
    const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load256(a[b].bsums));
    const uint8_t* qs = x[b].qs;
    const __m256i hm = load256(x[b].hmask);
    const __m256i sumi = scaled_dots_16(sc8, true, a[b].qs, [&](int h, int j) {
      const int k = 4 * h + j;  // hmask bit of this group, moved to bit 2
      const __m256i hb = k >= 2 ? _mm256_srli_epi16(hm, k - 2) : _mm256_slli_epi16(hm, 2 - k);
      return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(load256(qs + 32 * h), 2 * j), m3),
                             _mm256_and_si256(hb, bit2));
    });
    const __m256i total = _mm256_sub_epi32(sumi, _mm256_slli_epi32(off, 2));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(_cvtsh_ss(x[b].d) * a[b].d), acc);
  }
  return hsum256(acc);
}

float vec_dot_q4_K_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_k4(x[b].scales, sc, m);
    const uint8_t* qs = x[b].qs;
    const __m256i sumi = scaled_dots_k4(sc, a[b].qs, [&](int k, __m256i* lo, __m256i* hi) {
      const __m256i q = load256(qs + 32 * k);
      *lo = _mm256_and_si256(q, m4);
      *hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    });
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_dot(m, a[b].bsums)), _mm256_set1_ps(dmin), accm);
  }
  return hsum256(_mm256_sub_ps(acc, accm));
}

float vec_dot_q5_K_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_k4(x[b].scales, sc, m);
    const uint8_t* qs = x[b].qs;
    // Bit s of qh[l] is the fifth bit of element l of sub-block s; shifting
    // qh right by 2 per pair brings bits 2k, 2k + 1 down to bits 0, 1.
    __m256i qh = load256(x[b].qh);
    const __m256i sumi = scaled_dots_k4(sc, a[b].qs, [&](int k, __m256i* lo, __m256i* hi) {
      const __m256i q = load256(qs + 32 * k);
      *lo = _mm256_or_si256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), bit4));
      *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                            _mm256_and_si256(_mm256_slli_epi16(qh, 3), bit4));
      qh = _mm256_srli_epi16(qh, 2);
    });
    const float d = _cvtsh_ss(x[b].d) * a[b].d, dmin = _cvtsh_ss(x[b].dmin) * a[b].d;
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_dot(m, a[b].bsums)), _mm256_set1_ps(dmin), accm);
  }
  return hsum256(_mm256_sub_ps(acc, accm));
}

float vec_dot_q6_K_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
  // Byte shuffles taking scales (2j, 2j + 1) to 8 copies each: the scales of
  // the two 16-element halves of one 32-element maddubs product.
  __m128i pair_idx[8];
  for (int j = 0; j < 8; ++j)
    pair_idx[j] = _mm_set_epi64x(0x0101010101010101LL * (2 * j + 1), 0x0101010101010101LL * (2 * j));
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m128i sc8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].scales));
    // -32 * sum_s sc[s] * bsums[s], from the offset of q - 32.
    const __m256i off = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc8), load256(a[b].bsums));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(off, 5));
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = load256(x[b].ql + 64 * h), ql1 = load256(x[b].ql + 64 * h + 32);
      const __m256i qh = load256(x[b].qh + 32 * h);
      // Quant c of element l: nibble of ql, top two bits from qh bits 2c..2c+1 (moved to bits 4..5).
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
      };
      const int8_t* aq = a[b].qs + 128 * h;
      for (int c = 0; c < 4; ++c) {
        const __m256i p = _mm256_maddubs_epi16(q[c], load256(aq + 32 * c));
        const __m256i s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pair_idx[4 * h + c]));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(_cvtsh_ss(x[b].d) * a[b].d), acc);
  }
  return hsum256(acc);
}

}  // namespace slm::kernels
