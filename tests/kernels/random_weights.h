// Random weight rows in any type's layout, for the kernel tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "slm/core/half.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

// Random weights in the type's layout (built through its quantizer or raw bits).
inline std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> out(row_bytes(t, n) * static_cast<size_t>(rows));
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out.data() + row_bytes(t, n) * static_cast<size_t>(r);
    for (auto& v : x) v = nd(rng);
    switch (t) {
      case DType::kF32: std::memcpy(dst, x.data(), static_cast<size_t>(n) * 4); break;
      case DType::kF16: for (int64_t i = 0; i < n; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_f16(x[i]); break;
      case DType::kBF16: for (int64_t i = 0; i < n; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_bf16(x[i]); break;
      case DType::kQ8_0: quantize_row_q8_0_ref(x.data(), reinterpret_cast<BlockQ8_0*>(dst), n); break;
      case DType::kQ4_0: quantize_row_q4_0_ref(x.data(), reinterpret_cast<BlockQ4_0*>(dst), n); break;
      case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K: {  // random blocks, sane super-scales
        const DTypeInfo& info = dtype_info(t);
        for (size_t i = 0; i < row_bytes(t, n); ++i) dst[i] = static_cast<uint8_t>(byte(rng));
        for (int64_t b = 0; b < n / info.block_size; ++b) {
          uint8_t* blk = dst + b * info.block_bytes;
          const uint16_t d = f32_to_f16(0.01f + 0.01f * std::fabs(nd(rng))), dmin = f32_to_f16(0.02f);
          if (t == DType::kQ6_K) {
            std::memcpy(blk + info.block_bytes - 2, &d, 2);
          } else {
            std::memcpy(blk, &d, 2);
            std::memcpy(blk + 2, &dmin, 2);
          }
        }
        break;
      }
      default: {  // Q4_1, Q5_0: random quants, with sane fp16 scales
        const DTypeInfo& info = dtype_info(t);
        for (size_t i = 0; i < row_bytes(t, n); ++i) dst[i] = static_cast<uint8_t>(byte(rng));
        for (int64_t b = 0; b < n / info.block_size; ++b) {
          uint16_t* h = reinterpret_cast<uint16_t*>(dst + b * info.block_bytes);
          h[0] = f32_to_f16(0.01f + 0.1f * std::fabs(nd(rng)));
          if (t == DType::kQ4_1) h[1] = f32_to_f16(-0.5f * std::fabs(nd(rng)));
        }
      }
    }
  }
  return out;
}

}  // namespace slm::kernels
