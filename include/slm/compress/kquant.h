// Quantizers for GGUF's k-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (block
// layouts: slm/kernels/quant_k.h, whose dequantizers read what these write).
//
// The scale search follows llama.cpp's reference quantizers
// (ggml-quants.c quantize_row_q{2,3,4,5,6}_K_ref): per sub-block a scale
// (and for Q2_K/Q4_K/Q5_K a min) fitted by weighted least squares over a
// grid of candidate inverse scales (make_qkx2_quants; Q6_K make_qx_quants;
// Q3_K make_q3_quants's code moves); the sub-block scales and mins then
// coded in 6 bits (Q2_K: 4, Q6_K: 8) against the super-block's fp16 d and
// dmin. One step more than llama.cpp: each sub-block then tries the
// neighbouring codes of its scale and min and keeps a pair only if it
// lowers the sub-block's error, so the reconstruction error never exceeds
// that of llama.cpp's choice.
//
// importance (per element of the row, may be null) weights the squared
// error in the search and in that last step: llama.cpp's imatrix idea, with
// the mean square of each input channel on calibration text (H_jj / tokens)
// as the weight, so that the error lands where inputs are small. Null: the
// search uses llama.cpp's heuristic weights and the last step plain squared error.
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "slm/core/dtype.h"

namespace slm::compress {

// True for the types quantize_row_k writes.
bool is_k_quant(DType t);

// One row of n floats (n a multiple of 256) into n / 256 blocks of type t
// (Q2_K, Q3_K, Q4_K, Q5_K or Q6_K) at dst.
void quantize_row_k(DType t, const float* x, uint8_t* dst, int64_t n, const float* importance);

}  // namespace slm::compress
