#include "slm/core/dtype.h"

#include "slm/core/assert.h"

namespace slm {

const DTypeInfo& dtype_info(DType t) {
  // Block layouts as GGUF defines them (ggml-common.h): a fp16 scale, then
  // packed quants; Q4_1 adds a fp16 min, Q5_0 a 32-bit mask of fifth bits.
  // The k-quants pack 256 elements in sub-blocks with their own small scales.
  static const DTypeInfo kInfo[] = {
      {"F32", 1, 4},     {"F16", 1, 2},     {"BF16", 1, 2},    {"Q8_0", 32, 34},
      {"Q4_0", 32, 18},  {"Q4_1", 32, 20},  {"Q5_0", 32, 22},  {"Q2_K", 256, 84},
      {"Q3_K", 256, 110}, {"Q4_K", 256, 144}, {"Q5_K", 256, 176}, {"Q6_K", 256, 210},
      {"I32", 1, 4},
  };
  static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == static_cast<size_t>(DType::kCount));
  SLM_ASSERT(t < DType::kCount);
  return kInfo[static_cast<int>(t)];
}

}  // namespace slm
