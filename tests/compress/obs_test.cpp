// GPTQ, SparseGPT, magnitude and Wanda on one layer with correlated synthetic
// inputs: the reconstruction errors the papers promise (GPTQ below RTN,
// SparseGPT below magnitude and Wanda), exact N:M patterns, hand-computed
// blocks, and the linear algebra beneath.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "slm/compress/obs.h"
#include "slm/core/half.h"
#include "slm/kernels/quant.h"

namespace slm::compress {
namespace {

struct Layer {
  int64_t rows, cols;
  std::vector<float> w;
  std::vector<double> h;  // X^T X
};

// Inputs with correlated channels of unequal scale (x = z A, a few loud
// channels, as LLM activations have), weights Student-t-ish.
Layer make_layer(int64_t rows, int64_t cols, int64_t n_tok, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Layer L{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols)), std::vector<double>(static_cast<size_t>(cols * cols), 0.0)};
  for (float& v : L.w) v = nd(rng) * 0.05f * (1 + std::fabs(nd(rng)));
  std::vector<float> a(static_cast<size_t>(cols * cols));
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) a[i * cols + j] = (i == j ? 1.0f : 0.0f) + 0.3f * nd(rng) / std::sqrt(static_cast<float>(cols));
  std::vector<float> z(static_cast<size_t>(cols)), x(static_cast<size_t>(cols));
  for (int64_t t = 0; t < n_tok; ++t) {
    for (float& v : z) v = nd(rng);
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t i = 0; i < cols; ++i) s += z[i] * a[i * cols + j];
      x[j] = static_cast<float>(s) * (j % 13 == 0 ? 8.0f : 1.0f);
    }
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j) L.h[i * cols + j] += static_cast<double>(x[i]) * x[j];
  }
  return L;
}

std::vector<float> norms(const Layer& L) {
  std::vector<float> n(static_cast<size_t>(L.cols));
  for (int64_t j = 0; j < L.cols; ++j) n[j] = static_cast<float>(std::sqrt(L.h[j * L.cols + j]));
  return n;
}

std::vector<float> masked(const Layer& L, const std::vector<uint8_t>& mask) {
  std::vector<float> w = L.w;
  for (size_t i = 0; i < w.size(); ++i)
    if (mask[i]) w[i] = 0;
  return w;
}

std::vector<float> rtn(const Layer& L, const QuantFormat& f) {
  std::vector<float> y(L.w.size());
  for (int64_t r = 0; r < L.rows; ++r) rtn_roundtrip(f, &L.w[r * L.cols], &y[r * L.cols], L.cols);
  return y;
}

TEST(Obs, CholeskyAndInverseFactor) {
  const Layer L = make_layer(1, 40, 200, 1);
  std::vector<double> l = L.h;
  ASSERT_TRUE(cholesky_lower(l, 40));
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 40; ++j) {
      double s = 0;
      for (int k = 0; k < 40; ++k) s += l[i * 40 + k] * l[j * 40 + k];
      EXPECT_NEAR(s, L.h[i * 40 + j], 1e-9 * std::fabs(L.h[i * 40 + i]) + 1e-9) << i << "," << j;
    }
  // U^T U H = I without damping.
  auto u = inverse_hessian_factor(L.h, 40, 0.0);
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  for (int i = 0; i < 40; ++i)
    for (int j = 0; j < 40; ++j) {
      double s = 0;
      for (int k = 0; k < 40; ++k) {
        double hinv_ik = 0;
        for (int m = 0; m < 40; ++m) hinv_ik += (*u)[m * 40 + i] * (*u)[m * 40 + k];
        s += hinv_ik * L.h[k * 40 + j];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-6) << i << "," << j;
    }
  std::vector<double> not_spd = {1, 2, 2, 1};
  EXPECT_FALSE(cholesky_lower(not_spd, 2));
}

TEST(Obs, MasksHandComputed) {
  const std::vector<float> w = {1, -2, 3, 4, -0.5f, 0.25f, 8, -7};
  // Magnitude 2:4 per row group: {1,-2} and {-0.5,0.25} go.
  const auto m24 = prune_mask(w, 1, 8, {}, 0, 2, 4);
  EXPECT_EQ(m24, (std::vector<uint8_t>{1, 1, 0, 0, 1, 1, 0, 0}));
  // Wanda with a loud first channel keeps it: scores 10, 2, 3, 4 | 0.5, 0.25, 8, 7.
  const std::vector<float> act = {10, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_EQ(prune_mask(w, 1, 8, act, 0, 2, 4), (std::vector<uint8_t>{0, 1, 1, 0, 1, 1, 0, 0}));
  // Unstructured 50% of the row: the four smallest magnitudes.
  EXPECT_EQ(prune_mask(w, 1, 8, {}, 0.5), (std::vector<uint8_t>{1, 1, 0, 0, 1, 1, 0, 0}));
}

TEST(Obs, WandaWithUniformActivationsIsMagnitude) {
  const Layer L = make_layer(24, 64, 10, 2);
  const std::vector<float> uniform(64, 3.5f);
  EXPECT_EQ(prune_mask(L.w, 24, 64, uniform, 0.5), prune_mask(L.w, 24, 64, {}, 0.5));
  EXPECT_EQ(prune_mask(L.w, 24, 64, uniform, 0, 2, 4), prune_mask(L.w, 24, 64, {}, 0, 2, 4));
  EXPECT_NE(prune_mask(L.w, 24, 64, norms(L), 0.5), prune_mask(L.w, 24, 64, {}, 0.5));
}

TEST(Obs, SparseGptBeatsMagnitudeAndWanda) {
  const Layer L = make_layer(48, 128, 600, 3);
  for (int nm : {0, 1}) {
    const int n = nm ? 2 : 0, m = nm ? 4 : 0;
    const double mag = output_error(L.w, masked(L, prune_mask(L.w, L.rows, L.cols, {}, 0.5, n, m)), L.rows, L.cols, L.h);
    const double wanda = output_error(L.w, masked(L, prune_mask(L.w, L.rows, L.cols, norms(L), 0.5, n, m)), L.rows, L.cols, L.h);
    std::vector<float> w = L.w;
    auto mask = sparsegpt(w, L.rows, L.cols, L.h, 0.5, n, m, ObsOptions{});
    ASSERT_TRUE(mask.ok()) << mask.status().to_string();
    const double sgpt = output_error(L.w, w, L.rows, L.cols, L.h);
    EXPECT_LT(wanda, mag) << "pattern " << nm;
    EXPECT_LT(sgpt, wanda) << "pattern " << nm;
    // Exactly half of the weights are zero, in every group of 4 for 2:4.
    int64_t zeros = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      EXPECT_EQ((*mask)[i] != 0, w[i] == 0.0f) << i;
      zeros += w[i] == 0.0f;
    }
    EXPECT_EQ(zeros, L.rows * L.cols / 2);
    if (nm) {
      for (size_t g = 0; g < w.size(); g += 4)
        EXPECT_EQ((w[g] == 0) + (w[g + 1] == 0) + (w[g + 2] == 0) + (w[g + 3] == 0), 2) << g;
    }
  }
}

TEST(Obs, GptqBeatsRtnAndWritesItsOwnValues) {
  const Layer L = make_layer(40, 128, 600, 4);
  const QuantFormat int4_row{DType::kQ4_1, 4, 0}, int4_g64{DType::kQ4_1, 4, 64}, int8_row{DType::kQ8_0, 8, 0};
  for (const QuantFormat& f : {QuantFormat{DType::kQ4_0}, QuantFormat{DType::kQ5_0}, QuantFormat{DType::kQ8_0},
                               QuantFormat{DType::kQ4_1}, int4_row, int4_g64, int8_row}) {
    const double e_rtn = output_error(L.w, rtn(L, f), L.rows, L.cols, L.h);
    for (bool act_order : {false, true}) {
      std::vector<float> w = L.w;
      ObsOptions o;
      o.act_order = act_order;
      o.block = 64;
      auto q = gptq(w, L.rows, L.cols, L.h, f, o);
      ASSERT_TRUE(q.ok()) << q.status().to_string();
      const double e = output_error(L.w, w, L.rows, L.cols, L.h);
      // Q5_0 gains less here (0.83 x RTN without act-order): its finer rounding
      // leaves more of the error to the clamping of the updated weights; so
      // do the min-max grids of Q4_1 and int4 / int8 (0.80 to 0.83 x).
      const bool q4_0_q8_0 = f.int_bits == 0 && (f.type == DType::kQ4_0 || f.type == DType::kQ8_0);
      EXPECT_LT(e, (q4_0_q8_0 ? 0.8 : f.type == DType::kQ5_0 ? 0.9 : 0.85) * e_rtn) << f.name() << " act_order " << act_order;
      // The blocks hold exactly the values gptq left in w.
      std::vector<float> y(w.size());
      const size_t rb = row_bytes(f.type, L.cols);
      for (int64_t r = 0; r < L.rows; ++r) kernels::dequantize_row_ref(f.type, &(*q)[r * rb], &y[r * L.cols], L.cols);
      EXPECT_EQ(y, w) << f.name();
    }
  }
}

TEST(Obs, GptqInt4WithoutCorrelationIsRoundToNearest) {
  // H = I: GPTQ's int4 row (and groups of 64) are RTN's, byte for byte.
  const Layer L = make_layer(6, 256, 10, 5);
  std::vector<double> h(256 * 256, 0.0);
  for (int j = 0; j < 256; ++j) h[j * 256 + j] = 1;
  for (int64_t group : {0, 64}) {
    const QuantFormat f{DType::kQ4_1, 4, group};
    std::vector<float> w = L.w;
    auto q = gptq(w, L.rows, L.cols, h, f, ObsOptions{});
    ASSERT_TRUE(q.ok());
    const size_t rb = row_bytes(f.type, L.cols);
    std::vector<uint8_t> ref(rb * L.rows);
    for (int64_t r = 0; r < L.rows; ++r) quantize_row(f, &L.w[r * L.cols], &ref[r * rb], L.cols);
    EXPECT_EQ(*q, ref) << f.name();
  }
}

TEST(Obs, GptqWithoutCorrelationIsRoundToNearest) {
  // H = I: no error to spread, so each block is the nearest one. Values
  // (j % 16 - 8) / 4: the largest magnitude is -2, d = 0.25 (F16 0x3400), codes j % 16.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16 - 8) / 4;
  std::vector<double> h(32 * 32, 0.0);
  for (int j = 0; j < 32; ++j) h[j * 32 + j] = 1;
  std::vector<float> w = x;
  auto q = gptq(w, 1, 32, h, QuantFormat{DType::kQ4_0}, ObsOptions{});
  ASSERT_TRUE(q.ok());
  const auto& b = *reinterpret_cast<const kernels::BlockQ4_0*>(q->data());
  EXPECT_EQ(b.d, 0x3400);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;
  kernels::BlockQ4_0 ref{};
  kernels::quantize_row_q4_0_ref(x.data(), &ref, 32);
  EXPECT_EQ(std::memcmp(&ref, q->data(), sizeof ref), 0);
  EXPECT_EQ(w, x);
}

TEST(Obs, GptqQ5_0WithoutCorrelationMatchesGgml) {
  // Values (j - 16) / 4: the largest magnitude is -4, d = 0.25, codes j; the
  // same block as ggml's reference, fifth bits for elements 16..31.
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) / 4;
  std::vector<double> h(32 * 32, 0.0);
  for (int j = 0; j < 32; ++j) h[j * 32 + j] = 1;
  std::vector<float> w = x;
  auto q = gptq(w, 1, 32, h, QuantFormat{DType::kQ5_0}, ObsOptions{});
  ASSERT_TRUE(q.ok());
  kernels::BlockQ5_0 ref{};
  kernels::quantize_row_q5_0_ref(x.data(), &ref, 32);
  EXPECT_EQ(std::memcmp(&ref, q->data(), sizeof ref), 0);
  EXPECT_EQ(ref.qh[2], 0xff);
  EXPECT_EQ(w, x);
}

TEST(Obs, BadShapesAndTypes) {
  std::vector<float> w(64);
  std::vector<double> h(32 * 32, 0.0);
  std::vector<float> w256(256);
  std::vector<double> h256(256 * 256, 0.0);
  for (int j = 0; j < 256; ++j) h256[j * 256 + j] = 1;
  EXPECT_FALSE(gptq(w256, 1, 256, h256, QuantFormat{DType::kQ4_K}, ObsOptions{}).ok());  // no groups
  EXPECT_FALSE(gptq(w, 1, 64, h, QuantFormat{DType::kQ4_0}, ObsOptions{}).ok());  // H is 32 x 32
  std::vector<float> w30(30);
  std::vector<double> h30(30 * 30, 1.0);
  EXPECT_FALSE(gptq(w30, 1, 30, h30, QuantFormat{DType::kQ8_0}, ObsOptions{}).ok());  // not whole blocks
}

}  // namespace
}  // namespace slm::compress
