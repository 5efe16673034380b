// Scalar references for the k-quants: dequantizers, activation quantizer and
// integer dot products. Layouts: include/slm/kernels/quant_k.h.
#include "slm/kernels/quant_k.h"

#include <algorithm>
#include <cmath>

#include "slm/core/half.h"

namespace slm::kernels {

void unpack_scales_k4(const uint8_t p[12], uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = p[j] & 63;
    m[j] = p[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((p[j + 8] & 0x0f) | ((p[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((p[j + 8] >> 4) | ((p[j + 4] >> 6) << 4));
  }
}

void unpack_scales_q3_K(const uint8_t p[12], uint8_t sc[16]) {
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? (p[i] & 0x0f) : (p[i - 8] >> 4);
    const int hi = (p[8 + i % 4] >> (2 * (i / 4))) & 3;
    sc[i] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

namespace {

// The 2-bit quant of element e (0..255) of a Q2_K/Q3_K block.
inline int q2_of(const uint8_t* qs, int e) {
  const int h = e / 128, j = (e % 128) / 32, l = e % 32;
  return (qs[32 * h + l] >> (2 * j)) & 3;
}
// Q3_K's third bit of element e.
inline int hbit_of(const uint8_t* hmask, int e) {
  const int h = e / 128, j = (e % 128) / 32, l = e % 32;
  return (hmask[l] >> (4 * h + j)) & 1;
}
// Q6_K's 6-bit quant (0..63) of element e.
inline int q6_of(const BlockQ6_K& b, int e) {
  const int h = e / 128, c = (e % 128) / 32, l = e % 32;
  const uint8_t lo = b.ql[64 * h + 32 * (c % 2) + l];
  const int nib = c < 2 ? (lo & 0x0f) : (lo >> 4);
  return nib | (((b.qh[32 * h + l] >> (2 * c)) & 3) << 4);
}
// Q4_K's 4-bit quant of element e; Q5_K adds bit (e / 32) of qh[e % 32].
inline int q4_of(const uint8_t* qs, int e) {
  const int k = e / 64, hi = (e / 32) % 2, l = e % 32;
  return hi ? (qs[32 * k + l] >> 4) : (qs[32 * k + l] & 0x0f);
}

}  // namespace

void dequantize_row_q2_K_ref(const BlockQ2_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int e = 0; e < kQK; ++e) {
      const int s = x[b].scales[e / 16];
      y[e] = d * static_cast<float>(s & 0x0f) * static_cast<float>(q2_of(x[b].qs, e)) -
             dmin * static_cast<float>(s >> 4);
    }
  }
}

void dequantize_row_q3_K_ref(const BlockQ3_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    uint8_t sc[16];
    unpack_scales_q3_K(x[b].scales, sc);
    for (int e = 0; e < kQK; ++e) {
      const int q = q2_of(x[b].qs, e) - (hbit_of(x[b].hmask, e) ? 0 : 4);
      y[e] = d * static_cast<float>(sc[e / 16] - 32) * static_cast<float>(q);
    }
  }
}

void dequantize_row_q4_K_ref(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    uint8_t sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    for (int e = 0; e < kQK; ++e)
      y[e] = d * static_cast<float>(sc[e / 32]) * static_cast<float>(q4_of(x[b].qs, e)) -
             dmin * static_cast<float>(m[e / 32]);
  }
}

void dequantize_row_q5_K_ref(const BlockQ5_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    uint8_t sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    for (int e = 0; e < kQK; ++e) {
      const int q = q4_of(x[b].qs, e) | (((x[b].qh[e % 32] >> (e / 32)) & 1) << 4);
      y[e] = d * static_cast<float>(sc[e / 32]) * static_cast<float>(q) - dmin * static_cast<float>(m[e / 32]);
    }
  }
}

void dequantize_row_q6_K_ref(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int e = 0; e < kQK; ++e)
      y[e] = d * static_cast<float>(x[b].scales[e / 16]) * static_cast<float>(q6_of(x[b], e) - 32);
  }
}

void quantize_row_act_q8x256_ref(const float* x, ActQ8x256* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = static_cast<int8_t>(std::nearbyint(x[j] * id));
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[b].qs[16 * s + l];
      y[b].bsums[s] = static_cast<int16_t>(sum);
    }
  }
}

void quantize_act_q8x256_ref(const float* x, void* act, int64_t n) {
  quantize_row_act_q8x256_ref(x, static_cast<ActQ8x256*>(act), n);
}

// Each dot below sums, per block, integer products per sub-block times the
// sub-block's integer scale (sumi), and the mins times the activation's
// sub-block sums (summ); only the two super-scale products are float.

float vec_dot_q2_K_q8x256_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int sb = 0; sb < 16; ++sb) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q2_of(x[b].qs, 16 * sb + l) * a[b].qs[16 * sb + l];
      sumi += (x[b].scales[sb] & 0x0f) * dot;
      summ += (x[b].scales[sb] >> 4) * a[b].bsums[sb];
    }
    s += a[b].d * (f16_to_f32(x[b].d) * static_cast<float>(sumi) - f16_to_f32(x[b].dmin) * static_cast<float>(summ));
  }
  return s;
}

float vec_dot_q3_K_q8x256_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[16];
    unpack_scales_q3_K(x[b].scales, sc);
    int32_t sumi = 0;
    for (int sb = 0; sb < 16; ++sb) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) {
        const int e = 16 * sb + l;
        dot += (q2_of(x[b].qs, e) - (hbit_of(x[b].hmask, e) ? 0 : 4)) * a[b].qs[e];
      }
      sumi += (sc[sb] - 32) * dot;
    }
    s += a[b].d * f16_to_f32(x[b].d) * static_cast<float>(sumi);
  }
  return s;
}

float vec_dot_q4_K_q8x256_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ4_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    int32_t sumi = 0, summ = 0;
    for (int sb = 0; sb < 8; ++sb) {
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) dot += q4_of(x[b].qs, 32 * sb + l) * a[b].qs[32 * sb + l];
      sumi += sc[sb] * dot;
      summ += m[sb] * (a[b].bsums[2 * sb] + a[b].bsums[2 * sb + 1]);
    }
    s += a[b].d * (f16_to_f32(x[b].d) * static_cast<float>(sumi) - f16_to_f32(x[b].dmin) * static_cast<float>(summ));
  }
  return s;
}

float vec_dot_q5_K_q8x256_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ5_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    uint8_t sc[8], m[8];
    unpack_scales_k4(x[b].scales, sc, m);
    int32_t sumi = 0, summ = 0;
    for (int sb = 0; sb < 8; ++sb) {
      int32_t dot = 0;
      for (int l = 0; l < 32; ++l) {
        const int q = q4_of(x[b].qs, 32 * sb + l) | (((x[b].qh[l] >> sb) & 1) << 4);
        dot += q * a[b].qs[32 * sb + l];
      }
      sumi += sc[sb] * dot;
      summ += m[sb] * (a[b].bsums[2 * sb] + a[b].bsums[2 * sb + 1]);
    }
    s += a[b].d * (f16_to_f32(x[b].d) * static_cast<float>(sumi) - f16_to_f32(x[b].dmin) * static_cast<float>(summ));
  }
  return s;
}

float vec_dot_q6_K_q8x256_ref(int64_t n, const void* w, const void* act) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* a = static_cast<const ActQ8x256*>(act);
  float s = 0;
  for (int64_t b = 0; b < n / kQK; ++b) {
    // sum sc * (q - 32) * a = sum sc * (q * a) - 32 * sum sc * bsums.
    int32_t sumi = 0;
    for (int sb = 0; sb < 16; ++sb) {
      int32_t dot = 0;
      for (int l = 0; l < 16; ++l) dot += q6_of(x[b], 16 * sb + l) * a[b].qs[16 * sb + l];
      sumi += x[b].scales[sb] * (dot - 32 * a[b].bsums[sb]);
    }
    s += a[b].d * f16_to_f32(x[b].d) * static_cast<float>(sumi);
  }
  return s;
}

}  // namespace slm::kernels
