// Scalar reference dot products: the oracles the SIMD versions are tested against.
#include <cmath>
#include <cstring>

#include "simd.h"
#include "slm/core/half.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

float vec_dot_f32_ref(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const float*>(w);
  const auto* b = static_cast<const float*>(act);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

float vec_dot_f16_ref(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += f16_to_f32(a[i]) * b[i];
  return s;
}

float vec_dot_bf16_ref(int64_t n, const void* w, const void* act) {
  const auto* a = static_cast<const uint16_t*>(w);
  const auto* b = static_cast<const float*>(act);
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(a[i]) * b[i];
  return s;
}

float vec_dot_q8_0_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t d = 0;
    for (int j = 0; j < 32; ++j) d += x[b].qs[j] * y[b].qs[j];
    s += f16_to_f32(x[b].d) * y[b].d * static_cast<float>(d);
  }
  return s;
}

float vec_dot_q4_0_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t d = 0;
    for (int j = 0; j < 16; ++j)
      d += ((x[b].qs[j] & 0x0f) - 8) * y[b].qs[j] + ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
    s += f16_to_f32(x[b].d) * y[b].d * static_cast<float>(d);
  }
  return s;
}

float vec_dot_q4_1_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t d = 0;
    for (int j = 0; j < 16; ++j) d += (x[b].qs[j] & 0x0f) * y[b].qs[j] + (x[b].qs[j] >> 4) * y[b].qs[j + 16];
    s += f16_to_f32(x[b].d) * y[b].d * static_cast<float>(d) + f16_to_f32(x[b].m) * y[b].d * static_cast<float>(y[b].sum);
  }
  return s;
}

float vec_dot_q5_0_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const ActQ8x32*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    int32_t d = 0;
    for (int j = 0; j < 16; ++j) {
      const int lo = ((x[b].qs[j] & 0x0f) | (((qh >> j) & 1) << 4)) - 16;
      const int hi = ((x[b].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      d += lo * y[b].qs[j] + hi * y[b].qs[j + 16];
    }
    s += f16_to_f32(x[b].d) * y[b].d * static_cast<float>(d);
  }
  return s;
}

void axpy_f32_ref(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const float*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] += a * v[i];
}

void axpy_f16_ref(int64_t n, float a, const void* x, float* y) {
  const auto* v = static_cast<const uint16_t*>(x);
  for (int64_t i = 0; i < n; ++i) y[i] += a * f16_to_f32(v[i]);
}

double exp_sum_ref(const float* x, float shift, float* out, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float d = x[i] - shift;
    sum += out[i] = !(d >= -87.0f) ? 0.0f : expf(d);  // NaN (-inf - -inf) too
  }
  return sum;
}

void to_f16_ref(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f32_to_f16(x[i]);
}

void quantize_act_q8x32_ref(const float* x, void* act, int64_t n) {
  auto* y = static_cast<ActQ8x32*>(act);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      // nearbyint: round half to even, as the SIMD conversions do.
      const int q = static_cast<int>(std::nearbyint(x[b * 32 + j] * id));
      y[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = d;
    y[b].sum = sum;
  }
}

}  // namespace slm::kernels
