// The k-quant formats (Q2_K..Q6_K): hand-built blocks decoded to values worked
// out by hand from the layouts in ggml-common.h; the activation quantizer;
// the integer dot products against dequantize-then-dot; SIMD against the
// scalar references. Real llama.cpp-quantized files are checked in
// tests/model/quant_ref_test.cpp (they need the GGUF reader).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "slm/core/half.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {
namespace {

TEST(QuantK, UnpackScalesK4) {
  // sc = {1, 2, 3, 4, 33, 47, 63, 0}, m = {0, 1, 2, 3, 17, 40, 63, 5} packed by hand:
  // bytes 0..3 = sc[j] | (sc[j+4] >> 4) << 6, 4..7 = m[j] | (m[j+4] >> 4) << 6,
  // 8..11 = (sc[j+4] & 15) | (m[j+4] & 15) << 4.
  const uint8_t p[12] = {0x81, 0x82, 0xC3, 0x04, 0x40, 0x81, 0xC2, 0x03, 0x11, 0x8F, 0xFF, 0x50};
  uint8_t sc[8], m[8];
  unpack_scales_k4(p, sc, m);
  const uint8_t want_sc[8] = {1, 2, 3, 4, 33, 47, 63, 0}, want_m[8] = {0, 1, 2, 3, 17, 40, 63, 5};
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(sc[j], want_sc[j]) << j;
    EXPECT_EQ(m[j], want_m[j]) << j;
  }
}

TEST(QuantK, UnpackScalesQ3K) {
  // Scale i: low nibble from byte i % 8 (low nibble for i < 8, high for i >= 8),
  // top two bits from byte 8 + i % 4, bits 2 * (i / 4).
  uint8_t p[12] = {};
  p[0] = 0xA5;  // scale 0 low 5, scale 8 low 10
  p[7] = 0x3C;  // scale 7 low 12, scale 15 low 3
  p[8] = 0xE4;  // bits 11 10 01 00: scales 12, 8, 4, 0 get high 3, 2, 1, 0
  p[11] = 0x1B; // bits 00 01 10 11: scales 15, 11, 7, 3 get high 0, 1, 2, 3
  uint8_t sc[16];
  unpack_scales_q3_K(p, sc);
  EXPECT_EQ(sc[0], 5);
  EXPECT_EQ(sc[4], 16);
  EXPECT_EQ(sc[8], 10 + 32);
  EXPECT_EQ(sc[12], 48);
  EXPECT_EQ(sc[7], 12 + 32);
  EXPECT_EQ(sc[15], 3);
  EXPECT_EQ(sc[3], 48);
  EXPECT_EQ(sc[11], 16);
  EXPECT_EQ(sc[1], 0);
}

TEST(QuantK, DequantizeQ4KHandBuilt) {
  BlockQ4_K b;
  b.d = 0x3C00;     // 1
  b.dmin = 0x3800;  // 0.5
  const uint8_t p[12] = {0x81, 0x82, 0xC3, 0x04, 0x40, 0x81, 0xC2, 0x03, 0x11, 0x8F, 0xFF, 0x50};
  std::memcpy(b.scales, p, 12);
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4));
  float y[256];
  dequantize_row_ref(DType::kQ4_K, &b, y, 256);
  const int sc[8] = {1, 2, 3, 4, 33, 47, 63, 0}, m[8] = {0, 1, 2, 3, 17, 40, 63, 5};
  // Sub-block s covers elements 32s..32s+31: low nibbles of qs[32(s/2)..] for even s, high for odd.
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32;
    const uint8_t byte = b.qs[32 * (s / 2) + l];
    const int q = s % 2 == 0 ? (byte & 15) : (byte >> 4);
    EXPECT_EQ(y[e], static_cast<float>(sc[s] * q) - 0.5f * static_cast<float>(m[s])) << e;
  }
  EXPECT_EQ(y[0], 0.f);        // q 0, min 0
  EXPECT_EQ(y[32], 29.5f);     // sub-block 1: 2 * 15 - 0.5 * 1
  EXPECT_EQ(y[200], 472.5f);   // sub-block 6: qs[104] low nibble 8: 63 * 8 - 0.5 * 63
  EXPECT_EQ(y[255], -2.5f);    // sub-block 7: scale 0, min 5
}

TEST(QuantK, DequantizeQ6KHandBuilt) {
  BlockQ6_K b;
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 128; ++j) b.ql[j] = static_cast<uint8_t>(j);
  for (int j = 0; j < 64; ++j) b.qh[j] = static_cast<uint8_t>(j * 7);
  for (int i = 0; i < 16; ++i) b.scales[i] = static_cast<int8_t>(i - 8);
  float y[256];
  dequantize_row_ref(DType::kQ6_K, &b, y, 256);
  // Worked out by hand: (element, ql byte and nibble, qh byte and bits, q, scale).
  EXPECT_EQ(y[0], 128.f);    // ql[0] lo 0, qh[0] bits 0-1 = 0: q 0 - 32; scale -8
  EXPECT_EQ(y[37], 81.f);    // ql[37] lo 5, qh[5]=35 bits 2-3 = 0: q 5 - 32; scale -6
  EXPECT_EQ(y[100], 30.f);   // ql[36] hi 2, qh[4]=28 bits 6-7 = 0: q 2 - 32; scale -2
  EXPECT_EQ(y[200], -24.f);  // ql[72] hi 4, qh[40]=24 bits 4-5 = 1: q 20 - 32; scale 4
  EXPECT_EQ(y[255], 24.5f);  // ql[127] hi 7, qh[63]=185 bits 6-7 = 2: q 39 - 32; scale 7
}

TEST(QuantK, DequantizeQ2KAndQ3KHandBuilt) {
  BlockQ2_K b2;
  for (int i = 0; i < 16; ++i) b2.scales[i] = static_cast<uint8_t>((i % 16) | ((15 - i) << 4));
  for (int i = 0; i < 64; ++i) b2.qs[i] = 0xE4;  // 2-bit fields 0, 1, 2, 3 from the low bits up
  b2.d = 0x3C00;     // 1
  b2.dmin = 0x3400;  // 0.25
  float y[256];
  dequantize_row_ref(DType::kQ2_K, &b2, y, 256);
  // Element 128h + 32j + l has q = j; its sub-block is e / 16.
  EXPECT_EQ(y[0], 0.f - 0.25f * 15);           // sub-block 0: scale 0, min 15, q 0
  EXPECT_EQ(y[40], 2.f * 1 - 0.25f * 13);      // sub-block 2, q 1
  EXPECT_EQ(y[130], 8.f * 0 - 0.25f * 7);      // sub-block 8, q 0
  EXPECT_EQ(y[255], 15.f * 3 - 0.f);           // sub-block 15, q 3

  BlockQ3_K b3 = {};
  b3.d = 0x4000;  // 2
  for (int i = 0; i < 64; ++i) b3.qs[i] = 0xE4;
  for (int i = 0; i < 32; ++i) b3.hmask[i] = static_cast<uint8_t>(i % 2 == 0 ? 0xFF : 0x0F);
  // All scales 33 (= +1): low nibbles 1, top bits 10.
  for (int i = 0; i < 8; ++i) b3.scales[i] = 0x11;
  for (int i = 8; i < 12; ++i) b3.scales[i] = 0xAA;
  dequantize_row_ref(DType::kQ3_K, &b3, y, 256);
  // Element 128h + 32j + l: q = j - (bit 4h + j of hmask[l] ? 0 : 4).
  EXPECT_EQ(y[0], 0.f);     // h 0, j 0, l 0: bit set, q 0
  EXPECT_EQ(y[33], 2.f);    // j 1, l 1: hmask 0x0F bit 1 set, q 1
  EXPECT_EQ(y[129], -8.f);  // h 1, j 0, l 1: bit 4 of 0x0F clear, q 0 - 4
  EXPECT_EQ(y[255], -2.f);  // h 1, j 3, l 31: bit 7 clear, q 3 - 4
  EXPECT_EQ(y[254], 6.f);   // l 30: bit 7 of 0xFF set, q 3
}

TEST(QuantK, DequantizeQ5KFifthBit) {
  BlockQ5_K b = {};
  b.d = 0x3C00;
  b.dmin = 0;
  // All scales 1: bytes 0..3 = 1, bytes 8..11 low nibbles 1.
  const uint8_t p[12] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
  std::memcpy(b.scales, p, 12);
  for (int l = 0; l < 32; ++l) b.qh[l] = static_cast<uint8_t>(1u << (l % 8));  // element l of sub-block l % 8
  for (int i = 0; i < 128; ++i) b.qs[i] = 0x21;  // lo 1, hi 2
  float y[256];
  dequantize_row_ref(DType::kQ5_K, &b, y, 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32;
    const float want = static_cast<float>((s % 2 == 0 ? 1 : 2) + (l % 8 == s ? 16 : 0));
    EXPECT_EQ(y[e], want) << e;
  }
}

TEST(QuantK, ActivationQuantizer) {
  std::vector<float> x(512);
  for (int i = 0; i < 512; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (i < 256 ? 2.0f : 0.01f);
  x[7] = -2.54f;  // the largest magnitude of block 0
  std::vector<ActQ8x256> a(2);
  quantize_row_act_q8x256_ref(x.data(), a.data(), 512);
  EXPECT_FLOAT_EQ(a[0].d, 2.54f / 127.0f);
  EXPECT_EQ(a[0].qs[7], -127);
  for (int b = 0; b < 2; ++b) {
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += a[b].qs[16 * s + l];
      EXPECT_EQ(a[b].bsums[s], sum);
    }
    for (int j = 0; j < 256; ++j)
      EXPECT_LE(std::fabs(a[b].d * a[b].qs[j] - x[256 * b + j]), 0.5001f * a[b].d) << b << " " << j;
  }
  std::vector<float> z(256, 0.0f);
  quantize_row_act_q8x256_ref(z.data(), a.data(), 256);
  EXPECT_EQ(a[0].d, 0.0f);
  for (int j = 0; j < 256; ++j) EXPECT_EQ(a[0].qs[j], 0);
}

// Random k-quant blocks: random bytes with sane fp16 super-scales.
std::vector<uint8_t> random_k_blocks(DType t, int64_t n_blocks, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(0.001f, 0.05f);
  const int bb = dtype_info(t).block_bytes;
  std::vector<uint8_t> w(static_cast<size_t>(n_blocks * bb));
  for (auto& v : w) v = static_cast<uint8_t>(byte(rng));
  for (int64_t b = 0; b < n_blocks; ++b) {
    uint8_t* p = w.data() + b * bb;
    switch (t) {
      case DType::kQ2_K: reinterpret_cast<BlockQ2_K*>(p)->d = f32_to_f16(u(rng));
                         reinterpret_cast<BlockQ2_K*>(p)->dmin = f32_to_f16(u(rng)); break;
      case DType::kQ3_K: reinterpret_cast<BlockQ3_K*>(p)->d = f32_to_f16(u(rng)); break;
      case DType::kQ4_K: reinterpret_cast<BlockQ4_K*>(p)->d = f32_to_f16(u(rng));
                         reinterpret_cast<BlockQ4_K*>(p)->dmin = f32_to_f16(u(rng)); break;
      case DType::kQ5_K: reinterpret_cast<BlockQ5_K*>(p)->d = f32_to_f16(u(rng));
                         reinterpret_cast<BlockQ5_K*>(p)->dmin = f32_to_f16(u(rng)); break;
      case DType::kQ6_K: reinterpret_cast<BlockQ6_K*>(p)->d = f32_to_f16(u(rng)); break;
      default: break;
    }
  }
  return w;
}

std::vector<ActQ8x256> random_act(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  std::vector<ActQ8x256> a(static_cast<size_t>(n / 256));
  quantize_row_act_q8x256_ref(x.data(), a.data(), n);
  return a;
}

struct KCase {
  DType type;
  VecDotFn ref;
};

const KCase kKCases[] = {
    {DType::kQ2_K, vec_dot_q2_K_q8x256_ref}, {DType::kQ3_K, vec_dot_q3_K_q8x256_ref},
    {DType::kQ4_K, vec_dot_q4_K_q8x256_ref}, {DType::kQ5_K, vec_dot_q5_K_q8x256_ref},
    {DType::kQ6_K, vec_dot_q6_K_q8x256_ref},
};

TEST(QuantK, IntegerDotMatchesDequantizedDot) {
  std::mt19937 rng(42);
  for (const KCase& c : kKCases) {
    for (int64_t nb : {1, 3, 7}) {
      const int64_t n = nb * 256;
      for (int trial = 0; trial < 5; ++trial) {
        std::vector<uint8_t> w = random_k_blocks(c.type, nb, rng);
        std::vector<ActQ8x256> a = random_act(n, rng);
        std::vector<float> wf(static_cast<size_t>(n));
        dequantize_row_ref(c.type, w.data(), wf.data(), n);
        double want = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
          const double p = static_cast<double>(wf[i]) * a[i / 256].d * a[i / 256].qs[i % 256];
          want += p;
          mag += std::fabs(p);
        }
        const double got = c.ref(n, w.data(), a.data());
        EXPECT_LT(std::fabs(got - want), 2e-6 * mag)
            << dtype_name(c.type) << " n=" << n << " got " << got << " want " << want << " mag " << mag;
      }
    }
  }
}

TEST(QuantK, SimdMatchesReference) {
  std::mt19937 rng(7);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelSet& ks = kernel_set(isa);
    if (ks.isa != isa) {
      std::printf("[ skip ] %s: this CPU lacks it\n", isa_name(isa));
      continue;
    }
    for (const KCase& c : kKCases) {
      const WeightKernels& kf = ks.of(c.type);
      if (kf.vec_dot == nullptr || kf.vec_dot == c.ref) {
        std::printf("[ skip ] %s %s: no SIMD kernel registered\n", isa_name(isa), std::string(dtype_name(c.type)).c_str());
        continue;
      }
      ASSERT_EQ(kf.act_type, ActType::kQ8x256) << dtype_name(c.type);
      ASSERT_NE(ks.quantize_act[static_cast<int>(ActType::kQ8x256)], nullptr);
      for (int64_t nb : {1, 3, 7, 11}) {
        const int64_t n = nb * 256;
        std::vector<uint8_t> w = random_k_blocks(c.type, nb, rng);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& v : x) v = nd(rng);
        std::vector<ActQ8x256> ar(static_cast<size_t>(nb)), af(static_cast<size_t>(nb));
        quantize_row_act_q8x256_ref(x.data(), ar.data(), n);
        ks.quantize_act[static_cast<int>(ActType::kQ8x256)](x.data(), af.data(), n);
        ASSERT_EQ(std::memcmp(ar.data(), af.data(), ar.size() * sizeof(ActQ8x256)), 0)
            << isa_name(isa) << ": activation quantizers differ at n=" << n;
        std::vector<float> wf(static_cast<size_t>(n));
        dequantize_row_ref(c.type, w.data(), wf.data(), n);
        double mag = 0;
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(static_cast<double>(wf[i]) * ar[i / 256].d * ar[i / 256].qs[i % 256]);
        const double r = c.ref(n, w.data(), ar.data());
        const double f = kf.vec_dot(n, w.data(), af.data());
        // Same integers, different float summation order only.
        EXPECT_LT(std::fabs(r - f), 1e-6 * mag) << isa_name(isa) << " " << dtype_name(c.type) << " n=" << n;
      }
    }
  }
}

// Not a correctness test: prints ns per 256-element block for each ISA.
TEST(QuantK, SimdSpeed) {
  std::mt19937 rng(3);
  const int64_t nb = 16, n = nb * 256;  // a 4096-wide row
  std::vector<ActQ8x256> a = random_act(n, rng);
  for (const KCase& c : kKCases) {
    std::vector<uint8_t> w = random_k_blocks(c.type, nb, rng);
    std::printf("[ speed ] %s:", std::string(dtype_name(c.type)).c_str());
    for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
      const KernelSet& ks = kernel_set(isa);
      const VecDotFn f = isa == Isa::kRef ? c.ref : ks.of(c.type).vec_dot;
      if (ks.isa != isa || f == nullptr || (isa != Isa::kRef && f == c.ref)) continue;
      const int reps = isa == Isa::kRef ? 200 : 5000;
      volatile float sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) sink = sink + f(n, w.data(), a.data());
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      std::printf("  %s %.1f ns/block", isa_name(isa), ns / (reps * nb));
    }
    std::printf("\n");
  }
}

}  // namespace
}  // namespace slm::kernels
