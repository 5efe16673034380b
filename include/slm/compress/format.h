// The weight formats `slm quantize` writes, all as standard GGUF blocks so
// that any GGUF reader loads them:
//
// - the GGUF types Q8_0, Q4_0, Q4_1, Q5_0 (ggml's reference rounding) and
//   the k-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (kquant.h);
// - plain int8 and int4 with one scale per group of G columns (G a multiple
//   of 32; 0: the whole row), as the GPTQ and AWQ papers quantize:
//     int8: symmetric, x = d * q, q in [-127, 127], d = max|x| / 127: Q8_0
//           blocks that all carry their group's d;
//     int4: asymmetric, x = d * (q - z), q in [0, 15], z an integer zero
//           point (the papers' grid: min(x, 0) .. max(x, 0) in 15 steps):
//           Q4_1 blocks (x = d * q + m) that all carry their group's d and
//           m = -z * d. Q4_1 rather than Q4_0 because a row's weights are
//           rarely centred: a shared Q4_0 scale would spend a level of the
//           16 on the side without the extreme value. It costs half a bit a
//           weight over Q4_0 (5 bits: 20 bytes per 32), and the size
//           reported is those bytes.
//
// GPTQ sees every format but the k-quants as groups of columns whose
// parameters (d, m) are fixed from the group's weights, each weight then
// taking its nearest code (group_params, group_code, group_value, pack_row).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/dtype.h"
#include "slm/core/status.h"

namespace slm::compress {

struct QuantFormat {
  DType type = DType::kQ8_0;  // the GGUF blocks written
  int int_bits = 0;           // 4 or 8: plain int4 / int8 with groups (in Q4_1 / Q8_0 blocks); 0: type's own
  int64_t group = 0;          // int_bits: columns per group (a multiple of 32; 0: the whole row)

  std::string name() const;   // "Q4_K", "int4 g128", "int4 row"
  // Row lengths must be multiples of this: 32, or 256 for the k-quants.
  int64_t block() const { return dtype_info(type).block_size; }
  // Columns per group for rows of n: 32 for Q4_0, Q4_1, Q5_0, Q8_0.
  int64_t group_size(int64_t n) const { return int_bits == 0 ? 32 : (group == 0 ? n : group); }
};

// "Q4_K", "q8_0", "int4", "int8"; group: --group G (< 0: not given, meaning
// 0 for int4 / int8; only they take it).
Result<QuantFormat> parse_quant_format(const std::string& type, int64_t group);

// Round to nearest: one row of n values (a multiple of f.block()) into f's
// blocks at dst (row_bytes(f.type, n)). importance (n) weights the k-quants'
// error (kquant.h); null for the others.
void quantize_row(const QuantFormat& f, const float* x, uint8_t* dst, int64_t n, const float* importance = nullptr);
// x (n) through f's blocks and back (round to nearest).
void rtn_roundtrip(const QuantFormat& f, const float* x, float* y, int64_t n);

// One group's parameters: values are group_value(q) = d * q + m for the
// asymmetric formats (Q4_1, int4), (q - offset) * d for the others.
struct GroupParams {
  float d = 0, m = 0;
};
// True where GPTQ can write f (all but the k-quants).
bool has_groups(const QuantFormat& f);
// The parameters of a group of n weights, as round to nearest picks them
// (for Q4_0, Q5_0, Q8_0, Q4_1 as ggml's reference does), in stored precision.
GroupParams group_params(const QuantFormat& f, const float* x, int64_t n);
int group_code(const QuantFormat& f, float v, GroupParams p);    // the nearest code
float group_value(const QuantFormat& f, int q, GroupParams p);   // exactly as the dequantizer decodes it
// One row of n codes into f's blocks; p holds one entry per group.
void pack_row(const QuantFormat& f, const int8_t* codes, const GroupParams* p, int64_t n, uint8_t* dst);

}  // namespace slm::compress
