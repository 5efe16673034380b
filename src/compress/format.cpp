#include "slm/compress/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "slm/compress/kquant.h"
#include "slm/core/half.h"
#include "slm/kernels/quant.h"

namespace slm::compress {

namespace {

constexpr int64_t kBlock = 32;  // Q4_0 / Q4_1 / Q5_0 / Q8_0

bool asymmetric(const QuantFormat& f) { return f.type == DType::kQ4_1; }

// The symmetric blocks: code q stands for (q - offset) * d, q in [lo, hi];
// ggml's reference maps the value of largest magnitude to -offset with its
// sign (Q4_0, Q5_0) or to +-127 (Q8_0).
struct SymGrid {
  int offset, lo, hi;
  bool signed_max;
};
SymGrid sym_grid(DType t) {
  switch (t) {
    case DType::kQ4_0: return {8, 0, 15, true};
    case DType::kQ5_0: return {16, 0, 31, true};
    default: return {0, -128, 127, false};  // Q8_0
  }
}

}  // namespace

std::string QuantFormat::name() const {
  if (int_bits == 0) return std::string(dtype_name(type));
  return group == 0 ? fmt::format("int{} row", int_bits) : fmt::format("int{} g{}", int_bits, group);
}

Result<QuantFormat> parse_quant_format(const std::string& name, int64_t group) {
  std::string up = name;
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  QuantFormat f;
  if (up == "INT4" || up == "INT8") {
    f.int_bits = up == "INT4" ? 4 : 8;
    f.type = f.int_bits == 4 ? DType::kQ4_1 : DType::kQ8_0;
    f.group = std::max<int64_t>(group, 0);
    if (f.group % kBlock != 0)
      return Status::InvalidArgument(fmt::format(
          "--group {}: a group must be whole GGUF blocks, a multiple of 32 (or 0 for the whole row)", group));
    return f;
  }
  bool found = false;
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ2_K, DType::kQ3_K, DType::kQ4_K,
                  DType::kQ5_K, DType::kQ6_K})
    if (dtype_name(t) == up) f.type = t, found = true;
  if (!found)
    return Status::InvalidArgument(fmt::format(
        "--type '{}' cannot be written (Q8_0, Q4_0, Q4_1, Q5_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, int4, int8)", name));
  if (group >= 0)
    return Status::InvalidArgument(fmt::format(
        "--group {} with --type {}: only int4 and int8 take a group size ({} has its own blocks)", group, name, up));
  return f;
}

bool has_groups(const QuantFormat& f) { return !is_k_quant(f.type); }

GroupParams group_params(const QuantFormat& f, const float* x, int64_t n) {
  GroupParams p;
  if (f.int_bits == 4) {  // min(x, 0) .. max(x, 0) in 15 steps, an integer zero point
    float lo = 0, hi = 0;
    for (int64_t j = 0; j < n; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    p.d = f16_to_f32(f32_to_f16((hi - lo) / 15.f));
    const float z = p.d != 0 ? std::clamp(std::nearbyint(-lo / p.d), 0.f, 15.f) : 0.f;
    p.m = f16_to_f32(f32_to_f16(-z * p.d));
    return p;
  }
  if (asymmetric(f)) {  // Q4_1: ggml's min-max
    float lo = x[0], hi = x[0];
    for (int64_t j = 1; j < n; ++j) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    p.d = f16_to_f32(f32_to_f16((hi - lo) / 15.f));
    p.m = f16_to_f32(f32_to_f16(lo));
    return p;
  }
  float amax = 0, maxv = 0;
  for (int64_t j = 0; j < n; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      maxv = x[j];
    }
  const SymGrid g = sym_grid(f.type);
  p.d = f16_to_f32(f32_to_f16(g.signed_max ? maxv / static_cast<float>(-g.offset) : amax / 127.f));
  return p;
}

int group_code(const QuantFormat& f, float v, GroupParams p) {
  if (asymmetric(f)) {
    if (p.d == 0) return 0;
    return static_cast<int>(std::clamp<long>(std::lround((v - p.m) / p.d), 0, 15));
  }
  const SymGrid g = sym_grid(f.type);
  if (p.d == 0) return g.offset;
  return static_cast<int>(std::clamp<long>(std::lround(v / p.d) + g.offset, g.lo, g.hi));
}

float group_value(const QuantFormat& f, int q, GroupParams p) {
  if (asymmetric(f)) return p.d * static_cast<float>(q) + p.m;
  return static_cast<float>(q - sym_grid(f.type).offset) * p.d;
}

void pack_row(const QuantFormat& f, const int8_t* codes, const GroupParams* p, int64_t n, uint8_t* dst) {
  const int64_t gs = f.group_size(n);
  for (int64_t b = 0; b < n / kBlock; ++b) {
    const GroupParams& g = p[b * kBlock / gs];
    const int8_t* q = codes + b * kBlock;
    const uint16_t d = f32_to_f16(g.d);
    switch (f.type) {
      case DType::kQ4_0: {
        auto& o = reinterpret_cast<kernels::BlockQ4_0*>(dst)[b];
        o.d = d;
        for (int j = 0; j < 16; ++j) o.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
        break;
      }
      case DType::kQ4_1: {
        auto& o = reinterpret_cast<kernels::BlockQ4_1*>(dst)[b];
        o.d = d;
        o.m = f32_to_f16(g.m);
        for (int j = 0; j < 16; ++j) o.qs[j] = static_cast<uint8_t>(q[j] | (q[j + 16] << 4));
        break;
      }
      case DType::kQ5_0: {
        // Low nibbles as Q4_0's; the fifth bits of elements j and j + 16 as bits j and j + 16 of qh.
        auto& o = reinterpret_cast<kernels::BlockQ5_0*>(dst)[b];
        o.d = d;
        uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
          o.qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
          qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j | static_cast<uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
        }
        for (int k = 0; k < 4; ++k) o.qh[k] = static_cast<uint8_t>(qh >> (8 * k));
        break;
      }
      default: {  // Q8_0
        auto& o = reinterpret_cast<kernels::BlockQ8_0*>(dst)[b];
        o.d = d;
        std::copy(q, q + kBlock, o.qs);
        break;
      }
    }
  }
}

void quantize_row(const QuantFormat& f, const float* x, uint8_t* dst, int64_t n, const float* importance) {
  if (is_k_quant(f.type)) return quantize_row_k(f.type, x, dst, n, importance);
  if (f.int_bits != 0) {
    const int64_t gs = f.group_size(n);
    std::vector<GroupParams> p(static_cast<size_t>((n + gs - 1) / gs));
    std::vector<int8_t> codes(static_cast<size_t>(n));
    for (int64_t g = 0; g * gs < n; ++g) {
      const int64_t len = std::min(gs, n - g * gs);
      p[g] = group_params(f, x + g * gs, len);
      for (int64_t j = g * gs; j < g * gs + len; ++j) codes[j] = static_cast<int8_t>(group_code(f, x[j], p[g]));
    }
    return pack_row(f, codes.data(), p.data(), n, dst);
  }
  switch (f.type) {  // ggml's reference rounding, byte for byte
    case DType::kQ8_0: return kernels::quantize_row_q8_0_ref(x, reinterpret_cast<kernels::BlockQ8_0*>(dst), n);
    case DType::kQ4_0: return kernels::quantize_row_q4_0_ref(x, reinterpret_cast<kernels::BlockQ4_0*>(dst), n);
    case DType::kQ4_1: return kernels::quantize_row_q4_1_ref(x, reinterpret_cast<kernels::BlockQ4_1*>(dst), n);
    case DType::kQ5_0: return kernels::quantize_row_q5_0_ref(x, reinterpret_cast<kernels::BlockQ5_0*>(dst), n);
    default: return;
  }
}

void rtn_roundtrip(const QuantFormat& f, const float* x, float* y, int64_t n) {
  std::vector<uint8_t> q(row_bytes(f.type, n));
  quantize_row(f, x, q.data(), n);
  kernels::dequantize_row_ref(f.type, q.data(), y, n);
}

}  // namespace slm::compress
