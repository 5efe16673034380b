// Every SIMD dot product against its scalar reference, on random inputs of
// odd sizes (normalised error per type), and the activation quantizers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "slm/core/half.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"
#include "random_weights.h"

namespace slm::kernels {
namespace {

struct Case {
  DType type;
  double max_nmse;  // SIMD vs ref, same inputs: only summation order differs
};

class VecDot : public ::testing::TestWithParam<Case> {};

TEST_P(VecDot, SimdMatchesReference) {
  const Case c = GetParam();
  const KernelSet& ref = kernel_set(Isa::kRef);
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelSet& ks = kernel_set(isa);
    if (ks.isa != isa) {
      std::printf("[ skip ] %s: this CPU lacks it\n", isa_name(isa));
      continue;
    }
    const WeightKernels& kr = ref.of(c.type);
    const WeightKernels& kf = ks.of(c.type);
    ASSERT_NE(kf.vec_dot, nullptr);
    const int block = dtype_info(c.type).block_size;
    // Odd sizes: odd block counts, and for float types lengths that leave a tail.
    for (int64_t n : {int64_t{block * 1}, int64_t{block * 3}, int64_t{block * 7}, int64_t{block * 33},
                      int64_t{block == 1 ? 1003 : block * 11}}) {
      std::vector<uint8_t> w = random_weights(c.type, 1, n, rng);
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = nd(rng);
      // Each set converts the activations its own way (layouts may differ by ISA).
      const int64_t ab = act_row_bytes(kr.act_type, n), abf = act_row_bytes(kf.act_type, n);
      std::vector<uint8_t> act_r(static_cast<size_t>(ab)), act_f(static_cast<size_t>(abf));
      ref.quantize_act[static_cast<int>(kr.act_type)](x.data(), act_r.data(), n);
      ks.quantize_act[static_cast<int>(kf.act_type)](x.data(), act_f.data(), n);
      if (kf.act_type == kr.act_type) {
        ASSERT_EQ(act_r, act_f) << isa_name(isa) << ": activation quantizers differ";
      }
      const double r = kr.vec_dot(n, w.data(), act_r.data());
      const double f = kf.vec_dot(n, w.data(), act_f.data());
      // Normalise by the sum of |products| so a near-zero dot does not inflate the error.
      std::vector<float> wf(static_cast<size_t>(n));
      dequantize_row_ref(c.type, w.data(), wf.data(), n);
      double scale = 0;
      for (int64_t i = 0; i < n; ++i) scale += std::fabs(wf[i] * x[i]);
      const double err = (r - f) * (r - f) / (scale * scale + 1e-30);
      EXPECT_LT(err, c.max_nmse) << dtype_name(c.type) << " " << isa_name(isa) << " n=" << n << " ref=" << r
                                 << " simd=" << f;
      if (kf.dot_tile == nullptr) continue;
      // Tiles of weight rows x activation rows: each entry equals its own reference dot.
      std::vector<uint8_t> ws = random_weights(c.type, kTileW, n, rng);
      const int64_t wb = static_cast<int64_t>(row_bytes(c.type, n));
      std::vector<float> xs(static_cast<size_t>(n * kTileA));
      for (auto& v : xs) v = nd(rng);
      std::vector<uint8_t> acts(static_cast<size_t>(ab * kTileA)), actsf(static_cast<size_t>(abf * kTileA));
      for (int j = 0; j < kTileA; ++j) {
        ref.quantize_act[static_cast<int>(kr.act_type)](xs.data() + j * n, acts.data() + j * ab, n);
        ks.quantize_act[static_cast<int>(kf.act_type)](xs.data() + j * n, actsf.data() + j * abf, n);
      }
      std::vector<float> wrow(static_cast<size_t>(n));
      for (int nw = 1; nw <= kTileW; ++nw) {
        for (int na = 1; na <= kTileA; ++na) {
          float out[kTileW * kTileA];
          kf.dot_tile(n, ws.data(), wb, nw, actsf.data(), abf, na, out);
          for (int i = 0; i < nw; ++i) {
            dequantize_row_ref(c.type, ws.data() + i * wb, wrow.data(), n);
            for (int j = 0; j < na; ++j) {
              const double want = kr.vec_dot(n, ws.data() + i * wb, acts.data() + j * ab);
              double sc = 0;
              for (int64_t e = 0; e < n; ++e) sc += std::fabs(wrow[e] * xs[j * n + e]);
              const double got = out[i * na + j];
              EXPECT_LT((want - got) * (want - got) / (sc * sc + 1e-30), c.max_nmse)
                  << dtype_name(c.type) << " dot_tile " << isa_name(isa) << " n=" << n << " tile " << nw << "x" << na
                  << " at " << i << "," << j;
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, VecDot,
                         ::testing::Values(Case{DType::kF32, 1e-12}, Case{DType::kF16, 1e-12},
                                           Case{DType::kBF16, 1e-12}, Case{DType::kQ8_0, 1e-12},
                                           Case{DType::kQ4_0, 1e-12}, Case{DType::kQ4_1, 1e-12},
                                           Case{DType::kQ5_0, 1e-12}, Case{DType::kQ4_K, 1e-12},
                                           Case{DType::kQ6_K, 1e-12}),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

// The int8 activations approximate the floats within half a quantization step.
TEST(QuantizeAct, Q8x32WithinHalfAStep) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  std::vector<float> x(32 * 9);
  for (auto& v : x) v = nd(rng);
  x[5] = 0;  // and an all-zero block
  for (int j = 32; j < 64; ++j) x[j] = 0;
  std::vector<ActQ8x32> a(9);
  kernel_set(Isa::kRef).quantize_act[static_cast<int>(ActType::kQ8x32)](x.data(), a.data(), 32 * 9);
  for (int b = 0; b < 9; ++b) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      EXPECT_LE(std::fabs(a[b].d * a[b].qs[j] - x[b * 32 + j]), a[b].d * 0.5f + 1e-6f);
      sum += a[b].qs[j];
    }
    EXPECT_EQ(sum, a[b].sum);
  }
  EXPECT_EQ(a[1].d, 0.0f);
}

// A SIMD path that is broken must fail the comparison: feed the reference a
// different input and check the test's measure notices.
TEST(VecDotSelfCheck, MeasureDetectsAWrongResult) {
  std::vector<float> w(64, 1.0f), x(64, 1.0f), x2(64, 1.0f);
  x2[10] = 2.0f;
  const KernelSet& ref = kernel_set(Isa::kRef);
  const double a = ref.of(DType::kF32).vec_dot(64, w.data(), x.data());
  const double b = kernels().of(DType::kF32).vec_dot(64, w.data(), x2.data());
  EXPECT_GT((a - b) * (a - b) / (64.0 * 64.0), 1e-12);
}

}  // namespace
}  // namespace slm::kernels
