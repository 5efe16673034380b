// AVX-512 (F, BW, VL, VNNI) dot products (compiled with the AVX-512 flags).
// Floats use 512-bit FMAs; int8 blocks use VNNI's u8 x s8 dot (vpdpbusd).
#include <immintrin.h>

#include <math.h>
#include <cstring>

#include "simd.h"
#include "simd_avx512.h"
#include "simd_common.h"
#include "slm/core/assert.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {

__m256i dot_u8s8(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

}  // namespace

float vec_dot_f32_avx512(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(act);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {  // masked tail
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float vec_dot_f16_avx512(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i))),
                         _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16))),
                         _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i))),
                         _mm512_loadu_ps(b + i), s0);
  float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  for (; i < n; ++i) s += half_to_float(a[i]) * b[i];
  return s;
}

float vec_dot_bf16_avx512(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i x0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    const __m512i x1 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i + 16)));
    s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(x0, 16)), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(x1, 16)), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512i x0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    s0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(x0, 16)), _mm512_loadu_ps(b + i), s0);
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  for (; i < n; ++i) {
    uint32_t u = static_cast<uint32_t>(a[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    s += f * b[i];
  }
  return s;
}

namespace {

// ActQ8x64 interleaves a pair of blocks by 16-byte lanes: [a0 0..15, a1 0..15,
// a0 16..31, a1 16..31], so Q4_0's nibbles need no shuffle. The loaders below
// give a pair of weight blocks in that order as unsigned bytes q + 2^kShift;
// the record's lane sums, shifted by kShift, take the offset back out.
__m512i lanes(const uint8_t* a0, const uint8_t* a1, const uint8_t* a2, const uint8_t* a3) {
  const __m256i lo = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a0))),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(a1)), 1);
  const __m256i hi = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a2))),
                                             _mm_loadu_si128(reinterpret_cast<const __m128i*>(a3)), 1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Two rows of 16 packed nibble bytes -> [lo0 lo1 hi0 hi1]: low nibbles are elements 0..15.
__m512i nibble_pair(const uint8_t* q0, const uint8_t* q1) {
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q0))),
                                            _mm_loadu_si128(reinterpret_cast<const __m128i*>(q1)), 1);
  const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
  return _mm512_and_si512(w, _mm512_set1_epi8(0x0f));
}

struct LoadQ8_0 {
  using Block = BlockQ8_0;
  static constexpr int kShift = 7;
  static __m512i u8_pair(const Block& x0, const Block& x1) {
    const auto* p0 = reinterpret_cast<const uint8_t*>(x0.qs);
    const auto* p1 = reinterpret_cast<const uint8_t*>(x1.qs);
    return _mm512_xor_si512(lanes(p0, p1, p0 + 16, p1 + 16), _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};
struct LoadQ4_0 {
  using Block = BlockQ4_0;
  static constexpr int kShift = 3;
  static __m512i u8_pair(const Block& x0, const Block& x1) { return nibble_pair(x0.qs, x1.qs); }
};
struct LoadQ5_0 {
  using Block = BlockQ5_0;
  static constexpr int kShift = 4;
  static __m512i u8_pair(const Block& x0, const Block& x1) {
    uint32_t h0, h1;
    std::memcpy(&h0, x0.qh, 4);
    std::memcpy(&h1, x1.qh, 4);
    const uint64_t m = (h0 & 0xffffull) | (uint64_t{h1 & 0xffffu} << 16) | (uint64_t{h0 >> 16} << 32) |
                       (uint64_t{h1 >> 16} << 48);
    return _mm512_or_si512(nibble_pair(x0.qs, x1.qs), _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10)));
  }
};
__m512 pair_scales(uint16_t h0, uint16_t h1) {
  // [d0 x4, d1 x4, d0 x4, d1 x4]: the lanes the interleaved blocks land in.
  const __m128 d = _mm_cvtph_ps(_mm_insert_epi16(_mm_cvtsi32_si128(h0), h1, 1));
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1),
                               _mm512_castps128_ps512(d));
}

// One weight row against one activation row (ActQ8x64), two blocks per
// 512-bit step, alternating between two accumulators so consecutive steps do
// not wait on each other. (Several tokens at once go through row panels,
// panel_avx512.cpp.)
template <typename L>
float dot_pairs(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const typename L::Block*>(w);
  const auto* y = static_cast<const ActQ8x64*>(act);
  const int64_t nb = n / 32;
  __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
  // An odd last block pairs with a zero block: its record's second half is
  // empty and a zero block's scale is 0.
  typename L::Block zero;
  std::memset(&zero, 0, sizeof zero);
  auto step = [&](int64_t b, bool last_odd, int k) __attribute__((always_inline)) {
    const auto& x1 = last_odd ? zero : x[b + 1];
    const ActQ8x64& r = y[b / 2];
    const __m512i neg_off = _mm512_slli_epi32(_mm512_loadu_si512(r.lane_neg_sum), L::kShift);
    const __m512i d = _mm512_dpbusd_epi32(neg_off, L::u8_pair(x[b], x1), _mm512_loadu_si512(r.qs));
    acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(pair_scales(x[b].d, x1.d), _mm512_loadu_ps(r.d)),
                             acc[k]);
  };
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    step(b, false, 0);
    step(b + 2, false, 1);
  }
  for (; b + 2 <= nb; b += 2) step(b, false, 0);
  if (b < nb) step(b, true, 0);
  return _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

// Instantiates the tile kernel for every shape up to kTileW x kTileA.
template <template <int, int> class K>
void dispatch_tile(int n_w, int n_act, typename K<1, 1>::Args args) {
  static_assert(kTileW == 4 && kTileA == 4);
#define SLM_TILE_CASE(w, a) \
  case (w - 1) * 4 + (a - 1): K<w, a>::run(args); return;
  switch ((n_w - 1) * 4 + (n_act - 1)) {
    SLM_TILE_CASE(1, 1) SLM_TILE_CASE(1, 2) SLM_TILE_CASE(1, 3) SLM_TILE_CASE(1, 4)
    SLM_TILE_CASE(2, 1) SLM_TILE_CASE(2, 2) SLM_TILE_CASE(2, 3) SLM_TILE_CASE(2, 4)
    SLM_TILE_CASE(3, 1) SLM_TILE_CASE(3, 2) SLM_TILE_CASE(3, 3) SLM_TILE_CASE(3, 4)
    SLM_TILE_CASE(4, 1) SLM_TILE_CASE(4, 2) SLM_TILE_CASE(4, 3) SLM_TILE_CASE(4, 4)
    default: SLM_ASSERT(false && "tile shape outside kTileW x kTileA");
  }
#undef SLM_TILE_CASE
}

struct TileArgs {
  int64_t n;
  const void* w;
  int64_t w_stride;
  const void* act;
  int64_t act_stride;
  float* out;
};

// The same for float activations against F32 / F16 weights (16 lanes per step).
struct LoadF32 {
  static __m512 load(const void* w, int64_t i) { return _mm512_loadu_ps(static_cast<const float*>(w) + i); }
  static float at(const void* w, int64_t i) { return static_cast<const float*>(w)[i]; }
};
struct LoadF16 {
  static __m512 load(const void* w, int64_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
  static float at(const void* w, int64_t i) { return half_to_float(static_cast<const uint16_t*>(w)[i]); }
};

template <typename L, int W, int A>
void dot_tile_f(int64_t n, const void* w, int64_t w_stride, const void* act, int64_t act_stride, float* out) {
  const auto* wbase = static_cast<const uint8_t*>(w);
  const auto* abase = static_cast<const uint8_t*>(act);
  __m512 acc[W][A];
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t e = 0;
  for (; e + 16 <= n; e += 16) {
    __m512 wv[W];
    for (int i = 0; i < W; ++i) wv[i] = L::load(wbase + i * w_stride, e);
    for (int j = 0; j < A; ++j) {
      const __m512 av = _mm512_loadu_ps(reinterpret_cast<const float*>(abase + j * act_stride) + e);
      for (int i = 0; i < W; ++i) acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
    }
  }
  for (int i = 0; i < W; ++i)
    for (int j = 0; j < A; ++j) {
      const float* a = reinterpret_cast<const float*>(abase + j * act_stride);
      float s = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t t = e; t < n; ++t) s += L::at(wbase + i * w_stride, t) * a[t];
      out[i * A + j] = s;
    }
}

template <typename L>
struct FTile {
  template <int W, int A>
  struct K {
    using Args = TileArgs;
    static void run(const TileArgs& t) { dot_tile_f<L, W, A>(t.n, t.w, t.w_stride, t.act, t.act_stride, t.out); }
  };
};

}  // namespace

#define SLM_DEFINE_TILE(name, family)                                                                    \
  void dot_tile_##name##_avx512(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act,     \
                                int64_t act_stride, int n_act, float* out) {                              \
    dispatch_tile<family::K>(n_w, n_act, TileArgs{n, w, w_stride, act, act_stride, out});                 \
  }
SLM_DEFINE_TILE(f32, FTile<LoadF32>)
SLM_DEFINE_TILE(f16, FTile<LoadF16>)
#undef SLM_DEFINE_TILE

float vec_dot_q8_0_avx512(int64_t n, const void* w, const void* act) {
  return dot_pairs<LoadQ8_0>(n, w, act);
}

float vec_dot_q4_0_avx512(int64_t n, const void* w, const void* act) {
  return dot_pairs<LoadQ4_0>(n, w, act);
}

float vec_dot_q4_1_avx512(int64_t n, const void* w, const void* act) {
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

float vec_dot_q5_0_avx512(int64_t n, const void* w, const void* act) {
  return dot_pairs<LoadQ5_0>(n, w, act);
}

void axpy_f32_avx512(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const float*>(x);
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(v + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * v[i];
}

void axpy_f16_avx512(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const uint16_t*>(x);
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 xv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)));
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, xv, _mm512_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] += a * half_to_float(v[i]);
}

void to_f16_avx512(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = static_cast<uint16_t>(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
}

void quantize_act_q8x64_avx512(const float* x, void* act, int64_t n) {
  auto* y = static_cast<ActQ8x64*>(act);
  const int64_t nb = n / 32;
  for (int64_t b = 0; b < nb; ++b) {
    ActQ8x64& r = y[b / 2];
    const int h = static_cast<int>(b & 1);
    const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));  // round half to even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    // Block h's 16-byte halves go to lanes h and h + 2 (see lanes() above).
    _mm_storeu_si128(reinterpret_cast<__m128i*>(r.qs + 16 * h), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(r.qs + 32 + 16 * h), _mm512_cvtsepi32_epi8(q1));
    _mm_storeu_ps(r.d + 4 * h, _mm_set1_ps(d));
    _mm_storeu_ps(r.d + 8 + 4 * h, _mm_set1_ps(d));
    r.block_neg_sum[h] = -_mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
  if (nb % 2) {  // pad the last record with an empty block (lanes 1 and 3): a = 0, d = 0
    ActQ8x64& r = y[nb / 2];
    for (int lane : {1, 3}) {
      std::memset(r.qs + 16 * lane, 0, 16);
      std::memset(r.d + 4 * lane, 0, 16);
    }
    r.block_neg_sum[1] = 0;
  }
  for (int64_t i = 0; i < (nb + 1) / 2; ++i) {  // each int32 lane's sum: ones (unsigned) . a (signed)
    const __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), _mm512_loadu_si512(y[i].qs));
    _mm512_storeu_si512(y[i].lane_neg_sum, _mm512_sub_epi32(_mm512_setzero_si512(), s));
  }
}

void quantize_act_q8x32_avx512(const float* x, void* act, int64_t n) {
  auto* y = static_cast<ActQ8x32*>(act);
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.0f;
    const __m512 id = _mm512_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, id));  // round half to even
    const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, id));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs), _mm512_cvtsepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + 16), _mm512_cvtsepi32_epi8(q1));
    y[b].d = d;
    y[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
  }
}

void rmsnorm_avx512(const float* x, const float* w, float eps, float* out, int64_t n) {
  __m512 ss = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    ss = _mm512_fmadd_ps(v, v, ss);
  }
  float s = _mm512_reduce_add_ps(ss);
  for (int64_t j = i; j < n; ++j) s += x[j] * x[j];
  const float scale = 1.0f / sqrtf(s / static_cast<float>(n) + eps);
  const __m512 vs = _mm512_set1_ps(scale);
  for (i = 0; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vs), _mm512_loadu_ps(w + i)));
  for (; i < n; ++i) out[i] = x[i] * scale * w[i];
}

double exp_sum_avx512(const float* x, float shift, float* out, int64_t n) {
  const __m512 vs = _mm512_set1_ps(shift), lo = _mm512_set1_ps(-87.0f);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vs);
    const __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(d, lo, _CMP_GE_OQ), exp512(d));
    _mm512_storeu_ps(out + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  double sum = _mm512_reduce_add_ps(acc);
  for (; i < n; ++i) {
    const float d = x[i] - shift;
    sum += out[i] = !(d >= -87.0f) ? 0.0f : expf(d);  // NaN (-inf - -inf) too
  }
  return sum;
}

void swiglu_avx512(const float* gate, const float* up, float* out, int64_t n) {
  int64_t i = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

}  // namespace slm::kernels
