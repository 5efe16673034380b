// Quantized block formats and half-precision conversions against values
// worked out by hand from the format definitions (ggml-common.h layouts,
// IEEE 754 binary16, bfloat16 = the top half of a float32).
// Real-file checks (llama.cpp's quantized weights vs the f32 originals) live in
// tests/model/quant_ref_test.cpp, since they need the GGUF reader.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "slm/core/half.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {
namespace {

float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(QuantQ8_0, MaxMagnitude127GivesScaleOne) {
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j * 8 - 127);  // -127 .. 121
  x[5] = 2.5f;    // halves round away from zero, as roundf does
  x[6] = -2.5f;
  x[7] = 0.49f;
  BlockQ8_0 b;
  quantize_row_q8_0_ref(x, &b, 32);
  EXPECT_EQ(b.d, 0x3C00);  // 1.0
  for (int j = 0; j < 32; ++j) {
    const int want = j == 5 ? 3 : j == 6 ? -3 : j == 7 ? 0 : j * 8 - 127;
    EXPECT_EQ(b.qs[j], want) << j;
  }
  float y[32];
  dequantize_row_ref(DType::kQ8_0, &b, y, 32);
  EXPECT_EQ(y[0], -127.f);
  EXPECT_EQ(y[5], 3.f);
  EXPECT_EQ(y[31], 121.f);
}

TEST(QuantQ8_0, ScaleAndRounding) {
  // Two blocks: max |x| = 15.5 -> d = 15.5/127; and all zeros -> d = 0, q = 0.
  float x[64] = {};
  for (int j = 0; j < 32; ++j) x[j] = -0.5f * static_cast<float>(j);
  BlockQ8_0 b[2];
  quantize_row_q8_0_ref(x, b, 64);
  EXPECT_NEAR(f16_to_f32(b[0].d), 15.5f / 127.f, 1e-4f);
  EXPECT_EQ(b[0].qs[31], -127);
  EXPECT_EQ(b[0].qs[1], -4);   // 0.5 * 127 / 15.5 = 4.097
  EXPECT_EQ(b[0].qs[10], -41);  // 5 * 127 / 15.5 = 40.97
  EXPECT_EQ(b[1].d, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b[1].qs[j], 0);
}

TEST(QuantQ8_0, DequantizeHandBuiltBlock) {
  BlockQ8_0 b;
  b.d = 0x3400;  // 0.25
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
  float y[32];
  dequantize_row_ref(DType::kQ8_0, &b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.25f * static_cast<float>(j - 16)) << j;
}

TEST(QuantQ4_0, NegativeExtremeGivesScaleOne) {
  // The value of largest magnitude, -8, maps to q = 0 with d = max / -8 = 1.
  float x[32];
  for (int j = 0; j < 32; ++j) x[j] = 0;
  x[0] = -8.f;
  x[1] = 7.f;
  x[2] = 0.5f;    // 8.5 + 0.5 = 9.0 -> q 9 -> 1
  x[3] = -0.5f;   // 8.0 -> q 8 -> 0
  x[4] = 3.4f;    // 11.9 -> 11 -> 3
  x[16] = -3.6f;  // 4.9 -> 4 -> -4
  x[17] = 7.9f;   // 16.4 -> 16 -> clipped to 15 -> 7
  BlockQ4_0 b;
  quantize_row_q4_0_ref(x, &b, 32);
  EXPECT_EQ(b.d, 0x3C00);
  // Byte j packs element j (low nibble) and element j + 16 (high nibble).
  EXPECT_EQ(b.qs[0], 0x40);  // q0 = 0, q16 = 4
  EXPECT_EQ(b.qs[1], 0xFF);  // q1 = 15, q17 = 15
  EXPECT_EQ(b.qs[2], 0x89);
  EXPECT_EQ(b.qs[3], 0x88);
  EXPECT_EQ(b.qs[4], 0x8B);
  float y[32];
  dequantize_row_ref(DType::kQ4_0, &b, y, 32);
  const float want[] = {-8, 7, 1, 0, 3};
  for (int j = 0; j < 5; ++j) EXPECT_EQ(y[j], want[j]) << j;
  EXPECT_EQ(y[16], -4.f);
  EXPECT_EQ(y[17], 7.f);
  EXPECT_EQ(y[31], 0.f);
}

TEST(QuantQ4_0, PositiveExtremeFlipsTheScale) {
  float x[32] = {};
  x[0] = 8.f;   // d = -1: 8 -> q 0 -> -1 * (0 - 8) = 8
  x[1] = -8.f;  // -8 * -1 + 8.5 = 16.5 -> clipped to 15 -> -7: the one-sided clip of Q4_0
  BlockQ4_0 b;
  quantize_row_q4_0_ref(x, &b, 32);
  EXPECT_EQ(b.d, 0xBC00);  // -1.0
  float y[32];
  dequantize_row_ref(DType::kQ4_0, &b, y, 32);
  EXPECT_EQ(y[0], 8.f);
  EXPECT_EQ(y[1], -7.f);
  EXPECT_EQ(y[2], 0.f);
}

TEST(QuantQ4_1, DequantizeHandBuiltBlock) {
  BlockQ4_1 b;
  b.d = 0x3800;  // 0.5
  b.m = 0xBC00;  // -1
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row_ref(DType::kQ4_1, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j) - 1.f) << j;
    EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(15 - j) - 1.f) << j;
  }
}

TEST(QuantQ5_0, DequantizeHandBuiltBlock) {
  BlockQ5_0 b;
  b.d = 0x4000;  // 2
  // qh as little-endian u32 0xAAAA5555: elements 0..15 get a fifth bit when
  // even, elements 16..31 when their low index j is odd.
  b.qh[0] = 0x55;
  b.qh[1] = 0x55;
  b.qh[2] = 0xAA;
  b.qh[3] = 0xAA;
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | (j << 4));
  float y[32];
  dequantize_row_ref(DType::kQ5_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    const int lo = j | (j % 2 == 0 ? 16 : 0);
    const int hi = j | (j % 2 == 1 ? 16 : 0);
    EXPECT_EQ(y[j], 2.f * static_cast<float>(lo - 16)) << j;
    EXPECT_EQ(y[j + 16], 2.f * static_cast<float>(hi - 16)) << j;
  }
  EXPECT_EQ(y[0], 0.f);     // q = 16
  EXPECT_EQ(y[1], -30.f);   // q = 1
  EXPECT_EQ(y[16], -32.f);  // q = 0
  EXPECT_EQ(y[31], 30.f);   // q = 31
}

TEST(QuantRows, SeveralBlocksAndPlainTypes) {
  // Q8_0 round trip over a 3-block row stays within half a step per block.
  float x[96];
  for (int i = 0; i < 96; ++i) x[i] = std::sin(0.7f * static_cast<float>(i)) * static_cast<float>(1 + i / 32);
  BlockQ8_0 b[3];
  quantize_row_q8_0_ref(x, b, 96);
  float y[96];
  dequantize_row_ref(DType::kQ8_0, b, y, 96);
  for (int i = 0; i < 96; ++i) EXPECT_NEAR(y[i], x[i], 0.6f * f16_to_f32(b[i / 32].d)) << i;

  const uint16_t h[3] = {0x3C00, 0xC000, 0x0001};
  float fy[3];
  dequantize_row_ref(DType::kF16, h, fy, 3);
  EXPECT_EQ(fy[0], 1.f);
  EXPECT_EQ(fy[1], -2.f);
  EXPECT_EQ(fy[2], std::ldexp(1.f, -24));
  const uint16_t bh[2] = {0x3F80, 0xC0A0};
  dequantize_row_ref(DType::kBF16, bh, fy, 2);
  EXPECT_EQ(fy[0], 1.f);
  EXPECT_EQ(fy[1], -5.f);
  const int32_t iv[2] = {-7, 1 << 20};
  dequantize_row_ref(DType::kI32, iv, fy, 2);
  EXPECT_EQ(fy[0], -7.f);
  EXPECT_EQ(fy[1], 1048576.f);
}

// ---- f16 ----

TEST(Half, F32ToF16ByHand) {
  EXPECT_EQ(f32_to_f16(0.f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.f), 0x8000);
  EXPECT_EQ(f32_to_f16(1.f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.333251953125f), 0x3555);
  EXPECT_EQ(f32_to_f16(65504.f), 0x7BFF);  // largest finite
  EXPECT_EQ(f32_to_f16(65519.f), 0x7BFF);  // below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.f), 0x7C00);  // halfway: ties to even, which is "65536" = inf
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e6f), 0xFC00);
  // Round to nearest even between 1 and 1 + 2^-10.
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(1.f, -11)), 0x3C00);                        // tie -> even (0)
  EXPECT_EQ(f32_to_f16(1.f + 3 * std::ldexp(1.f, -11)), 0x3C02);                    // tie -> even (2)
  EXPECT_EQ(f32_to_f16(1.f + std::ldexp(1.f, -11) + std::ldexp(1.f, -20)), 0x3C01);  // above the tie
  EXPECT_EQ(f32_to_f16(1.f - std::ldexp(1.f, -11)), 0x3BFF);  // exact, just below 1
  EXPECT_EQ(f32_to_f16(1.f - std::ldexp(1.f, -12)), 0x3C00);  // tie: rounds up across the exponent to even
  // Subnormals: units of 2^-24.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -14)), 0x0400);   // smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -24)), 0x0001);   // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -25)), 0x0000);   // half of it: tie -> even (0)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.f, -25)), 0x0002);   // 1.5 units: tie -> 2
  EXPECT_EQ(f32_to_f16(std::ldexp(5.f, -25)), 0x0002);   // 2.5 units: tie -> 2
  EXPECT_EQ(f32_to_f16(-std::ldexp(7.f, -25)), 0x8004);  // -3.5 units: tie -> -4
  EXPECT_EQ(f32_to_f16(std::ldexp(2047.f, -25)), 0x0400);  // 1023.5 units: tie -> 1024 = smallest normal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.f, -30)), 0x0000);
  EXPECT_EQ(f32_to_f16(-std::ldexp(1.f, -30)), 0x8000);
  EXPECT_EQ(f32_to_f16(bits_to_f32(0x00000001)), 0x0000);  // f32 subnormal
  // Infinities and NaN.
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  const uint16_t snan = f32_to_f16(bits_to_f32(0xFF800001));  // payload only in low bits
  EXPECT_EQ(snan & 0xFC00, 0xFC00);
  EXPECT_NE(snan & 0x03FF, 0) << "a NaN must not become infinity";
}

TEST(Half, F16ToF32ByHand) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.f);
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.f);
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.f, -14));
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.f, -24));
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.f, -24));
  EXPECT_EQ(f16_to_f32(0x0200), std::ldexp(1.f, -15));
  EXPECT_EQ(f16_to_f32(0x0000), 0.f);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7C01)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0xFFFF)));
}

TEST(Half, EveryF16RoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Half, F16RoundsToNearest) {
  // Between consecutive halves a, b: values below the midpoint go to a, above to b.
  for (uint32_t h = 0; h < 0x7BFF; h += 37) {
    const float a = f16_to_f32(static_cast<uint16_t>(h)), b = f16_to_f32(static_cast<uint16_t>(h + 1));
    const float mid = a + (b - a) / 2;  // exact: a, b have few mantissa bits
    EXPECT_EQ(f32_to_f16(std::nextafter(mid, a)), h);
    EXPECT_EQ(f32_to_f16(std::nextafter(mid, b)), h + 1);
    EXPECT_EQ(f32_to_f16(mid), (h % 2 == 0) ? h : h + 1);
  }
}

// ---- bf16 ----

TEST(BFloat16, ByHand) {
  EXPECT_EQ(f32_to_bf16(1.f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(-5.f), 0xC0A0);
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3F80);      // tie -> even
  EXPECT_EQ(f32_to_bf16(1.f + 3 * std::ldexp(1.f, -8)), 0x3F82);  // tie -> even
  EXPECT_EQ(f32_to_bf16(1.f + std::ldexp(1.f, -8) + std::ldexp(1.f, -20)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x3F80FFFF)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x7F7F7FFF)), 0x7F7F);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x00000001)), 0x0000);  // f32 subnormal, rounds down
  EXPECT_EQ(f32_to_bf16(bits_to_f32(0x00018000)), 0x0002);  // subnormal tie -> even
  EXPECT_EQ(f32_to_bf16(-0.f), 0x8000);
  // A NaN whose payload sits only in the low 16 bits must stay a NaN.
  const uint16_t nan = f32_to_bf16(bits_to_f32(0x7F800001));
  EXPECT_EQ(nan & 0x7F80, 0x7F80);
  EXPECT_NE(nan & 0x007F, 0);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.f);
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.f, -133));
  EXPECT_EQ(bf16_to_f32(0xFF80), -std::numeric_limits<float>::infinity());
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
  }
}

}  // namespace
}  // namespace slm::kernels
