// AWQ's clipping search (awq_clip) on hand-made rows: it never raises the
// output error of round to nearest (ratio 1 is on its grid), and it clips a
// lone outlier that would otherwise stretch a row's int4 grid.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "slm/compress/awq.h"
#include "slm/compress/obs.h"

namespace slm::compress {
namespace {

std::vector<float> rtn(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantFormat& f) {
  std::vector<float> y(w.size());
  for (int64_t r = 0; r < rows; ++r) rtn_roundtrip(f, &w[r * cols], &y[r * cols], cols);
  return y;
}

TEST(AwqClip, NeverWorseAndClipsALoneOutlier) {
  const int64_t rows = 8, cols = 64;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = 0.1f * nd(rng);
  for (int64_t r = 0; r < rows; ++r) w[r * cols + 5] = 2.0f;  // one outlier per row, on a quiet input
  std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
  for (int64_t j = 0; j < cols; ++j) h[j * cols + j] = j == 5 ? 0.01 : 1.0;
  for (const QuantFormat& f : {QuantFormat{DType::kQ4_1, 4, 0}, QuantFormat{DType::kQ4_0}, QuantFormat{DType::kQ8_0, 8, 0}}) {
    const double e_rtn = output_error(w, rtn(w, rows, cols, f), rows, cols, h);
    std::vector<float> c = w;
    awq_clip(c, rows, cols, h, f);
    const double e_clip = output_error(w, rtn(c, rows, cols, f), rows, cols, h);
    EXPECT_LE(e_clip, e_rtn) << f.name();
    if (f.int_bits == 4) {
      EXPECT_LT(e_clip, 0.8 * e_rtn) << f.name();  // the outlier's input is quiet: clipping it pays
      EXPECT_LT(c[5], 2.0f);
    }
  }
  // Formats without groups (the k-quants) are left alone.
  std::vector<float> k(256, 1.0f);
  std::vector<double> hk(256 * 256, 0.0);
  awq_clip(k, 1, 256, hk, QuantFormat{DType::kQ4_K});
  EXPECT_EQ(k, std::vector<float>(256, 1.0f));
}

}  // namespace
}  // namespace slm::compress
