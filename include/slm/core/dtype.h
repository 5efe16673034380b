// Element types of tensors, including GGUF's quantized block formats.
// A row of n elements of a block type takes n / block_size * block_bytes bytes;
// n must be a multiple of block_size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace slm {

enum class DType : uint8_t {
  kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ5_0,
  kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K,  // 256-element super-blocks (kernels/quant_k.h)
  kI32, kCount
};

struct DTypeInfo {
  std::string_view name;
  int block_size;    // elements per block (1 for plain types)
  int block_bytes;   // bytes per block
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }

// Bytes of a row of n elements; n % block_size must be 0 (checked by callers).
inline size_t row_bytes(DType t, int64_t n) {
  const DTypeInfo& i = dtype_info(t);
  return static_cast<size_t>(n / i.block_size) * static_cast<size_t>(i.block_bytes);
}

}  // namespace slm
