#include "slm/compress/kquant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "slm/core/half.h"
#include "slm/kernels/quant_k.h"

namespace slm::compress {

namespace {

using kernels::kQK;

constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS
constexpr int kRefine = 2;              // neighbouring scale codes tried on each side

// Round half to even, as ggml's nearest_int does for the values it sees.
int nearest_int(float v) { return static_cast<int>(std::nearbyint(v)); }

// Scale and min of n values on nmax + 1 levels, x ~ scale * L + min with
// min <= 0: the min-max fit, then nstep + 1 other inverse scales
// (nmax + rmin + rdelta * is) / (max - min), each refitted by weighted least
// squares, keeping the lowest weighted squared (mad: absolute) error
// (llama.cpp's make_qkx2_quants). Returns scale; -min goes to neg_min.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                    float rdelta, int nstep, bool mad) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = w[0] * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *neg_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min), scale = 1 / iscale, best = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
    const float diff = scale * L[i] + min - x[i];
    best += w[i] * (mad ? std::fabs(diff) : diff * diff);
  }
  uint8_t aux[32];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * static_cast<float>(l);
      sum_l2 += w[i] * static_cast<float>(l * l);
      sum_xl += w[i] * static_cast<float>(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D, this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * aux[i] + this_min - x[i];
        err += w[i] * (mad ? std::fabs(diff) : diff * diff);
      }
      if (err < best) {
        std::copy(aux, aux + n, L);
        best = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *neg_min = -min;
  return scale;
}

// The value of largest magnitude (the first of them), with its sign.
float signed_max(int n, const float* x) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  return max;
}

// Symmetric scale of n values on codes -nmax..nmax-1 (stored + nmax):
// the one mapping the largest magnitude to -nmax, then 18 nearby inverse
// scales, keeping the best weighted least-squares fit (llama.cpp's
// make_qx_quants with rmse_type 1: weights x^2 unless w is given).
float fit_scale_sym(int n, int nmax, const float* x, const float* w, uint8_t* L) {
  const float max = signed_max(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  auto weight = [&](int i) { return w != nullptr ? w[i] : x[i] * x[i]; };
  auto code = [&](float iscale, int i) { return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1); };
  float iscale = static_cast<float>(-nmax) / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = static_cast<uint8_t>(l + nmax);
    sumlx += weight(i) * x[i] * static_cast<float>(l);
    suml2 += weight(i) * static_cast<float>(l * l);
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.f, best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = code(iscale, i);
      sumlx += weight(i) * x[i] * static_cast<float>(l);
      suml2 += weight(i) * static_cast<float>(l * l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nmax + code(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Weighted squared error of one sub-block of n values dequantized as
// d * q - m with q = clamp(round((x + m) / d), 0, nmax) (d != 0), codes to L.
float requantize(int n, int nmax, const float* x, const float* w, float d, float m, uint8_t* L) {
  float err = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(nearest_int((x[i] + m) / d), 0, nmax));
    const float diff = d * static_cast<float>(L[i]) - m - x[i];
    err += (w != nullptr ? w[i] : 1.f) * diff * diff;
  }
  return err;
}

// The k-quants with a scale and a min per sub-block (Q2_K, Q4_K, Q5_K):
// sub-blocks of `sub` values on codes 0..nmax, their scales and mins coded
// 0..code_max against the super-block's d and dmin; llama.cpp's search grid
// (rmin, rdelta, nstep; mad: absolute error) and its weights without
// importance: |x| (abs_weights) or the sub-block's rms + |x|.
struct KShape {
  int sub, nmax, code_max;
  float rmin, rdelta;
  int nstep;
  bool mad, abs_weights;
};
constexpr KShape kShapeQ2_K{16, 3, 15, -0.5f, 0.1f, 15, true, true};
constexpr KShape kShapeQ4_K{32, 15, 63, -1.f, 0.1f, 20, false, false};
constexpr KShape kShapeQ5_K{32, 31, 63, -0.5f, 0.1f, 15, false, false};

// A super-block before packing.
struct SuperKM {
  uint16_t d = 0, dmin = 0;
  uint8_t sc[16] = {}, m[16] = {};
  uint8_t L[kQK] = {};
};

SuperKM fit_km(const float* x, const KShape& k, const float* imp) {
  SuperKM b;
  const int n_sub = kQK / k.sub;
  float weights[32], scales[16], mins[16], max_scale = 0, max_min = 0;
  // With importance the search weighs imp * sqrt(sigma2 + x^2), sigma2 twice
  // the block's mean square (llama.cpp's quantize_row_q4_K_impl), on a finer
  // grid, as its make_qkx3_quants (-0.9, 0.05, 36); the final step weighs
  // imp alone, the error the importance defines.
  float sigma2 = 0;
  for (int i = 0; i < kQK; ++i) sigma2 += x[i] * x[i];
  sigma2 *= 2.f / kQK;
  for (int j = 0; j < n_sub; ++j) {
    const float* xj = x + k.sub * j;
    if (imp != nullptr) {
      for (int l = 0; l < k.sub; ++l) weights[l] = imp[k.sub * j + l] * std::sqrt(sigma2 + xj[l] * xj[l]);
      scales[j] = fit_scale_min(k.sub, k.nmax, xj, weights, b.L + k.sub * j, &mins[j], -0.9f, 0.05f, 36, false);
    } else {
      float sum_x2 = 0;
      for (int l = 0; l < k.sub; ++l) sum_x2 += xj[l] * xj[l];
      const float av_x = k.abs_weights ? 0.f : std::sqrt(sum_x2 / static_cast<float>(k.sub));
      for (int l = 0; l < k.sub; ++l) weights[l] = av_x + std::fabs(xj[l]);
      scales[j] = fit_scale_min(k.sub, k.nmax, xj, weights, b.L + k.sub * j, &mins[j], k.rmin, k.rdelta, k.nstep, k.mad);
    }
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float cmax = static_cast<float>(k.code_max);
  const float inv_scale = max_scale > 0 ? cmax / max_scale : 0.f, inv_min = max_min > 0 ? cmax / max_min : 0.f;
  for (int j = 0; j < n_sub; ++j) {
    b.sc[j] = static_cast<uint8_t>(std::min(k.code_max, nearest_int(inv_scale * scales[j])));
    b.m[j] = static_cast<uint8_t>(std::min(k.code_max, nearest_int(inv_min * mins[j])));
  }
  b.d = f32_to_f16(max_scale / cmax);
  b.dmin = f32_to_f16(max_min / cmax);
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int j = 0; j < n_sub; ++j) {
    const float* xj = x + k.sub * j;
    const float* wj = imp != nullptr ? imp + k.sub * j : nullptr;
    uint8_t* Lj = b.L + k.sub * j;
    float best;
    if (d * static_cast<float>(b.sc[j]) != 0) {
      best = requantize(k.sub, k.nmax, xj, wj, d * static_cast<float>(b.sc[j]), dmin * static_cast<float>(b.m[j]), Lj);
    } else {  // the search's codes stay (as in llama.cpp); they decode to -m
      best = 0;
      for (int l = 0; l < k.sub; ++l) {
        const float diff = -dmin * static_cast<float>(b.m[j]) - xj[l];
        best += (wj != nullptr ? wj[l] : 1.f) * diff * diff;
      }
    }
    for (int s = std::max(1, b.sc[j] - kRefine); s <= std::min(k.code_max, b.sc[j] + kRefine); ++s)
      for (int m = std::max(0, b.m[j] - kRefine); m <= std::min(k.code_max, b.m[j] + kRefine); ++m) {
        if (d * static_cast<float>(s) == 0) continue;
        uint8_t L[32];
        const float err = requantize(k.sub, k.nmax, xj, wj, d * static_cast<float>(s), dmin * static_cast<float>(m), L);
        if (err < best) {
          best = err;
          b.sc[j] = static_cast<uint8_t>(s);
          b.m[j] = static_cast<uint8_t>(m);
          std::copy(L, L + k.sub, Lj);
        }
      }
  }
  return b;
}

// The 8 scales and mins into Q4_K/Q5_K's 12 bytes (kernels::unpack_scales_k4's inverse).
void pack_scales_k4(const SuperKM& b, uint8_t p[12]) {
  std::memset(p, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const int ls = b.sc[j], lm = b.m[j];
    if (j < 4) {
      p[j] = static_cast<uint8_t>(ls);
      p[j + 4] = static_cast<uint8_t>(lm);
    } else {
      p[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      p[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      p[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
}

void quantize_q2_K(const float* x, kernels::BlockQ2_K* y, const float* imp) {
  const SuperKM b = fit_km(x, kShapeQ2_K, imp);
  y->d = b.d;
  y->dmin = b.dmin;
  for (int j = 0; j < 16; ++j) y->scales[j] = static_cast<uint8_t>(b.sc[j] | (b.m[j] << 4));
  // Element 128h + 32j + l at bits 2j of qs[32h + l].
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = b.L + 128 * h + l;
      y->qs[32 * h + l] = static_cast<uint8_t>(q[0] | (q[32] << 2) | (q[64] << 4) | (q[96] << 6));
    }
}

void quantize_q4_K(const float* x, kernels::BlockQ4_K* y, const float* imp) {
  const SuperKM b = fit_km(x, kShapeQ4_K, imp);
  y->d = b.d;
  y->dmin = b.dmin;
  pack_scales_k4(b, y->scales);
  // Sub-block 2k in the low nibbles of qs[32k..32k+31], 2k + 1 in the high.
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l)
      y->qs[32 * k + l] = static_cast<uint8_t>(b.L[64 * k + l] | (b.L[64 * k + 32 + l] << 4));
}

void quantize_q5_K(const float* x, kernels::BlockQ5_K* y, const float* imp) {
  const SuperKM b = fit_km(x, kShapeQ5_K, imp);
  y->d = b.d;
  y->dmin = b.dmin;
  pack_scales_k4(b, y->scales);
  // Low four bits as Q4_K; the fifth bit of element l of sub-block s is bit s of qh[l].
  std::memset(y->qh, 0, sizeof(y->qh));
  for (int k = 0; k < 4; ++k)
    for (int l = 0; l < 32; ++l) {
      const int lo = b.L[64 * k + l], hi = b.L[64 * k + 32 + l];
      y->qs[32 * k + l] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      y->qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * k)) | ((hi >> 4) << (2 * k + 1)));
    }
}

// Q3_K's search without importance (llama.cpp's make_q3_quants): codes
// -nmax..nmax-1 from the largest magnitude, then up to 5 rounds moving
// single codes while the x^2-weighted least-squares fit improves.
float fit_scale_q3(int n, int nmax, const float* x, uint8_t* L) {
  const float max = signed_max(n, x);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  int l[16];
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    l[i] = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l[i]);
    suml2 += w * static_cast<float>(l[i] * l[i]);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * static_cast<float>(l[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * static_cast<float>(l[i] * l[i]);
        const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != l[i]) {
          slx += w * x[i] * static_cast<float>(new_l);
          sl2 += w * static_cast<float>(new_l * new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            l[i] = new_l;
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(l[i] + nmax);
  return sumlx / suml2;
}

// The symmetric k-quants (Q3_K, Q6_K): 16 sub-blocks of 16 on codes
// -nmax..nmax-1 (stored + nmax), their signed scales coded -code..code-1
// against the super-block's d, which maps the largest to -code.
struct SuperSym {
  uint16_t d = 0;
  int sc[16] = {};
  uint8_t L[kQK] = {};
};

SuperSym fit_sym(const float* x, int nmax, int code, const float* imp) {
  SuperSym b;
  float scales[16], weights[16], max_scale = 0, max_abs_scale = 0;
  float sigma2 = 0;  // as fit_km: imp * sqrt(sigma2 + x^2) in the search, imp in the last step
  for (int i = 0; i < kQK; ++i) sigma2 += x[i] * x[i];
  sigma2 *= 2.f / kQK;
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = x + 16 * ib;
    if (imp != nullptr) {
      for (int l = 0; l < 16; ++l) weights[l] = imp[16 * ib + l] * std::sqrt(sigma2 + xb[l] * xb[l]);
      scales[ib] = fit_scale_sym(16, nmax, xb, weights, b.L + 16 * ib);
    } else {
      scales[ib] = nmax == 4 ? fit_scale_q3(16, nmax, xb, b.L + 16 * ib) : fit_scale_sym(16, nmax, xb, nullptr, b.L + 16 * ib);
    }
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {  // all zero: d = 0, every code and scale at its lowest (zero bytes)
    std::fill(b.sc, b.sc + 16, -code);
    std::fill(b.L, b.L + kQK, 0);
    return b;
  }
  const float iscale = static_cast<float>(-code) / max_scale;
  b.d = f32_to_f16(1 / iscale);
  const float d = f16_to_f32(b.d);
  for (int ib = 0; ib < 16; ++ib) {
    const float* xb = x + 16 * ib;
    const float* wb = imp != nullptr ? imp + 16 * ib : nullptr;
    const int sc0 = std::clamp(nearest_int(iscale * scales[ib]), -code, code - 1);
    b.sc[ib] = sc0;
    auto try_scale = [&](int sc, uint8_t* Lb) {
      const float ds = d * static_cast<float>(sc);
      float err = 0;
      for (int l = 0; l < 16; ++l) {
        Lb[l] = static_cast<uint8_t>(std::clamp(nearest_int(xb[l] / ds), -nmax, nmax - 1) + nmax);
        const float diff = ds * static_cast<float>(Lb[l] - nmax) - xb[l];
        err += (wb != nullptr ? wb[l] : 1.f) * diff * diff;
      }
      return err;
    };
    if (d * static_cast<float>(sc0) == 0) continue;  // the search's codes stay (as in llama.cpp)
    float best = try_scale(sc0, b.L + 16 * ib);
    for (int sc = std::max(-code, sc0 - kRefine); sc <= std::min(code - 1, sc0 + kRefine); ++sc) {
      uint8_t Lb[16];
      if (sc == sc0 || d * static_cast<float>(sc) == 0) continue;
      const float err = try_scale(sc, Lb);
      if (err < best) {
        best = err;
        b.sc[ib] = sc;
        std::copy(Lb, Lb + 16, b.L + 16 * ib);
      }
    }
  }
  return b;
}

void quantize_q3_K(const float* x, kernels::BlockQ3_K* y, const float* imp) {
  const SuperSym b = fit_sym(x, 4, 32, imp);
  std::memset(y, 0, sizeof(*y));
  y->d = b.d;
  // Scale i + 32 (6 bits): low four in the nibbles of scales[0..7] (i < 8
  // low, else high), top two at bits 2 (i / 4) of scales[8 + i % 4].
  for (int i = 0; i < 16; ++i) {
    const int l = b.sc[i] + 32;
    y->scales[i % 8] |= static_cast<uint8_t>((l & 0xF) << (i < 8 ? 0 : 4));
    y->scales[8 + i % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (i / 4)));
  }
  // Element e: its third bit (code >= 4) at bit e / 32 of hmask[e % 32], the
  // low two bits packed as Q2_K's.
  uint8_t L[kQK];
  for (int e = 0; e < kQK; ++e) {
    L[e] = b.L[e] & 3;
    if (b.L[e] > 3) y->hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  }
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + 128 * h + l;
      y->qs[32 * h + l] = static_cast<uint8_t>(q[0] | (q[32] << 2) | (q[64] << 4) | (q[96] << 6));
    }
}

void quantize_q6_K(const float* x, kernels::BlockQ6_K* y, const float* imp) {
  const SuperSym b = fit_sym(x, 32, 128, imp);
  std::memset(y, 0, sizeof(*y));
  if (b.d == 0) return;  // all zero: every byte 0, as llama.cpp writes it
  y->d = b.d;
  for (int i = 0; i < 16; ++i) y->scales[i] = static_cast<int8_t>(b.sc[i]);
  // For half h, element 128h + 32c + l: low nibble in ql[64h + 32(c % 2) + l]
  // (c >= 2: the high nibble), top two bits at bits 2c of qh[32h + l].
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = b.L + 128 * h + l;
      y->ql[64 * h + l] = static_cast<uint8_t>((q[0] & 0xF) | ((q[64] & 0xF) << 4));
      y->ql[64 * h + 32 + l] = static_cast<uint8_t>((q[32] & 0xF) | ((q[96] & 0xF) << 4));
      y->qh[32 * h + l] = static_cast<uint8_t>((q[0] >> 4) | ((q[32] >> 4) << 2) | ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
    }
}

}  // namespace

bool is_k_quant(DType t) {
  return t == DType::kQ2_K || t == DType::kQ3_K || t == DType::kQ4_K || t == DType::kQ5_K || t == DType::kQ6_K;
}

void quantize_row_k(DType t, const float* x, uint8_t* dst, int64_t n, const float* importance) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    const float* ib = importance != nullptr ? importance + b * kQK : nullptr;
    switch (t) {
      case DType::kQ2_K: quantize_q2_K(xb, reinterpret_cast<kernels::BlockQ2_K*>(dst) + b, ib); break;
      case DType::kQ3_K: quantize_q3_K(xb, reinterpret_cast<kernels::BlockQ3_K*>(dst) + b, ib); break;
      case DType::kQ4_K: quantize_q4_K(xb, reinterpret_cast<kernels::BlockQ4_K*>(dst) + b, ib); break;
      case DType::kQ5_K: quantize_q5_K(xb, reinterpret_cast<kernels::BlockQ5_K*>(dst) + b, ib); break;
      case DType::kQ6_K: quantize_q6_K(xb, reinterpret_cast<kernels::BlockQ6_K*>(dst) + b, ib); break;
      default: return;
    }
  }
}

}  // namespace slm::compress
