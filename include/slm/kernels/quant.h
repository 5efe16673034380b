// Quantized block formats (GGUF layouts) and their scalar dequantizers.
// A row of n elements holds n / 32 blocks; each block is a fp16 scale d
// (and for Q4_1 a fp16 min m) followed by packed quants:
//   Q8_0: x = d * q (int8 q[32])
//   Q4_0: x = d * (q - 8), q in 0..15; byte j holds q[j] (low nibble) and q[j+16] (high)
//   Q4_1: x = d * q + m, same packing
//   Q5_0: as Q4_0 with a fifth bit from qh (bit j for element j), x = d * (q - 16)
// Thread-safe: pure functions.
#pragma once

#include <cstdint>

#include "slm/core/dtype.h"

namespace slm::kernels {

struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);

// Converts one row of n elements of type t to float. n must be a multiple of
// the type's block size.
void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n);

// Round-to-nearest quantizers, used by tests and writers.
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);
// Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)).
void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n);
// Q5_0: d = (value of largest magnitude) / -16, q = min(31, trunc(x / d + 16.5)).
void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n);

}  // namespace slm::kernels
