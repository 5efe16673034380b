// Internal: the SIMD k-quant kernels of quant_k_avx2.cpp and quant_k_avx512.cpp,
// for dispatch.cpp. Same contracts as the _q8x256_ref versions in quant_k.h
// (weights a row of k-quant blocks, act a row of ActQ8x256); the same integer
// sums, so they differ from the references only in float summation order.
// Call an ISA's functions only on a CPU that has it (dispatch checks).
#pragma once

#include <cstdint>

namespace slm::kernels {

float vec_dot_q2_K_avx2(int64_t n, const void* w, const void* act);
float vec_dot_q3_K_avx2(int64_t n, const void* w, const void* act);
float vec_dot_q4_K_avx2(int64_t n, const void* w, const void* act);
float vec_dot_q5_K_avx2(int64_t n, const void* w, const void* act);
float vec_dot_q6_K_avx2(int64_t n, const void* w, const void* act);

float vec_dot_q2_K_avx512(int64_t n, const void* w, const void* act);
float vec_dot_q3_K_avx512(int64_t n, const void* w, const void* act);
float vec_dot_q4_K_avx512(int64_t n, const void* w, const void* act);
float vec_dot_q5_K_avx512(int64_t n, const void* w, const void* act);
float vec_dot_q6_K_avx512(int64_t n, const void* w, const void* act);

}  // namespace slm::kernels
