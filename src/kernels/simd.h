// Internal: the SIMD kernels each ISA file defines, for dispatch.cpp (the
// _ref ones live in vec_dot_ref.cpp and ops.cpp).
// ISA files (*_avx2.cpp, *_avx512.cpp) are compiled with their own flags and
// must not define inline or template code shared with other files (the linker
// could pick their copy for a CPU without the ISA): plain functions, helpers in
// anonymous namespaces, and C's math.h (expf, sqrtf) rather than <cmath>'s
// inline overloads.
#pragma once

#include <cstdint>

#include "slm/kernels/dispatch.h"

namespace slm::kernels {

#define SLM_DECLARE_ISA_KERNELS(isa)                                         \
  float vec_dot_f32_##isa(int64_t n, const void* w, const void* act);      \
  float vec_dot_f16_##isa(int64_t n, const void* w, const void* act);      \
  float vec_dot_bf16_##isa(int64_t n, const void* w, const void* act);     \
  float vec_dot_q8_0_##isa(int64_t n, const void* w, const void* act);     \
  float vec_dot_q4_0_##isa(int64_t n, const void* w, const void* act);     \
  float vec_dot_q4_1_##isa(int64_t n, const void* w, const void* act);     \
  float vec_dot_q5_0_##isa(int64_t n, const void* w, const void* act);     \
  void quantize_act_q8x32_##isa(const float* x, void* act, int64_t n);     \
  void axpy_f32_##isa(int64_t n, float a, const void* x, float* y);        \
  void axpy_f16_##isa(int64_t n, float a, const void* x, float* y);       \
  void to_f16_##isa(const float* x, uint16_t* y, int64_t n);               \
  double exp_sum_##isa(const float* x, float shift, float* out, int64_t n); \
  void rmsnorm_##isa(const float* x, const float* w, float eps, float* out, int64_t n); \
  void swiglu_##isa(const float* gate, const float* up, float* out, int64_t n);

SLM_DECLARE_ISA_KERNELS(ref)
SLM_DECLARE_ISA_KERNELS(avx2)
SLM_DECLARE_ISA_KERNELS(avx512)

// Tiles of weight rows x activation rows (dispatch.h DotTileFn), where an ISA has them.
void dot_tile_f32_avx512(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out);
void dot_tile_f16_avx512(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out);
void dot_tile_f32_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                       int n_act, float* out);
void dot_tile_f16_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                       int n_act, float* out);
void dot_tile_q8_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out);
void dot_tile_q4_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out);
void dot_tile_q5_0_avx2(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                        int n_act, float* out);
void quantize_act_q8x64_avx512(const float* x, void* act, int64_t n);

// Attention for head sizes that are multiples of 16 (dispatch.h KernelSet::attention).
bool attention_avx512(const AttentionArgs& a);

// Row panels (dispatch.h), panel_avx512.cpp.
extern const PanelKernels kPanelQ4_0Avx512, kPanelQ8_0Avx512, kPanelQ5_0Avx512, kPanelQ4_KAvx512,
    kPanelQ5_KAvx512, kPanelQ6_KAvx512;

#undef SLM_DECLARE_ISA_KERNELS

}  // namespace slm::kernels
