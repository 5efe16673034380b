// The dispatched small ops (RMSNorm, SwiGLU, rotary embedding in two steps)
// against their scalar references, on odd sizes, for every ISA this CPU has.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <random>

#include "slm/kernels/dispatch.h"
#include "slm/kernels/ops.h"

namespace slm::kernels {
namespace {

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return num / (den + 1e-30);
}

TEST(Ops, RmsNormAndSwigluMatchReference) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) {
    const KernelSet& ks = kernel_set(isa);
    for (int64_t n : {1, 7, 16, 33, 288, 1001}) {
      std::vector<float> x(n), w(n), g(n), u(n), got(n), want(n);
      for (auto* v : {&x, &w, &g, &u})
        for (auto& e : *v) e = nd(rng);
      g[0] = -90.0f;  // far tails of the exponential
      if (n > 1) g[1] = 95.0f;
      ks.rmsnorm(x.data(), w.data(), 1e-5f, got.data(), n);
      rmsnorm_ref(x.data(), w.data(), 1e-5f, want.data(), n);
      EXPECT_LT(nmse(got, want), 1e-12) << isa_name(ks.isa) << " rmsnorm n=" << n;
      ks.swiglu(g.data(), u.data(), got.data(), n);
      swiglu_ref(g.data(), u.data(), want.data(), n);
      EXPECT_LT(nmse(got, want), 1e-12) << isa_name(ks.isa) << " swiglu n=" << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(std::isfinite(got[i])) << isa_name(ks.isa) << " at " << i;
    }
  }
}

TEST(Ops, ToF16RoundsAsTheReference) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(1003);
  for (auto& e : x) e = nd(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 40) - 24));
  // Ties, subnormals, overflow, infinities, zeros.
  const float special[] = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 6e-8f, 3e-5f, -7e-6f, 65504.0f, 65520.0f,
                           70000.0f, -1e9f, INFINITY, -INFINITY, 0.0f, -0.0f};
  for (size_t i = 0; i < std::size(special); ++i) x[i] = special[i];
  std::vector<uint16_t> want(x.size()), got(x.size());
  kernel_set(Isa::kRef).to_f16(x.data(), want.data(), static_cast<int64_t>(x.size()));
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    kernel_set(isa).to_f16(x.data(), got.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], want[i]) << isa_name(isa) << " x=" << x[i];
  }
}

TEST(Ops, ExpSumMatchesReference) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 8.0f);
  for (int64_t n : {1, 7, 16, 33, 1001, 32000}) {
    std::vector<float> x(n), want(n), got(n);
    for (auto& e : x) e = nd(rng);
    x[0] = -INFINITY;  // a masked token: exactly 0 (alone: -inf - -inf, still 0)
    if (n > 2) x[2] = -200.0f;
    const float mx = *std::max_element(x.begin(), x.end());
    const double sw = kernel_set(Isa::kRef).exp_sum(x.data(), mx, want.data(), n);
    for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
      const double sg = kernel_set(isa).exp_sum(x.data(), mx, got.data(), n);
      EXPECT_NEAR(sg, sw, 1e-6 * sw) << isa_name(isa) << " n=" << n;
      EXPECT_EQ(got[0], 0.0f);
      if (n > 2) {
        EXPECT_EQ(got[2], 0.0f);
      }
      for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[i], want[i], 4e-6f * want[i] + 1e-30f) << isa_name(isa) << " at " << i;
    }
  }
}

TEST(Ops, RopeTableThenApplyMatchesReference) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (bool interleaved : {true, false}) {
    for (int64_t n_rot : {2, 24, 64}) {
      std::vector<float> freqs(n_rot / 2);
      for (int64_t i = 0; i < n_rot / 2; ++i) freqs[i] = std::pow(10000.0f, -2.0f * i / n_rot);
      for (int64_t pos : {0, 1, 17, 4000}) {
        std::vector<float> x(n_rot + 6), a, b, cs(n_rot);  // dims past n_rot stay untouched
        for (auto& e : x) e = nd(rng);
        a = b = x;
        rope_table(n_rot, pos, freqs.data(), cs.data());
        rope_apply(a.data(), n_rot, cs.data(), interleaved);
        rope_ref(b.data(), n_rot, pos, freqs.data(), interleaved);
        EXPECT_EQ(a, b) << "n_rot " << n_rot << " pos " << pos;
        for (size_t i = n_rot; i < x.size(); ++i) EXPECT_EQ(a[i], x[i]);
      }
    }
  }
}

}  // namespace
}  // namespace slm::kernels
