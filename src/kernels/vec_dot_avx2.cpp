// AVX2 + FMA + F16C dot products (compiled with -mavx2 -mfma -mf16c).
#include <immintrin.h>

#include <math.h>
#include <cstring>

#include "simd.h"
#include "simd_common.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {

// Sum of u8 x s8 products of 32 bytes as 8 int32 lanes.
__m256i dot_u8s8(__m256i u, __m256i s) {
  const __m256i p16 = _mm256_maddubs_epi16(u, s);
  return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

// The 32 bits of qh as 32 bytes of 0x10 or 0.
__m256i fifth_bits(const uint8_t* qh_bytes) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), shuf);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

}  // namespace

float vec_dot_f32_avx2(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(act);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float vec_dot_f16_avx2(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i))),
                         _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i + 8))),
                         _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8)
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i))),
                         _mm256_loadu_ps(b + i), s0);
  float s = hsum256(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += half_to_float(a[i]) * b[i];
  return s;
}

float vec_dot_bf16_avx2(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  __m256 s0 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    s0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(x, 16)), _mm256_loadu_ps(b + i), s0);
  }
  float s = hsum256(s0);
  for (; i < n; ++i) {
    uint32_t u = static_cast<uint32_t>(a[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += f * b[i];
  }
  return s;
}

float vec_dot_q8_0_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    // |x| * (y with x's sign): maddubs needs one unsigned operand.
    const __m256i d = dot_u8s8(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(x[b].d) * y[b].d), _mm256_cvtepi32_ps(d), acc);
  }
  return hsum256(acc);
}

float vec_dot_q4_0_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;  // the -8 offset, folded in through the activation sums
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i d = dot_u8s8(unpack_nibbles(x[b].qs), qy);
    const float s = half_to_float(x[b].d) * y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(d), acc);
    corr += s * static_cast<float>(8 * y[b].sum);
  }
  return hsum256(acc) - corr;
}

float vec_dot_q4_1_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i d = dot_u8s8(unpack_nibbles(x[b].qs), qy);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(x[b].d) * y[b].d), _mm256_cvtepi32_ps(d), acc);
    mins += half_to_float(x[b].m) * y[b].d * static_cast<float>(y[b].sum);
  }
  return hsum256(acc) + mins;
}

float vec_dot_q5_0_avx2(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  __m256 acc = _mm256_setzero_ps();
  float corr = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i q = _mm256_or_si256(unpack_nibbles(x[b].qs), fifth_bits(x[b].qh));
    const __m256i qy = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[b].qs));
    const __m256i d = dot_u8s8(q, qy);
    const float s = half_to_float(x[b].d) * y[b].d;
    acc = _mm256_fmadd_ps(_mm256_set1_ps(s), _mm256_cvtepi32_ps(d), acc);
    corr += s * static_cast<float>(16 * y[b].sum);
  }
  return hsum256(acc) - corr;
}

void axpy_f32_avx2(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const float*>(x);
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(v + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}

void axpy_f16_avx2(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const uint16_t*>(x);
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * half_to_float(v[i]);
}

void to_f16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = static_cast<uint16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

namespace {

// Tiles for prompt processing on AVX2 (16 registers): sub-tiles of at most
// 2 weight rows x 2 activation rows, each weight block unpacked once per
// sub-tile. Weights as unsigned bytes u and the per-lane offset k / 8 such
// that the signed dot is sum(u * a) - k * sum(a) (madd leaves 8 lanes per
// block); Q8_0 is signed, so it uses the sign trick instead (offset 0).
struct TileQ4_0 {
  using Block = BlockQ4_0;
  static constexpr int kOffset = 1;
  static __m256i u8(const Block& x) { return unpack_nibbles(x.qs); }
};
struct TileQ5_0 {
  using Block = BlockQ5_0;
  static constexpr int kOffset = 2;
  static __m256i u8(const Block& x) { return _mm256_or_si256(unpack_nibbles(x.qs), fifth_bits(x.qh)); }
};

template <typename L, int W, int A>
void tile_q(int64_t n, const uint8_t* w, int64_t w_stride, const uint8_t* act, int64_t act_stride, float* out,
            int out_stride) {
  __m256 acc[W][A];
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    __m256i u[W];
    float dx[W];
    for (int i = 0; i < W; ++i) {
      const auto& x = reinterpret_cast<const typename L::Block*>(w + i * w_stride)[b];
      u[i] = L::u8(x);
      dx[i] = half_to_float(x.d);
    }
    for (int j = 0; j < A; ++j) {
      const auto& y = reinterpret_cast<const ActQ8x32*>(act + j * act_stride)[b];
      const __m256i qa = load256(y.qs);
      const __m256i off = _mm256_set1_epi32(L::kOffset * y.sum);
      for (int i = 0; i < W; ++i) {
        const __m256i d = _mm256_sub_epi32(dot_u8s8(u[i], qa), off);
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(dx[i] * y.d), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) out[i * out_stride + j] = hsum256(acc[i][j]);
}

template <int W, int A>
void tile_q8_0(int64_t n, const uint8_t* w, int64_t w_stride, const uint8_t* act, int64_t act_stride, float* out,
               int out_stride) {
  __m256 acc[W][A];
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) acc[i][j] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    __m256i qx[W], ax[W];
    float dx[W];
    for (int i = 0; i < W; ++i) {
      const auto& x = reinterpret_cast<const BlockQ8_0*>(w + i * w_stride)[b];
      qx[i] = load256(x.qs);
      ax[i] = _mm256_sign_epi8(qx[i], qx[i]);
      dx[i] = half_to_float(x.d);
    }
    for (int j = 0; j < A; ++j) {
      const auto& y = reinterpret_cast<const ActQ8x32*>(act + j * act_stride)[b];
      const __m256i qa = load256(y.qs);
      for (int i = 0; i < W; ++i) {
        const __m256i d = dot_u8s8(ax[i], _mm256_sign_epi8(qa, qx[i]));
        acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(dx[i] * y.d), acc[i][j]);
      }
    }
  }
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) out[i * out_stride + j] = hsum256(acc[i][j]);
}

// Float weights: F32 as they are, F16 through F16C.
struct TileF32 {
  static __m256 load(const uint8_t* w, int64_t e) { return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + e); }
  static float at(const uint8_t* w, int64_t e) { return reinterpret_cast<const float*>(w)[e]; }
};
struct TileF16 {
  static __m256 load(const uint8_t* w, int64_t e) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(w) + e)));
  }
  static float at(const uint8_t* w, int64_t e) { return half_to_float(reinterpret_cast<const uint16_t*>(w)[e]); }
};

template <typename L, int W, int A>
void tile_f(int64_t n, const uint8_t* w, int64_t w_stride, const uint8_t* act, int64_t act_stride, float* out,
            int out_stride) {
  __m256 acc[W][A];
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    __m256 wv[W];
    for (int i = 0; i < W; ++i) wv[i] = L::load(w + i * w_stride, e);
    for (int j = 0; j < A; ++j) {
      const __m256 av = _mm256_loadu_ps(reinterpret_cast<const float*>(act + j * act_stride) + e);
      for (int i = 0; i < W; ++i) acc[i][j] = _mm256_fmadd_ps(wv[i], av, acc[i][j]);
    }
  }
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) {
      float s = hsum256(acc[i][j]);
      const float* ar = reinterpret_cast<const float*>(act + j * act_stride);
      for (int64_t t = e; t < n; ++t) s += L::at(w + i * w_stride, t) * ar[t];
      out[i * out_stride + j] = s;
    }
}

using SubTile = void (*)(int64_t, const uint8_t*, int64_t, const uint8_t*, int64_t, float*, int);

// Covers an n_w x n_act request with 2 x 2 sub-tiles (1-wide at the edges).
template <template <int, int> class K>
void tile_by_2x2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride, int n_act,
                 float* out) {
  static const SubTile kFns[2][2] = {{K<1, 1>::fn, K<1, 2>::fn}, {K<2, 1>::fn, K<2, 2>::fn}};
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(act);
  for (int i = 0; i < n_w; i += 2) {
    const int wi = n_w - i >= 2 ? 2 : 1;
    for (int j = 0; j < n_act; j += 2) {
      const int aj = n_act - j >= 2 ? 2 : 1;
      kFns[wi - 1][aj - 1](n, wb + i * w_stride, w_stride, ab + j * act_stride, act_stride, out + i * n_act + j, n_act);
    }
  }
}

template <typename L>
struct QK {
  template <int W, int A>
  struct K {
    static constexpr SubTile fn = tile_q<L, W, A>;
  };
};
template <int W, int A>
struct Q8K {
  static constexpr SubTile fn = tile_q8_0<W, A>;
};
template <typename L>
struct FK {
  template <int W, int A>
  struct K {
    static constexpr SubTile fn = tile_f<L, W, A>;
  };
};

}  // namespace

void dot_tile_f32_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                       int n_act, float* out) {
  tile_by_2x2<FK<TileF32>::K>(n, w, w_stride, n_w, act, act_stride, n_act, out);
}
void dot_tile_f16_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                       int n_act, float* out) {
  tile_by_2x2<FK<TileF16>::K>(n, w, w_stride, n_w, act, act_stride, n_act, out);
}
void dot_tile_q8_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out) {
  tile_by_2x2<Q8K>(n, w, w_stride, n_w, act, act_stride, n_act, out);
}
void dot_tile_q4_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out) {
  tile_by_2x2<QK<TileQ4_0>::K>(n, w, w_stride, n_w, act, act_stride, n_act, out);
}
void dot_tile_q5_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out) {
  tile_by_2x2<QK<TileQ5_0>::K>(n, w, w_stride, n_w, act, act_stride, n_act, out);
}

void quantize_act_q8x32_avx2(const float* x, void* act, int64_t n) {
  auto* y = static_cast<ActQ8x32*>(act);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* p = x + b * 32;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(p + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float d = _mm_cvtss_f32(m) / 127.0f;
    const __m256 id = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));  // round half to even
    const __m256i sum32 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum32), _mm256_extracti128_si256(sum32, 1));
    s = _mm_hadd_epi32(s, s);
    s = _mm_hadd_epi32(s, s);
    // Pack 32 int32 -> 32 int8 in order (packs interleave 128-bit lanes: fix with a permute).
    const __m256i p16a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i p16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), p8);
    y[b].d = d;
    y[b].sum = _mm_cvtsi128_si32(s);
  }
}

namespace {

// e^x as in the AVX-512 file: 2^k * 2^f, degree-6 polynomial for 2^f.
__m256 exp256(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
  const __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
  const __m256 k = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 f = _mm256_sub_ps(t, k);
  __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  // 2^k through the exponent bits (k is in [-126, 127] after the clamp).
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace

void rmsnorm_avx2(const float* x, const float* w, float eps, float* out, int64_t n) {
  __m256 ss = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    ss = _mm256_fmadd_ps(v, v, ss);
  }
  float s = hsum256(ss);
  for (int64_t j = i; j < n; ++j) s += x[j] * x[j];
  const float scale = 1.0f / sqrtf(s / static_cast<float>(n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

double exp_sum_avx2(const float* x, float shift, float* out, int64_t n) {
  const __m256 vs = _mm256_set1_ps(shift), lo = _mm256_set1_ps(-87.0f);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vs);
    const __m256 e = _mm256_and_ps(exp256(d), _mm256_cmp_ps(d, lo, _CMP_GE_OQ));
    _mm256_storeu_ps(out + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  double sum = hsum256(acc);
  for (; i < n; ++i) {
    const float d = x[i] - shift;
    sum += out[i] = !(d >= -87.0f) ? 0.0f : expf(d);  // NaN (-inf - -inf) too
  }
  return sum;
}

void swiglu_avx2(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

}  // namespace slm::kernels
