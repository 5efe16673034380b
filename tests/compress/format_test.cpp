// Plain int4 / int8 with group size G in standard GGUF blocks (format.h):
// hand-computed blocks, shared parameters per group, parsing and its errors.
#include <gtest/gtest.h>

#include <vector>

#include "slm/compress/format.h"
#include "slm/core/half.h"
#include "slm/kernels/quant.h"

namespace slm::compress {
namespace {

QuantFormat parse(const char* type, int64_t group) {
  auto f = parse_quant_format(type, group);
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? *f : QuantFormat{};
}

TEST(Format, Int4HandComputed) {
  // Block 0: (j % 16) / 2 - 2, in [-2, 5.5]: d = 7.5 / 15 = 0.5, zero point 4,
  // m = -2, codes j % 16. Block 1: twice that, [-4, 11]: d = 1, m = -4.
  std::vector<float> x(64);
  for (int j = 0; j < 64; ++j) x[j] = (j < 32 ? 1.f : 2.f) * (static_cast<float>(j % 16) / 2 - 2);
  std::vector<uint8_t> q(row_bytes(DType::kQ4_1, 64));
  const auto* b = reinterpret_cast<const kernels::BlockQ4_1*>(q.data());
  // Groups of 32: each block its own parameters; every value on its grid.
  quantize_row(parse("int4", 32), x.data(), q.data(), 64);
  EXPECT_EQ(b[0].d, 0x3800);  // 0.5
  EXPECT_EQ(b[0].m, 0xc000);  // -2
  EXPECT_EQ(b[1].d, 0x3c00);  // 1
  EXPECT_EQ(b[1].m, 0xc400);  // -4
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 16; ++j) EXPECT_EQ(b[k].qs[j], j | (j << 4)) << k << " " << j;
  std::vector<float> y(64);
  kernels::dequantize_row_ref(DType::kQ4_1, q.data(), y.data(), 64);
  EXPECT_EQ(y, x);
  // The whole row (group 0): both blocks carry the row's d = 1 and m = -4;
  // block 0's halves land on every other code.
  quantize_row(parse("int4", -1), x.data(), q.data(), 64);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(b[k].d, 0x3c00) << k;
    EXPECT_EQ(b[k].m, 0xc400) << k;
  }
  const GroupParams p{1.f, -4.f};
  const QuantFormat row = parse("int4", 0);
  EXPECT_EQ(group_code(row, -2.f, p), 2);
  EXPECT_EQ(group_code(row, 100.f, p), 15);  // clamped
  EXPECT_EQ(group_value(row, 2, p), -2.f);
}

TEST(Format, Int8SharesOneScalePerGroup) {
  // Block 0 reaches 127, block 1 only 8: one row scale d = 1 for both, or
  // block 1 its own d = 8 / 127 with groups of 32.
  std::vector<float> x(64);
  for (int j = 0; j < 64; ++j) x[j] = j < 32 ? static_cast<float>(127 - 8 * j) : static_cast<float>(j % 17 - 8);
  std::vector<uint8_t> q(row_bytes(DType::kQ8_0, 64));
  const auto* b = reinterpret_cast<const kernels::BlockQ8_0*>(q.data());
  quantize_row(parse("int8", 0), x.data(), q.data(), 64);
  EXPECT_EQ(b[0].d, 0x3c00);
  EXPECT_EQ(b[1].d, 0x3c00);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b[1].qs[j], (32 + j) % 17 - 8) << j;
  quantize_row(parse("int8", 32), x.data(), q.data(), 64);
  EXPECT_EQ(b[1].d, f32_to_f16(8.f / 127));
  std::vector<float> y(64);
  kernels::dequantize_row_ref(DType::kQ8_0, q.data(), y.data(), 64);
  for (int j = 0; j < 64; ++j) EXPECT_NEAR(y[j], x[j], j < 32 ? 0.5 : 0.04) << j;
}

TEST(Format, ParseAndErrors) {
  EXPECT_EQ(parse("int4", -1).name(), "int4 row");
  EXPECT_EQ(parse("INT8", 128).name(), "int8 g128");
  EXPECT_EQ(parse("int4", 128).type, DType::kQ4_1);
  EXPECT_EQ(parse("q4_k", -1).type, DType::kQ4_K);
  EXPECT_EQ(parse("Q4_K", -1).block(), 256);
  auto bad = parse_quant_format("int4", 48);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("multiple of 32"), std::string::npos);
  EXPECT_FALSE(parse_quant_format("Q4_0", 32).ok());  // a GGUF type has its own blocks
  EXPECT_FALSE(parse_quant_format("int3", -1).ok());
  EXPECT_FALSE(has_groups(parse("Q6_K", -1)));
  EXPECT_TRUE(has_groups(parse("int4", 0)));
}

}  // namespace
}  // namespace slm::compress
