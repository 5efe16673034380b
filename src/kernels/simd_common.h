// Internal: small helpers shared by the ISA files (*_avx2.cpp, *_avx512.cpp),
// which all compile with at least AVX2 + FMA + F16C. Everything here has
// internal linkage (anonymous namespace; inline only silences unused-function
// warnings), so each ISA file gets its own copy
// built with its own flags: no shared inline code for the linker to mix up.
// Include only from ISA files.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace slm::kernels {
namespace {

inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high in 16..31.
inline __m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0f);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

// The 12 scale bytes of Q4_K/Q5_K as 8 scales and 8 mins (unpack_scales_k4, by words).
inline void unpack_k4(const uint8_t* p, uint8_t sc[8], uint8_t m[8]) {
  uint32_t w[3];
  std::memcpy(w, p, 12);
  const uint32_t s_lo = w[0] & 0x3f3f3f3f, m_lo = w[1] & 0x3f3f3f3f;
  const uint32_t s_hi = (w[2] & 0x0f0f0f0f) | ((w[0] >> 2) & 0x30303030);
  const uint32_t m_hi = ((w[2] >> 4) & 0x0f0f0f0f) | ((w[1] >> 2) & 0x30303030);
  std::memcpy(sc, &s_lo, 4);
  std::memcpy(sc + 4, &s_hi, 4);
  std::memcpy(m, &m_lo, 4);
  std::memcpy(m + 4, &m_hi, 4);
}

// sum_s m[s] * (bsums[2s] + bsums[2s + 1]) as 8 int32 lanes.
inline __m256i mins_dot(const uint8_t m[8], const int16_t* bsums) {
  const __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(m)));
  const __m256i mdup = _mm256_set_m128i(_mm_unpackhi_epi16(m16, m16), _mm_unpacklo_epi16(m16, m16));
  return _mm256_madd_epi16(load256(bsums), mdup);
}

// Q3_K's 16 6-bit scales (unpack_scales_q3_K), minus 32: int8 -32..31.
inline __m128i unpack_q3_scales(const uint8_t* p) {
  // By words, in registers (bytes stored one by one and reloaded as a vector
  // would stall store forwarding): scale i = low nibble of byte i % 8 (i / 8
  // picks the nibble) | bits 2(i / 4)..+1 of byte 8 + i % 4, shifted to 4..5.
  uint32_t w[3];
  std::memcpy(w, p, 12);
  const uint32_t lo = 0x0f0f0f0f, hi = 0x03030303;
  const __m128i sc = _mm_set_epi32(static_cast<int>(((w[1] >> 4) & lo) | (((w[2] >> 6) & hi) << 4)),
                                   static_cast<int>(((w[0] >> 4) & lo) | (((w[2] >> 4) & hi) << 4)),
                                   static_cast<int>((w[1] & lo) | (((w[2] >> 2) & hi) << 4)),
                                   static_cast<int>((w[0] & lo) | ((w[2] & hi) << 4)));
  return _mm_sub_epi8(sc, _mm_set1_epi8(32));
}

}  // namespace
}  // namespace slm::kernels
