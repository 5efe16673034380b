#include "slm/kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstring>

#include "slm/core/assert.h"
#include "slm/core/half.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {

void dequantize_row_ref(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::kF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::kBF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::kQ8_0: {
      const auto* b = static_cast<const BlockQ8_0*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = f16_to_f32(b[k].d);
        for (int j = 0; j < 32; ++j) dst[k * 32 + j] = d * b[k].qs[j];
      }
      return;
    }
    case DType::kQ4_0: {
      const auto* b = static_cast<const BlockQ4_0*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = f16_to_f32(b[k].d);
        for (int j = 0; j < 16; ++j) {
          dst[k * 32 + j] = d * ((b[k].qs[j] & 0x0f) - 8);
          dst[k * 32 + j + 16] = d * ((b[k].qs[j] >> 4) - 8);
        }
      }
      return;
    }
    case DType::kQ4_1: {
      const auto* b = static_cast<const BlockQ4_1*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = f16_to_f32(b[k].d), m = f16_to_f32(b[k].m);
        for (int j = 0; j < 16; ++j) {
          dst[k * 32 + j] = d * (b[k].qs[j] & 0x0f) + m;
          dst[k * 32 + j + 16] = d * (b[k].qs[j] >> 4) + m;
        }
      }
      return;
    }
    case DType::kQ5_0: {
      const auto* b = static_cast<const BlockQ5_0*>(src);
      for (int64_t k = 0; k < n / 32; ++k) {
        const float d = f16_to_f32(b[k].d);
        uint32_t qh;
        std::memcpy(&qh, b[k].qh, 4);
        for (int j = 0; j < 16; ++j) {
          const int lo = (b[k].qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
          const int hi = (b[k].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
          dst[k * 32 + j] = d * (lo - 16);
          dst[k * 32 + j + 16] = d * (hi - 16);
        }
      }
      return;
    }
    case DType::kQ2_K: dequantize_row_q2_K_ref(static_cast<const BlockQ2_K*>(src), dst, n); return;
    case DType::kQ3_K: dequantize_row_q3_K_ref(static_cast<const BlockQ3_K*>(src), dst, n); return;
    case DType::kQ4_K: dequantize_row_q4_K_ref(static_cast<const BlockQ4_K*>(src), dst, n); return;
    case DType::kQ5_K: dequantize_row_q5_K_ref(static_cast<const BlockQ5_K*>(src), dst, n); return;
    case DType::kQ6_K: dequantize_row_q6_K_ref(static_cast<const BlockQ6_K*>(src), dst, n); return;
    case DType::kI32: {
      const auto* s = static_cast<const int32_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::kCount: break;
  }
  SLM_ASSERT(false && "dequantize_row_ref: bad dtype");
}

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t k = 0; k < n / 32; ++k) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[k * 32 + j]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[k].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[k].qs[j] = static_cast<int8_t>(std::lround(x[k * 32 + j] * id));
  }
}

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  for (int64_t k = 0; k < n / 32; ++k) {
    // The scale maps the value of largest magnitude (with its sign) to -8.
    float amax = 0, maxv = 0;
    for (int j = 0; j < 32; ++j) {
      const float v = x[k * 32 + j];
      if (std::fabs(v) > amax) {
        amax = std::fabs(v);
        maxv = v;
      }
    }
    const float d = maxv / -8.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[k].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const int lo = std::min(15, static_cast<int>(x[k * 32 + j] * id + 8.5f));
      const int hi = std::min(15, static_cast<int>(x[k * 32 + j + 16] * id + 8.5f));
      y[k].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// The rounding below follows ggml's quantize_row_q4_1_ref / quantize_row_q5_0_ref
// (ggml-quants.c) exactly, including the float casts, so that files we write
// are byte-identical to llama-quantize's.
void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n) {
  for (int64_t k = 0; k < n / 32; ++k) {
    const float* xb = x + k * 32;
    float lo = std::numeric_limits<float>::max(), hi = -std::numeric_limits<float>::max();
    for (int j = 0; j < 32; ++j) {
      lo = std::min(lo, xb[j]);
      hi = std::max(hi, xb[j]);
    }
    const float d = (hi - lo) / 15.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[k].d = f32_to_f16(d);
    y[k].m = f32_to_f16(lo);
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((xb[j] - lo) * id + 0.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>((xb[j + 16] - lo) * id + 0.5f)));
      y[k].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n) {
  for (int64_t k = 0; k < n / 32; ++k) {
    const float* xb = x + k * 32;
    float amax = 0, maxv = 0;  // the value of largest magnitude, with its sign, maps to -16
    for (int j = 0; j < 32; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        maxv = xb[j];
      }
    }
    const float d = maxv / -16.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[k].d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
      const int q0 = std::min(31, static_cast<int>(static_cast<int8_t>(xb[j] * id + 16.5f)));
      const int q1 = std::min(31, static_cast<int>(static_cast<int8_t>(xb[j + 16] * id + 16.5f)));
      y[k].qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
      qh |= static_cast<uint32_t>((q0 >> 4) & 1) << j;
      qh |= static_cast<uint32_t>((q1 >> 4) & 1) << (j + 16);
    }
    for (int b = 0; b < 4; ++b) y[k].qh[b] = static_cast<uint8_t>(qh >> (8 * b));  // little-endian, as ggml's memcpy
  }
}

}  // namespace slm::kernels
