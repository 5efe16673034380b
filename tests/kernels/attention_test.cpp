// Flash-style attention (tiles, online softmax, grouped heads) against the
// plain double-precision oracle, for F32 and F16 caches and odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "slm/core/half.h"
#include "slm/kernels/attention.h"

namespace slm::kernels {
namespace {

double run_case(DType type, int group, int64_t hd, int64_t n_pos, float spread, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, spread);
  const int64_t es = type == DType::kF16 ? 2 : 4;
  const int64_t n_kv = 3, row_bytes = n_kv * hd * es;  // several KV heads per row: the kernel must stride
  std::vector<uint8_t> k(static_cast<size_t>(n_pos * row_bytes)), v(k.size());
  for (int64_t i = 0; i < n_pos * n_kv * hd; ++i) {
    const float a = nd(rng), b = nd(rng);
    if (type == DType::kF16) {
      reinterpret_cast<uint16_t*>(k.data())[i] = f32_to_f16(a);
      reinterpret_cast<uint16_t*>(v.data())[i] = f32_to_f16(b);
    } else {
      reinterpret_cast<float*>(k.data())[i] = a;
      reinterpret_cast<float*>(v.data())[i] = b;
    }
  }
  std::vector<float> q(static_cast<size_t>(group * hd));
  for (auto& x : q) x = nd(rng);
  std::vector<float> got(q.size()), want(q.size());
  AttentionArgs a;
  a.q = q.data();
  a.group = group;
  a.head_dim = hd;
  a.k = k.data() + hd * es;  // the second KV head
  a.v = v.data() + hd * es;
  a.kv_type = type;
  a.row_bytes = row_bytes;
  a.n_pos = n_pos;
  a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
  a.out = got.data();
  attention(a);
  a.out = want.data();
  attention_ref(a);
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return num / (den + 1e-30);
}

TEST(Attention, MatchesReferenceOnOddSizes) {
  uint32_t seed = 1;
  for (DType type : {DType::kF32, DType::kF16})
    for (int group : {1, 4, 7})
      for (int64_t hd : {int64_t{2}, int64_t{48}, int64_t{64}, int64_t{130}})
        for (int64_t n_pos : {int64_t{1}, int64_t{7}, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{200}}) {
          const double e = run_case(type, group, hd, n_pos, 1.0f, seed++);
          EXPECT_LT(e, 1e-10) << dtype_name(type) << " group " << group << " hd " << hd << " n_pos " << n_pos;
        }
}

// Groups wider than the kernel's per-head state are done in chunks.
TEST(Attention, VeryWideGroups) {
  EXPECT_LT(run_case(DType::kF32, 100, 8, 70, 1.0f, 5), 1e-10);
}

// Scores far apart in size: the online softmax must rescale, not overflow.
TEST(Attention, LargeScoresStayFinite) {
  for (DType type : {DType::kF32, DType::kF16}) {
    const double e = run_case(type, 2, 64, 300, 30.0f, 99);
    EXPECT_LT(e, 1e-8) << dtype_name(type);
  }
}

}  // namespace
}  // namespace slm::kernels
