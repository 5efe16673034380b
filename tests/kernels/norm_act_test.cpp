// LayerNorm and the two GELUs (scalar kernels for GPT-2, BERT and Gemma)
// against values computed independently: closed forms in long double.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "slm/kernels/ops.h"

namespace slm::kernels {
namespace {

TEST(NormAct, LayerNormMatchesTheDefinition) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(3.0f, 2.0f);  // a mean far from 0, as after a residual add
  for (int64_t n : {1, 2, 7, 33, 768}) {
    std::vector<float> x(n), w(n), b(n), out(n);
    for (auto* v : {&x, &w, &b})
      for (auto& e : *v) e = nd(rng);
    for (bool with_bias : {true, false}) {
      layernorm(x.data(), w.data(), with_bias ? b.data() : nullptr, 1e-5f, out.data(), n);
      long double mean = 0, var = 0;
      for (float e : x) mean += e;
      mean /= n;
      for (float e : x) var += (e - mean) * (e - mean);
      var /= n;
      for (int64_t i = 0; i < n; ++i) {
        const long double want = (x[i] - mean) / std::sqrt(var + 1e-5L) * w[i] + (with_bias ? b[i] : 0.0f);
        EXPECT_NEAR(out[i], static_cast<double>(want), 1e-5 * (1 + std::fabs(static_cast<double>(want)))) << n << " " << i;
      }
    }
  }
}

TEST(NormAct, GeluExactAndTanh) {
  std::vector<float> x;
  for (float v = -6.0f; v <= 6.0f; v += 0.37f) x.push_back(v);
  std::vector<float> exact = x, approx = x;
  gelu(exact.data(), static_cast<int64_t>(x.size()));
  gelu_tanh(approx.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const long double v = x[i];
    const long double want_exact = 0.5L * v * (1 + std::erf(v / std::sqrt(2.0L)));
    const long double want_tanh = 0.5L * v * (1 + std::tanh(std::sqrt(2.0L / M_PIl) * (v + 0.044715L * v * v * v)));
    EXPECT_NEAR(exact[i], static_cast<double>(want_exact), 1e-6) << v;
    EXPECT_NEAR(approx[i], static_cast<double>(want_tanh), 1e-6) << v;
  }
  // The two differ (by up to ~1e-3 near |x| = 2): a model with the wrong one drifts.
  float worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(exact[i] - approx[i]));
  EXPECT_GT(worst, 1e-4f);
}

}  // namespace
}  // namespace slm::kernels
