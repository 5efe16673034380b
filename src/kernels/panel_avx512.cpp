// Row panels for AVX-512 VNNI (dispatch.h, PanelKernels): kPanelRows weight
// rows unpacked, a chunk of 32-column blocks at a time, so that one 512-bit
// vector holds four consecutive weights of each of the 16 rows (lane i = row
// i). A VNNI dot against four activation bytes broadcast to every lane then
// advances all 16 rows at once: the sums stay in their rows' lanes (no
// horizontal adds) and each block's 16 weight scales are one vector, so a
// block costs 8 dots and a few float ops per activation row.
// Weights are stored unsigned (VNNI multiplies unsigned by signed bytes): as
// GGUF stores them for Q4_0, Q5_0 (offsets 8, 16), Q4_K, Q5_K, Q6_K (offset
// 32), Q8_0 plus 128. The activations' sums take the offsets back out:
// ActQ8x64's block sums for Q4_0, Q5_0, Q8_0 (their lone dot products'
// format), ActQ8x256's 16-element sums for the k-quants, which also bring in
// the mins of Q4_K and Q5_K.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "simd.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {

namespace {

// Stored panels (the repack option) come in groups of blocks, 64-byte
// aligned: pairs for Q4_0 and Q8_0, a 256-column super-block for Q4_K.
// Q4_0 and Q8_0: two blocks' weights (kQs bytes each), then their 16 scales
// as fp16 each.
struct StoredQ4_0 {
  static constexpr int64_t kBlocks = 2, kQs = 256, kBytes = 2 * kQs + 2 * 32;
};
struct StoredQ8_0 {
  static constexpr int64_t kBlocks = 2, kQs = 512, kBytes = 2 * kQs + 2 * 32;
};
struct StoredQ4_K {  // 4 x 512 nibbles, d and dmin (2 x 32), scales and mins (2 x 128)
  static constexpr int64_t kBlocks = 8, kQs = 0, kD = 2048, kDmin = 2080, kScales = 2112, kMins = 2240, kBytes = 2368;
};

// Rows i and i + 4, i + 8, i + 12 of a block group: 16 bytes each at ptr[r] + off.
inline __attribute__((always_inline)) __m512i rows4(const uint8_t* const* ptr, int i, int64_t off) {
  auto ld = [&](int r) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(ptr[r] + off)); };
  const __m512i v = _mm512_castsi128_si512(ld(i));
  return _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(v, ld(i + 4), 1), ld(i + 8), 2), ld(i + 12), 3);
}

// 16 rows x 16 bytes at ptr[r] + off -> t[c], whose lane i holds bytes 4c..4c+3 of row i.
inline __attribute__((always_inline)) void transpose16x4(const uint8_t* const* ptr, int64_t off, __m512i t[4]) {
  const __m512i r0 = rows4(ptr, 0, off), r1 = rows4(ptr, 1, off), r2 = rows4(ptr, 2, off), r3 = rows4(ptr, 3, off);
  // Within each 128-bit lane L (rows 4L..4L+3): a 4x4 transpose of dwords.
  const __m512i t0 = _mm512_unpacklo_epi32(r0, r1), t1 = _mm512_unpackhi_epi32(r0, r1);
  const __m512i t2 = _mm512_unpacklo_epi32(r2, r3), t3 = _mm512_unpackhi_epi32(r2, r3);
  t[0] = _mm512_unpacklo_epi64(t0, t2);
  t[1] = _mm512_unpackhi_epi64(t0, t2);
  t[2] = _mm512_unpacklo_epi64(t1, t3);
  t[3] = _mm512_unpackhi_epi64(t1, t3);
}

// Row pointers (rows past n_w repeat row 0: they are read, but their scales are zero).
struct Rows {
  const uint8_t* ptr[kPanelRows];
  __mmask16 live;
  Rows(const void* w, int64_t w_stride, int n_w) : live(static_cast<__mmask16>((1u << n_w) - 1)) {
    for (int r = 0; r < kPanelRows; ++r) ptr[r] = static_cast<const uint8_t*>(w) + (r < n_w ? r * w_stride : 0);
  }
};

// A field of type T at byte off of blocks [b0, b0 + n) of the 16 rows, as
// out[b * 16 + r]: plain loads, row by row (a gather per block costs more).
template <typename T>
void row_fields(const Rows& rows, int64_t b0, int64_t n, int64_t block_bytes, int64_t off, T* out) {
  for (int r = 0; r < kPanelRows; ++r) {
    const uint8_t* p = rows.ptr[r] + b0 * block_bytes + off;
    for (int64_t b = 0; b < n; ++b) std::memcpy(out + b * kPanelRows + r, p + b * block_bytes, sizeof(T));
  }
}

// Q4_0, Q5_0, Q8_0: blocks [b0, b0 + nb), 16 at a time: the scales d of a
// group read into a table first, then each block's 8 weight vectors from
// Unpack (unsigned q + 2^shift), then its 16 scales as floats.
constexpr int64_t kGroup = 16;
template <typename Block, typename Unpack>
void pack_blocks(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel, Unpack unpack) {
  const Rows rows(w, w_stride, n_w);
  alignas(64) uint16_t d[kGroup * kPanelRows];
  for (int64_t g = 0; g < nb; g += kGroup) {
    const int64_t n = std::min(kGroup, nb - g);
    row_fields(rows, b0 + g, n, sizeof(Block), offsetof(Block, d), d);
    for (int64_t b = 0; b < n; ++b) {
      uint8_t* dst = panel + (g + b) * kPanelBlockBytes;
      __m512i v[8];
      unpack(rows, b0 + g, b, v);
      for (int k = 0; k < 8; ++k) _mm512_store_si512(dst + 64 * k, v[k]);
      const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPanelRows));
      _mm512_store_ps(dst + 512, _mm512_maskz_mov_ps(rows.live, _mm512_cvtph_ps(h)));
    }
  }
}

// Q4_0: nibbles as stored (q + 8). Byte j of a block holds element j (low nibble) and j + 16 (high nibble).
void pack_q4_0(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel) {
  pack_blocks<BlockQ4_0>(w, w_stride, n_w, b0, nb, panel, [](const Rows& rows, int64_t g0, int64_t b, __m512i v[8]) {
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512i t[4];
    transpose16x4(rows.ptr, (g0 + b) * static_cast<int64_t>(sizeof(BlockQ4_0)) + offsetof(BlockQ4_0, qs), t);
    for (int c = 0; c < 4; ++c) {
      v[c] = _mm512_and_si512(t[c], low);
      v[4 + c] = _mm512_and_si512(_mm512_srli_epi32(t[c], 4), low);
    }
  });
}

// Stored panels of Q4_0 or Q8_0 (Group), a pair of blocks at a time: each
// block's weights from Weights (rows, block, dst), then the rows' scales as
// fp16 (0 for rows past n_w). An odd last block pairs with zeros.
template <typename Block, typename Group, typename Weights>
void store_pairs(const void* w, int64_t w_stride, int n_w, int64_t nb, uint8_t* out, Weights weights) {
  const Rows rows(w, w_stride, n_w);
  alignas(64) uint16_t d[kGroup * kPanelRows];
  std::memset(out, 0, static_cast<size_t>((nb + 1) / 2 * Group::kBytes));
  for (int64_t g = 0; g < nb; g += kGroup) {
    const int64_t n = std::min(kGroup, nb - g);
    row_fields(rows, g, n, sizeof(Block), offsetof(Block, d), d);
    for (int64_t b = 0; b < n; ++b) {
      const int64_t i = g + b;
      uint8_t* pair = out + i / 2 * Group::kBytes;
      weights(rows, i, pair + Group::kQs * (i & 1));
      const __m256i h = _mm256_load_si256(reinterpret_cast<const __m256i*>(d + b * kPanelRows));
      _mm256_store_si256(reinterpret_cast<__m256i*>(pair + 2 * Group::kQs + 32 * (i & 1)),
                         _mm256_maskz_mov_epi16(rows.live, h));
    }
  }
}

// Q4_0's: a block's 16 x 16 bytes of nibbles transposed as pack_q4_0 does
// before it splits them (vector c holds elements 4c..4c+3 in its low nibbles
// and 16 + 4c.. in its high ones).
void store_q4_0(const void* w, int64_t w_stride, int n_w, int64_t nb, uint8_t* out) {
  store_pairs<BlockQ4_0, StoredQ4_0>(w, w_stride, n_w, nb, out, [](const Rows& rows, int64_t i, uint8_t* dst) {
    __m512i t[4];
    transpose16x4(rows.ptr, i * static_cast<int64_t>(sizeof(BlockQ4_0)) + offsetof(BlockQ4_0, qs), t);
    for (int c = 0; c < 4; ++c) _mm512_store_si512(dst + 64 * c, t[c]);
  });
}

// Q8_0: int8 + 128.
void pack_q8_0(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel) {
  pack_blocks<BlockQ8_0>(w, w_stride, n_w, b0, nb, panel, [](const Rows& rows, int64_t g0, int64_t b, __m512i v[8]) {
    const int64_t at = (g0 + b) * static_cast<int64_t>(sizeof(BlockQ8_0)) + offsetof(BlockQ8_0, qs);
    transpose16x4(rows.ptr, at, v);
    transpose16x4(rows.ptr, at + 16, v + 4);
    for (int k = 0; k < 8; ++k) v[k] = _mm512_xor_si512(v[k], _mm512_set1_epi8(static_cast<char>(0x80)));
  });
}

// Q8_0's: a block's 8 vectors as pack_q8_0 makes them.
void store_q8_0(const void* w, int64_t w_stride, int n_w, int64_t nb, uint8_t* out) {
  store_pairs<BlockQ8_0, StoredQ8_0>(w, w_stride, n_w, nb, out, [](const Rows& rows, int64_t i, uint8_t* dst) {
    const int64_t at = i * static_cast<int64_t>(sizeof(BlockQ8_0)) + offsetof(BlockQ8_0, qs);
    __m512i v[8];
    transpose16x4(rows.ptr, at, v);
    transpose16x4(rows.ptr, at + 16, v + 4);
    for (int k = 0; k < 8; ++k)
      _mm512_store_si512(dst + 64 * k, _mm512_xor_si512(v[k], _mm512_set1_epi8(static_cast<char>(0x80))));
  });
}

// Q5_0: nibble | fifth bit from qh (bit j for element j), as stored (q + 16).
void pack_q5_0(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel) {
  alignas(64) uint32_t qh[kGroup * kPanelRows];
  pack_blocks<BlockQ5_0>(w, w_stride, n_w, b0, nb, panel, [&](const Rows& rows, int64_t g0, int64_t b, __m512i v[8]) {
    if (b == 0) row_fields(rows, g0, std::min(kGroup, b0 + nb - g0), sizeof(BlockQ5_0), offsetof(BlockQ5_0, qh), qh);
    const __m512i low = _mm512_set1_epi8(0x0f);
    __m512i t[4];
    transpose16x4(rows.ptr, (g0 + b) * static_cast<int64_t>(sizeof(BlockQ5_0)) + offsetof(BlockQ5_0, qs), t);
    const __m512i h = _mm512_load_si512(qh + b * kPanelRows);
    for (int c = 0; c < 8; ++c) {
      // Bits 4c..4c+3 of qh to bit 4 of bytes 0..3: spread by a multiply, then mask.
      const __m512i bits = _mm512_and_si512(_mm512_srli_epi32(h, 4 * c), _mm512_set1_epi32(0xf));
      const __m512i spread = _mm512_and_si512(_mm512_mullo_epi32(bits, _mm512_set1_epi32(0x00204081)),
                                              _mm512_set1_epi32(0x01010101));
      const __m512i nib = c < 4 ? _mm512_and_si512(t[c], low) : _mm512_and_si512(_mm512_srli_epi32(t[c - 4], 4), low);
      v[c] = _mm512_or_si512(nib, _mm512_slli_epi32(spread, 4));
    }
  });
}

// The first 16 bytes of a Q4_K or Q5_K super-block of the 16 rows at byte at:
// d and dmin as floats (0 for rows past n_w), and the 6-bit scales and mins
// of its 8 sub-blocks: byte k of sc[0] (mn[0]) is row i's scale (min) of
// sub-block k, of sc[1] (mn[1]) of sub-block k + 4, in lane i.
struct K4Header {
  __m512 d, dmin;
  __m512i sc[2], mn[2];
  K4Header(const Rows& rows, int64_t at) {
    __m512i t[4];
    transpose16x4(rows.ptr, at, t);
    d = _mm512_maskz_mov_ps(rows.live, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(t[0])));
    dmin = _mm512_maskz_mov_ps(rows.live, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(t[0], 16))));
    const __m512i m63 = _mm512_set1_epi8(63), top2 = _mm512_set1_epi8(static_cast<char>(0xc0));
    const __m512i low = _mm512_set1_epi8(0x0f);
    sc[0] = _mm512_and_si512(t[1], m63);
    mn[0] = _mm512_and_si512(t[2], m63);
    sc[1] = _mm512_or_si512(_mm512_and_si512(t[3], low), _mm512_srli_epi16(_mm512_and_si512(t[1], top2), 2));
    mn[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(t[3], 4), low),
                            _mm512_srli_epi16(_mm512_and_si512(t[2], top2), 2));
  }
  // Sub-block j's (0..7) byte of every row, as int32 lanes.
  static __m512i byte(const __m512i v[2], int j) {
    return _mm512_and_si512(_mm512_srli_epi32(v[j / 4], 8 * (j % 4)), _mm512_set1_epi32(0xff));
  }
};

// Q4_K and Q5_K: each 32-element sub-block is a panel block, its quants
// unsigned (0..15, and Q5_K's fifth bit: against signed ActQ8x256
// activations, no offset), then the rows' d * scale and dmin * min of the
// sub-block as floats. Sub-blocks 2i and 2i + 1 are the low and high nibbles
// of the same 32 bytes of qs; Q5_K's bit j of qh[l] is element l of sub-block j.
template <typename Block, bool kFifthBit>
void pack_k4(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel) {
  const Rows rows(w, w_stride, n_w);
  const __m512i low = _mm512_set1_epi8(0x0f);
  int64_t super = -1, pair = -1;
  __m512 dsc[8], dmn[8];
  __m512i u[8], qh[8];
  for (int64_t i = 0; i < nb; ++i) {
    const int64_t sb = b0 + i, s = sb / 8;
    const int j = static_cast<int>(sb % 8);
    const int64_t at = s * static_cast<int64_t>(sizeof(Block));
    if (s != super) {
      const K4Header h(rows, at);
      for (int k = 0; k < 8; ++k) {
        dsc[k] = _mm512_mul_ps(h.d, _mm512_cvtepi32_ps(h.byte(h.sc, k)));
        dmn[k] = _mm512_mul_ps(h.dmin, _mm512_cvtepi32_ps(h.byte(h.mn, k)));
      }
      if constexpr (kFifthBit) {
        transpose16x4(rows.ptr, at + offsetof(Block, qh), qh);
        transpose16x4(rows.ptr, at + offsetof(Block, qh) + 16, qh + 4);
      }
      super = s;
      pair = -1;
    }
    if (j / 2 != pair) {
      pair = j / 2;
      transpose16x4(rows.ptr, at + offsetof(Block, qs) + 32 * pair, u);
      transpose16x4(rows.ptr, at + offsetof(Block, qs) + 32 * pair + 16, u + 4);
    }
    uint8_t* dst = panel + i * kPanelBlockBytes;
    for (int c = 0; c < 8; ++c) {
      __m512i q = _mm512_and_si512(j % 2 ? _mm512_srli_epi32(u[c], 4) : u[c], low);
      if constexpr (kFifthBit)
        q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh[c], j), _mm512_set1_epi8(1)), 4));
      _mm512_store_si512(dst + 64 * c, q);
    }
    _mm512_store_ps(dst + 512, dsc[j]);
    _mm512_store_ps(dst + 576, dmn[j]);
  }
}

// Q4_K's stored panels, a super-block (8 sub-blocks) of the 16 rows at a
// time (StoredQ4_K): the 4 runs of 32 bytes of nibbles transposed as pack_k4
// does (vector c: elements 4c..4c+3 of sub-block 2i in the low nibbles, of
// 2i + 1 in the high ones), d and dmin as fp16 (0 for rows past n_w), then
// the 6-bit scales and mins as bytes, 16 rows per sub-block.
void store_q4_K(const void* w, int64_t w_stride, int n_w, int64_t nb, uint8_t* out) {
  const Rows rows(w, w_stride, n_w);
  for (int64_t s = 0; s < nb / 8; ++s) {
    uint8_t* g = out + s * StoredQ4_K::kBytes;
    const int64_t at = s * static_cast<int64_t>(sizeof(BlockQ4_K));
    for (int pair = 0; pair < 4; ++pair) {
      __m512i u[8];
      transpose16x4(rows.ptr, at + offsetof(BlockQ4_K, qs) + 32 * pair, u);
      transpose16x4(rows.ptr, at + offsetof(BlockQ4_K, qs) + 32 * pair + 16, u + 4);
      for (int c = 0; c < 8; ++c) _mm512_store_si512(g + StoredQ4_K::kQs + 512 * pair + 64 * c, u[c]);
    }
    const K4Header h(rows, at);
    _mm256_store_si256(reinterpret_cast<__m256i*>(g + StoredQ4_K::kD), _mm512_cvtps_ph(h.d, _MM_FROUND_TO_NEAREST_INT));
    _mm256_store_si256(reinterpret_cast<__m256i*>(g + StoredQ4_K::kDmin), _mm512_cvtps_ph(h.dmin, _MM_FROUND_TO_NEAREST_INT));
    for (int j = 0; j < 8; ++j) {
      _mm_store_si128(reinterpret_cast<__m128i*>(g + StoredQ4_K::kScales + 16 * j), _mm512_cvtepi32_epi8(K4Header::byte(h.sc, j)));
      _mm_store_si128(reinterpret_cast<__m128i*>(g + StoredQ4_K::kMins + 16 * j), _mm512_cvtepi32_epi8(K4Header::byte(h.mn, j)));
    }
  }
}

// Q6_K: each 32-element sub-block is a panel block, its 6-bit quants as
// stored (0..63, unsigned; the -32 comes back through the activation sums),
// then d * scale of its two 16-element halves. Sub-block j = 4h + c takes the
// low (c < 2) or high nibbles of ql[64h + 32(c % 2) ...] and bits 2c, 2c + 1 of
// qh[32h ...]: per half h, the qh bytes are transposed once and each ql run
// once for its two sub-blocks.
void pack_q6_K(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel) {
  const Rows rows(w, w_stride, n_w);
  const __m512i low = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(3);
  for (int64_t s = b0 / 8; s * 8 < b0 + nb; ++s) {
    const int64_t at = s * static_cast<int64_t>(sizeof(BlockQ6_K));
    __m512i sc[4];  // byte k of sc[c] is the scale of 16-element group 4c + k
    transpose16x4(rows.ptr, at + offsetof(BlockQ6_K, scales), sc);
    alignas(32) uint16_t dh[kPanelRows];
    row_fields(rows, s, 1, sizeof(BlockQ6_K), offsetof(BlockQ6_K, d), dh);
    const __m512 d =
        _mm512_maskz_mov_ps(rows.live, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dh))));
    for (int h = 0; h < 2; ++h) {
      const int64_t j_lo = std::max<int64_t>(8 * s + 4 * h, b0), j_hi = std::min<int64_t>(8 * s + 4 * h + 4, b0 + nb);
      if (j_lo >= j_hi) continue;
      __m512i qh[8];
      transpose16x4(rows.ptr, at + offsetof(BlockQ6_K, qh) + 32 * h, qh);
      transpose16x4(rows.ptr, at + offsetof(BlockQ6_K, qh) + 32 * h + 16, qh + 4);
      for (int odd = 0; odd < 2; ++odd) {
        if (!(j_lo <= 8 * s + 4 * h + odd + 2 && 8 * s + 4 * h + odd < j_hi)) continue;  // neither c = odd nor odd + 2
        __m512i ql[8];
        transpose16x4(rows.ptr, at + 64 * h + 32 * odd, ql);
        transpose16x4(rows.ptr, at + 64 * h + 32 * odd + 16, ql + 4);
        for (int c = odd; c < 4; c += 2) {
          const int64_t sb = 8 * s + 4 * h + c;
          if (sb < j_lo || sb >= j_hi) continue;
          uint8_t* dst = panel + (sb - b0) * kPanelBlockBytes;
          for (int k = 0; k < 8; ++k) {
            const __m512i nib = _mm512_and_si512(c < 2 ? ql[k] : _mm512_srli_epi32(ql[k], 4), low);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(qh[k], 2 * c), two);
            _mm512_store_si512(dst + 64 * k, _mm512_or_si512(nib, _mm512_slli_epi32(hi, 4)));
          }
          // Scales 2j and 2j + 1 (j = 4h + c): bytes 2(j % 2) and 2(j % 2) + 1 of sc[j / 2], signed.
          const int j = 4 * h + c;
          auto scale = [&](int byte) {
            const __m512i v = _mm512_srai_epi32(_mm512_slli_epi32(sc[j / 2], 24 - 8 * byte), 24);
            return _mm512_mul_ps(d, _mm512_cvtepi32_ps(v));
          };
          _mm512_store_ps(dst + 512, scale(2 * (j % 2)));
          _mm512_store_ps(dst + 576, scale(2 * (j % 2) + 1));
        }
      }
    }
  }
}

// How a panel block b (weights v, per-row floats f[0] and f[1]) meets one
// activation row: acc + its contribution.
// Q4_0, Q5_0, Q8_0 (weights q + 2^kShift) against ActQ8x64: block b is half h
// of record b / 2, its elements 4k..4k+3 at byte 16h + 4k (k < 4) or
// 32 + 16h + 4(k - 4); dw * d_a * (v . a - 2^kShift * sum(a)).
template <int kShift>
struct RuleQ8x64 {
  static __m512 add(__m512 acc, const __m512i v[8], const __m512 f[2], const uint8_t* act, int64_t b) {
    const auto* y = reinterpret_cast<const ActQ8x64*>(act) + b / 2;
    const int h = static_cast<int>(b & 1);
    // Four activation bytes to every lane, straight from memory.
    auto bcast = [&](int k) {
      return _mm512_broadcastd_epi32(_mm_loadu_si32(y->qs + (k < 4 ? 16 * h + 4 * k : 32 + 16 * h + 4 * (k - 4))));
    };
    __m512i s0 = _mm512_set1_epi32(y->block_neg_sum[h] * (1 << kShift)), s1 = _mm512_setzero_si512();
    for (int k = 0; k < 8; k += 2) {  // two chains, so the dots need not wait on each other
      s0 = _mm512_dpbusd_epi32(s0, v[k], bcast(k));
      s1 = _mm512_dpbusd_epi32(s1, v[k + 1], bcast(k + 1));
    }
    const __m512 s = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
    return _mm512_fmadd_ps(s, _mm512_mul_ps(f[0], _mm512_set1_ps(y->d[4 * h])), acc);
  }
};

// The k-quants against ActQ8x256: sub-block j = b % 8 of record b / 8; the
// integer dots of its two 16-element halves, then the type's finish.
struct SubBlock {
  const ActQ8x256* y;
  int j;
  __m512i lo, hi;
  SubBlock(const __m512i v[8], const uint8_t* act, int64_t b)
      : y(reinterpret_cast<const ActQ8x256*>(act) + b / 8), j(static_cast<int>(b % 8)) {
    const int8_t* q = y->qs + 32 * j;
    auto bcast = [&](int k) { return _mm512_broadcastd_epi32(_mm_loadu_si32(q + 4 * k)); };
    lo = hi = _mm512_setzero_si512();
    for (int k = 0; k < 4; ++k) {
      lo = _mm512_dpbusd_epi32(lo, v[k], bcast(k));
      hi = _mm512_dpbusd_epi32(hi, v[k + 4], bcast(k + 4));
    }
  }
};
// Q4_K, Q5_K: d * scale times the dot minus dmin * min times the activations' sum.
struct RuleQ4_K {
  static __m512 add(__m512 acc, const __m512i v[8], const __m512 f[2], const uint8_t* act, int64_t b) {
    const SubBlock x(v, act, b);
    const __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(x.lo, x.hi)), _mm512_set1_ps(x.y->d));
    const float sum = x.y->d * static_cast<float>(x.y->bsums[2 * x.j] + x.y->bsums[2 * x.j + 1]);
    return _mm512_fnmadd_ps(f[1], _mm512_set1_ps(sum), _mm512_fmadd_ps(f[0], s, acc));
  }
};
// Q6_K: per half, d * scale times (the dot minus 32 times the activations' sum).
struct RuleQ6_K {
  static __m512 add(__m512 acc, const __m512i v[8], const __m512 f[2], const uint8_t* act, int64_t b) {
    const SubBlock x(v, act, b);
    const __m512 slo = _mm512_cvtepi32_ps(_mm512_sub_epi32(x.lo, _mm512_set1_epi32(32 * x.y->bsums[2 * x.j])));
    const __m512 shi = _mm512_cvtepi32_ps(_mm512_sub_epi32(x.hi, _mm512_set1_epi32(32 * x.y->bsums[2 * x.j + 1])));
    const __m512 t = _mm512_fmadd_ps(f[0], slo, _mm512_mul_ps(f[1], shi));
    return _mm512_fmadd_ps(t, _mm512_set1_ps(x.y->d), acc);
  }
};

// Where a block's 8 weight vectors and per-row floats come from: pack's
// scratch (kPanelBlockBytes per block), or a type's stored panels (store_*).
struct FromScratch {
  static void load(const uint8_t* panel, int64_t b, __m512i v[8], __m512 f[2]) {
    const uint8_t* p = panel + b * kPanelBlockBytes;
    for (int k = 0; k < 8; ++k) v[k] = _mm512_load_si512(p + 64 * k);
    f[0] = _mm512_load_ps(p + 512);
    f[1] = _mm512_load_ps(p + 576);
  }
};
// The stored panels are one stream through memory, but the hardware
// prefetchers stop at each 4 KiB page: each block asks for its share of its
// group's lines kStoredAhead bytes on, spread over the dots rather than in
// bursts that queue (2 KiB on was slower by a third, 8 KiB a little, 32 KiB
// no better). Non-temporal: the weights, read once a step, then leave L2 and
// L3 to what is read again, a batch's KV caches and activations (8 sequences
// at 2 threads +5%).
constexpr int64_t kStoredAhead = 16384;
template <typename Group>
inline void prefetch_share(const uint8_t* group, int64_t b) {
  constexpr int64_t kLines = Group::kBytes / 64;
  const int64_t j = b % Group::kBlocks;
  const uint8_t* p = group + kStoredAhead;
  for (int64_t l = kLines * j / Group::kBlocks; l < kLines * (j + 1) / Group::kBlocks; ++l)
    _mm_prefetch(reinterpret_cast<const char*>(p + 64 * l), _MM_HINT_NTA);
}
// The 16 fp16 at p as floats.
inline __m512 halves(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(p)));
}
struct FromStoredQ4_0 {
  static void load(const uint8_t* panel, int64_t b, __m512i v[8], __m512 f[2]) {
    const uint8_t* pair = panel + b / 2 * StoredQ4_0::kBytes;
    prefetch_share<StoredQ4_0>(pair, b);
    const uint8_t* qs = pair + StoredQ4_0::kQs * (b & 1);
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; ++c) {
      const __m512i t = _mm512_load_si512(qs + 64 * c);
      v[c] = _mm512_and_si512(t, low);
      v[4 + c] = _mm512_and_si512(_mm512_srli_epi16(t, 4), low);
    }
    f[0] = f[1] = halves(pair + 2 * StoredQ4_0::kQs + 32 * (b & 1));
  }
};
struct FromStoredQ8_0 {
  static void load(const uint8_t* panel, int64_t b, __m512i v[8], __m512 f[2]) {
    const uint8_t* pair = panel + b / 2 * StoredQ8_0::kBytes;
    prefetch_share<StoredQ8_0>(pair, b);
    for (int k = 0; k < 8; ++k) v[k] = _mm512_load_si512(pair + StoredQ8_0::kQs * (b & 1) + 64 * k);
    f[0] = f[1] = halves(pair + 2 * StoredQ8_0::kQs + 32 * (b & 1));
  }
};
struct FromStoredQ4_K {
  static void load(const uint8_t* panel, int64_t b, __m512i v[8], __m512 f[2]) {
    const uint8_t* g = panel + b / 8 * StoredQ4_K::kBytes;
    prefetch_share<StoredQ4_K>(g, b);
    const int j = static_cast<int>(b % 8);
    const uint8_t* qs = g + StoredQ4_K::kQs + 512 * (j / 2);
    const __m512i low = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 8; ++c) v[c] = _mm512_and_si512(_mm512_srli_epi16(_mm512_load_si512(qs + 64 * c), 4 * (j & 1)), low);
    auto bytes = [&](int64_t off) {
      return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(g + off + 16 * j))));
    };
    f[0] = _mm512_mul_ps(halves(g + StoredQ4_K::kD), bytes(StoredQ4_K::kScales));
    f[1] = _mm512_mul_ps(halves(g + StoredQ4_K::kDmin), bytes(StoredQ4_K::kMins));
  }
};

// A activation rows (act_stride bytes apart, from the record of the panel's
// first block) against a panel of nb blocks: out[j * out_stride + i]
// (+)= dot(row i, activation j) for i < n_w. Each block's vectors are loaded
// once for the A rows.
template <typename Rule, typename From, int A>
void dot_chunk(int64_t nb, const uint8_t* panel, int n_w, const uint8_t* act, int64_t act_stride, float* out,
               int64_t out_stride, bool accumulate) {
  __m512 acc[A];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i v[8];
    __m512 f[2];
    From::load(panel, b, v, f);
    // Unrolled, so the accumulators stay in registers.
#pragma GCC unroll 8
    for (int j = 0; j < A; ++j) acc[j] = Rule::add(acc[j], v, f, act + j * act_stride, b);
  }
  const __mmask16 m = static_cast<__mmask16>((1u << n_w) - 1);
  for (int j = 0; j < A; ++j) {
    float* o = out + j * out_stride;
    const __m512 r = accumulate ? _mm512_add_ps(acc[j], _mm512_maskz_loadu_ps(m, o)) : acc[j];
    _mm512_mask_storeu_ps(o, m, r);
  }
}

// The pair forms of the rules (dot_chunk_pairs): the pair record, its
// blocks, how many sums a block keeps per lane (Q6_K: one per 16-element
// half, vectors 0-3 and 4-7), which of the record's 4-byte lanes holds block
// b's weights' vector k, the block's starting sums, and the block's sums s0
// (s1) in lanes 2r + t into acc with the rows' floats f0, f1 spread to those
// lanes. Each does what its rule does, in the same order, so the results are
// the same bits.
inline __m512i both(const void* at) { return _mm512_broadcastq_epi64(_mm_loadu_si64(at)); }
template <int kShift>
struct PairQ8x64 {
  using Record = ActQ8x64Pair;
  static constexpr int64_t kBlocks = 2;
  static constexpr int kSums = 1;
  static int lane(int64_t b, int k) {  // RuleQ8x64's byte offset / 4
    const int h = static_cast<int>(b & 1);
    return k < 4 ? 4 * h + k : 8 + 4 * h + (k - 4);
  }
  static __m512i init(const Record* y, int64_t b, int) { return _mm512_slli_epi32(both(y->block_neg_sum[b & 1]), kShift); }
  static __m512 finish(__m512 acc, __m512i s, __m512i, __m512 f0, __m512, const Record* y, int64_t b) {
    const __m512 d = _mm512_castsi512_ps(both(y->d[b & 1]));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(f0, d), acc);
  }
};
struct PairQ4_K {
  using Record = ActQ8x256Pair;
  static constexpr int64_t kBlocks = 8;
  static constexpr int kSums = 1;
  static int lane(int64_t b, int k) { return static_cast<int>(8 * (b % 8) + k); }
  static __m512i init(const Record*, int64_t, int) { return _mm512_setzero_si512(); }
  static __m512 finish(__m512 acc, __m512i s, __m512i, __m512 f0, __m512 f1, const Record* y, int64_t b) {
    const __m512 sd = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_castsi512_ps(both(y->d)));
    return _mm512_fnmadd_ps(f1, _mm512_castsi512_ps(both(y->dsum[b % 8])), _mm512_fmadd_ps(f0, sd, acc));
  }
};
struct PairQ6_K {
  using Record = ActQ8x256Pair;
  static constexpr int64_t kBlocks = 8;
  static constexpr int kSums = 2;
  static int lane(int64_t b, int k) { return static_cast<int>(8 * (b % 8) + k); }
  static __m512i init(const Record* y, int64_t b, int half) { return both(y->neg32_sum16[2 * (b % 8) + half]); }
  static __m512 finish(__m512 acc, __m512i s0, __m512i s1, __m512 f0, __m512 f1, const Record* y, int64_t) {
    const __m512 t = _mm512_fmadd_ps(f0, _mm512_cvtepi32_ps(s0), _mm512_mul_ps(f1, _mm512_cvtepi32_ps(s1)));
    return _mm512_fmadd_ps(t, _mm512_castsi512_ps(both(y->d)), acc);
  }
};

// P pairs of tokens (Pair::Record rows, pair_stride apart) against a panel:
// lane 2r + t of accumulator [g][p] is row 8g + r with token 2p + t. Per
// weight vector two permutes spread rows 0-7 and 8-15 over lane pairs; per
// lane of the record one 64-bit broadcast gives both tokens' bytes.
template <typename Pair, typename From, int P>
void dot_chunk_pairs(int64_t nb, const uint8_t* panel, int n_w, const uint8_t* pairs, int64_t pair_stride, float* out,
                     int64_t out_stride, bool accumulate) {
  const __m512i spread0 = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  const __m512i spread1 = _mm512_add_epi32(spread0, _mm512_set1_epi32(8));
  __m512 acc[2][P];
  for (auto& g : acc)
    for (auto& a : g) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i v[8];
    __m512 f[2];
    From::load(panel, b, v, f);
    const typename Pair::Record* y[P];
    for (int p = 0; p < P; ++p)
      y[p] = reinterpret_cast<const typename Pair::Record*>(pairs + p * pair_stride) + b / Pair::kBlocks;
    __m512i s[Pair::kSums][2][P];
    for (int h = 0; h < Pair::kSums; ++h)
      for (int p = 0; p < P; ++p) s[h][0][p] = s[h][1][p] = Pair::init(y[p], b, h);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      const __m512i w0 = _mm512_permutexvar_epi32(spread0, v[k]), w1 = _mm512_permutexvar_epi32(spread1, v[k]);
      const int lane = Pair::lane(b, k), h = k * Pair::kSums / 8;
#pragma GCC unroll 4
      for (int p = 0; p < P; ++p) {
        const __m512i a = both(y[p]->qs + 8 * lane);
        s[h][0][p] = _mm512_dpbusd_epi32(s[h][0][p], w0, a);
        s[h][1][p] = _mm512_dpbusd_epi32(s[h][1][p], w1, a);
      }
    }
    const __m512 f00 = _mm512_permutexvar_ps(spread0, f[0]), f01 = _mm512_permutexvar_ps(spread1, f[0]);
    const __m512 f10 = _mm512_permutexvar_ps(spread0, f[1]), f11 = _mm512_permutexvar_ps(spread1, f[1]);
    constexpr int kLast = Pair::kSums - 1;
    for (int p = 0; p < P; ++p) {
      acc[0][p] = Pair::finish(acc[0][p], s[0][0][p], s[kLast][0][p], f00, f10, y[p], b);
      acc[1][p] = Pair::finish(acc[1][p], s[0][1][p], s[kLast][1][p], f01, f11, y[p], b);
    }
  }
  // Token t's 16 rows: the lanes of parity t of both row halves.
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __mmask16 m = static_cast<__mmask16>((1u << n_w) - 1);
  for (int p = 0; p < P; ++p)
    for (int t = 0; t < 2; ++t) {
      float* o = out + (2 * p + t) * out_stride;
      const __m512 r = _mm512_permutex2var_ps(acc[0][p], t ? odd : even, acc[1][p]);
      _mm512_mask_storeu_ps(o, m, accumulate ? _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, o)) : r);
    }
}

// Tokens paired where the rule has a pair form (and act.pairs is given).
template <typename Rule>
struct PairOf {
  using Type = void;
};
template <int kShift>
struct PairOf<RuleQ8x64<kShift>> {
  using Type = PairQ8x64<kShift>;
};
template <>
struct PairOf<RuleQ4_K> {
  using Type = PairQ4_K;
};
template <>
struct PairOf<RuleQ6_K> {
  using Type = PairQ6_K;
};
template <typename Pair, typename From>
void dot_pairs(int n_pairs, int64_t nb, const uint8_t* panel, int n_w, const uint8_t* pairs, int64_t pair_stride,
               float* out, int64_t out_stride, bool accumulate) {
  switch (n_pairs) {
#define SLM_PANEL_PAIRS(n) \
  case n: dot_chunk_pairs<Pair, From, n>(nb, panel, n_w, pairs, pair_stride, out, out_stride, accumulate); break;
    SLM_PANEL_PAIRS(1) SLM_PANEL_PAIRS(2) SLM_PANEL_PAIRS(3) SLM_PANEL_PAIRS(4)
#undef SLM_PANEL_PAIRS
  }
}

// All act.n activation rows: kPanelTokens at a time, in pairs where act has
// them, and the rest one dot_chunk of up to 7 rows.
template <typename Rule, typename From = FromScratch>
void dot_rows(int64_t nb, const uint8_t* panel, int n_w, const PanelActs& act, float* out, int64_t out_stride,
              bool accumulate) {
  const auto* a = static_cast<const uint8_t*>(act.rows);
  int64_t j = 0;
  using Pair = typename PairOf<Rule>::Type;
  if constexpr (!std::is_void_v<Pair>) {
    const auto* pairs = static_cast<const uint8_t*>(act.pairs);
    while (pairs != nullptr && act.n - j >= 2) {
      const int n_pairs = static_cast<int>(std::min<int64_t>(kPanelTokens, act.n - j) / 2);
      dot_pairs<Pair, From>(n_pairs, nb, panel, n_w, pairs + j / 2 * act.pair_stride, act.pair_stride,
                            out + j * out_stride, out_stride, accumulate);
      j += 2 * n_pairs;
    }
  }
  for (; j + kPanelTokens <= act.n; j += kPanelTokens)
    dot_chunk<Rule, From, kPanelTokens>(nb, panel, n_w, a + j * act.stride, act.stride, out + j * out_stride,
                                        out_stride, accumulate);
  const auto* aj = a + j * act.stride;
  float* oj = out + j * out_stride;
  switch (act.n - j) {
    case 0: break;
#define SLM_PANEL_TAIL(t) \
  case t: dot_chunk<Rule, From, t>(nb, panel, n_w, aj, act.stride, oj, out_stride, accumulate); break;
    SLM_PANEL_TAIL(1) SLM_PANEL_TAIL(2) SLM_PANEL_TAIL(3) SLM_PANEL_TAIL(4)
    SLM_PANEL_TAIL(5) SLM_PANEL_TAIL(6) SLM_PANEL_TAIL(7)
#undef SLM_PANEL_TAIL
  }
  static_assert(kPanelTokens == 8);
}

// 64 bytes of two rows as 128: each 4-byte lane of a, then the same of b.
inline void interleave_lanes(const int8_t* a, const int8_t* b, int8_t* out) {
  const __m512i x = _mm512_loadu_si512(a), y = _mm512_loadu_si512(b);
  const __m512i first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  _mm512_storeu_si512(out, _mm512_permutex2var_epi32(x, first, y));
  _mm512_storeu_si512(out + 64, _mm512_permutex2var_epi32(x, second, y));
}

// Two ActQ8x64 rows of n columns as ActQ8x64Pair records.
void pair_q8x64(const void* row0, const void* row1, int64_t n, void* out) {
  const auto* r0 = static_cast<const ActQ8x64*>(row0);
  const auto* r1 = static_cast<const ActQ8x64*>(row1);
  auto* o = static_cast<ActQ8x64Pair*>(out);
  for (int64_t i = 0; i < (n / 32 + 1) / 2; ++i) {
    interleave_lanes(r0[i].qs, r1[i].qs, o[i].qs);
    for (int h = 0; h < 2; ++h) {
      o[i].d[h][0] = r0[i].d[4 * h];
      o[i].d[h][1] = r1[i].d[4 * h];
      o[i].block_neg_sum[h][0] = r0[i].block_neg_sum[h];
      o[i].block_neg_sum[h][1] = r1[i].block_neg_sum[h];
    }
  }
}

// Two ActQ8x256 rows of n columns as ActQ8x256Pair records (RuleQ4_K's and RuleQ6_K's sums).
void pair_q8x256(const void* row0, const void* row1, int64_t n, void* out) {
  const ActQ8x256* r[2] = {static_cast<const ActQ8x256*>(row0), static_cast<const ActQ8x256*>(row1)};
  auto* o = static_cast<ActQ8x256Pair*>(out);
  for (int64_t i = 0; i < n / 256; ++i) {
    for (int q = 0; q < 4; ++q) interleave_lanes(r[0][i].qs + 64 * q, r[1][i].qs + 64 * q, o[i].qs + 128 * q);
    for (int t = 0; t < 2; ++t) {
      o[i].d[t] = r[t][i].d;
      for (int j = 0; j < 8; ++j)
        o[i].dsum[j][t] = r[t][i].d * static_cast<float>(r[t][i].bsums[2 * j] + r[t][i].bsums[2 * j + 1]);
      for (int j = 0; j < 16; ++j) o[i].neg32_sum16[j][t] = -32 * r[t][i].bsums[j];
    }
  }
}

}  // namespace

const PanelKernels kPanelQ4_0Avx512{pack_q4_0,          dot_rows<RuleQ8x64<3>>,
                                    store_q4_0,         dot_rows<RuleQ8x64<3>, FromStoredQ4_0>,
                                    StoredQ4_0::kBlocks, StoredQ4_0::kBytes,
                                    pair_q8x64};
const PanelKernels kPanelQ8_0Avx512{pack_q8_0,          dot_rows<RuleQ8x64<7>>,
                                    store_q8_0,         dot_rows<RuleQ8x64<7>, FromStoredQ8_0>,
                                    StoredQ8_0::kBlocks, StoredQ8_0::kBytes,
                                    pair_q8x64};
const PanelKernels kPanelQ5_0Avx512{pack_q5_0, dot_rows<RuleQ8x64<4>>, nullptr, nullptr, 0, 0, pair_q8x64};
const PanelKernels kPanelQ4_KAvx512{pack_k4<BlockQ4_K, false>, dot_rows<RuleQ4_K>,
                                    store_q4_K,         dot_rows<RuleQ4_K, FromStoredQ4_K>,
                                    StoredQ4_K::kBlocks, StoredQ4_K::kBytes,
                                    pair_q8x256};
const PanelKernels kPanelQ5_KAvx512{pack_k4<BlockQ5_K, true>, dot_rows<RuleQ4_K>, nullptr, nullptr, 0, 0, pair_q8x256};
const PanelKernels kPanelQ6_KAvx512{pack_q6_K, dot_rows<RuleQ6_K>, nullptr, nullptr, 0, 0, pair_q8x256};

}  // namespace slm::kernels
