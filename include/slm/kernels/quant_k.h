// The k-quant block formats of GGUF (Q2_K..Q6_K, llama.cpp's ggml-common.h
// layouts) with their scalar dequantizers, the int8 activation format they
// dot with (ActQ8x256, dispatch.h) and scalar integer dot products.
//
// Every format packs a super-block of 256 elements in sub-blocks that carry
// small integer scales (and for Q2_K/Q4_K/Q5_K mins), themselves scaled by
// fp16 super-scales d (and dmin). Element order inside a block:
//   Q2_K: 16 sub-blocks of 16; x = d*(sc&15)*q - dmin*(sc>>4), q 2 bits.
//         Element 128h + 32j + l (h < 2, j < 4, l < 32) is bits 2j..2j+1 of
//         qs[32h + l]; its sub-block is (128h + 32j + l) / 16.
//   Q3_K: 16 sub-blocks of 16; x = d*(sc-32)*(q - 4*!hbit), q 2 bits packed
//         as in Q2_K; hbit is bit 4h + j of hmask[l]; sc 6 bits from scales[12]
//         (low 4: scales[i % 8] nibble i / 8; high 2: scales[8 + i % 4] bits 2(i/4)).
//   Q4_K: 8 sub-blocks of 32; x = d*sc*q - dmin*m, q 4 bits: sub-block 2k is
//         the low nibbles of qs[32k..32k+31], 2k+1 the high nibbles; sc and m
//         6 bits each, packed in scales[12] (see unpack_scales_k4).
//   Q5_K: as Q4_K plus a fifth bit: bit s of qh[l] for element l of sub-block s.
//   Q6_K: 16 sub-blocks of 16; x = d*sc*(q - 32), sc int8, q 6 bits: for half
//         h, element 128h + 32c + l (c < 4, l < 32) takes the low (c < 2) or
//         high (c >= 2) nibble of ql[64h + 32(c % 2) + l] and bits 2c..2c+1 of
//         qh[32h + l] as its top two bits.
// Thread-safe: pure functions.
#pragma once

#include <cstdint>

#include "slm/kernels/dispatch.h"

namespace slm::kernels {

constexpr int kQK = 256;  // elements per k-quant super-block

struct BlockQ2_K {
  uint8_t scales[16];  // low nibble: scale, high nibble: min, per 16-element sub-block
  uint8_t qs[64];
  uint16_t d, dmin;    // fp16
};
struct BlockQ3_K {
  uint8_t hmask[32];   // the third bit of each quant
  uint8_t qs[64];      // low two bits
  uint8_t scales[12];  // 16 6-bit scales, offset by 32
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // 8 6-bit scales and 8 6-bit mins
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];  // low four bits
  uint8_t qh[64];   // high two bits
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Q4_K/Q5_K: the 8 scales and 8 mins (each 0..63) packed in 12 bytes.
// Sub-blocks 0..3 use the low 6 bits of bytes 0..3 (scales) and 4..7 (mins);
// 4..7 use the nibbles of bytes 8..11 with their top two bits from the
// otherwise unused top bits of bytes 0..3 / 4..7.
void unpack_scales_k4(const uint8_t packed[12], uint8_t sc[8], uint8_t m[8]);
// Q3_K: the 16 scales (0..63, to be offset by -32) packed in 12 bytes.
void unpack_scales_q3_K(const uint8_t packed[12], uint8_t sc[16]);

// Rows of n elements (n a multiple of 256) to float.
void dequantize_row_q2_K_ref(const BlockQ2_K* x, float* y, int64_t n);
void dequantize_row_q3_K_ref(const BlockQ3_K* x, float* y, int64_t n);
void dequantize_row_q4_K_ref(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K_ref(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K_ref(const BlockQ6_K* x, float* y, int64_t n);

// Activations for k-quant dots: per 256 elements d = max|x| / 127,
// qs = nearbyint(x / d) (round half to even, as SIMD conversions do),
// bsums[j] = sum of qs[16j..16j+15]. n a multiple of 256.
void quantize_row_act_q8x256_ref(const float* x, ActQ8x256* y, int64_t n);
// The same with dispatch's QuantizeActFn signature.
void quantize_act_q8x256_ref(const float* x, void* act, int64_t n);

// dot(w, act) over n elements: w a row of blocks of the named type, act a row
// of ActQ8x256. Integer sums per sub-block, the mins folded in through bsums.
float vec_dot_q2_K_q8x256_ref(int64_t n, const void* w, const void* act);
float vec_dot_q3_K_q8x256_ref(int64_t n, const void* w, const void* act);
float vec_dot_q4_K_q8x256_ref(int64_t n, const void* w, const void* act);
float vec_dot_q5_K_q8x256_ref(int64_t n, const void* w, const void* act);
float vec_dot_q6_K_q8x256_ref(int64_t n, const void* w, const void* act);

}  // namespace slm::kernels
