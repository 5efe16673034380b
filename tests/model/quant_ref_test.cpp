// Our scalar dequantizers against llama.cpp's quantizer: every weight of
// models/quant-ref/rand-2m-<TYPE>.gguf (made by llama-quantize --pure from
// rand-2m-f32.gguf) dequantized and compared with the f32 original by
// normalised MSE, sum (a - b)^2 / sum b^2, with a bound per type (ggml's
// test-backend-ops compares its backends the same way).
// Lives in tests/model because it needs both the kernels and the GGUF reader.
#include <gtest/gtest.h>

#include <iostream>
#include <vector>

#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "test_util.h"

namespace slm {
namespace {

struct Case {
  const char* type;
  double max_nmse;
};

class QuantRef : public ::testing::TestWithParam<Case> {};

TEST_P(QuantRef, DequantizedWeightsMatchF32) {
  const Case c = GetParam();
  const std::string ref_path = test::shared_data("models/quant-ref/rand-2m-f32.gguf");
  const std::string q_path = test::shared_data(std::string("models/quant-ref/rand-2m-") + c.type + ".gguf");
  SLM_REQUIRE_DATA(ref_path);
  SLM_REQUIRE_DATA(q_path);
  auto ref = io::GgufFile::open(ref_path);
  auto q = io::GgufFile::open(q_path);
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  ASSERT_TRUE(q.ok()) << q.status().to_string();

  double err = 0, norm = 0;
  int64_t n_elems = 0;
  int n_tensors = 0;
  std::vector<float> a, b;
  for (const auto& ti : q.value()->tensors()) {
    if (std::string(io::ggml_type_name(ti.ggml_type)) != c.type) continue;  // norms stay F32
    auto tq = q.value()->tensor(ti.name);
    auto tr = ref.value()->tensor(ti.name);
    ASSERT_TRUE(tq.ok()) << tq.status().to_string();
    ASSERT_TRUE(tr.ok()) << tr.status().to_string();
    ASSERT_EQ(tr->dtype, DType::kF32) << ti.name;
    ASSERT_EQ(tq->shape, tr->shape) << ti.name;
    const int64_t cols = tq->cols();
    a.resize(static_cast<size_t>(cols));
    b.resize(static_cast<size_t>(cols));
    for (int64_t r = 0; r < tq->rows(); ++r) {
      kernels::dequantize_row_ref(tq->dtype, tq->row(r), a.data(), cols);
      kernels::dequantize_row_ref(DType::kF32, tr->row(r), b.data(), cols);
      for (int64_t k = 0; k < cols; ++k) {
        const double d = static_cast<double>(a[k]) - b[k];
        err += d * d;
        norm += static_cast<double>(b[k]) * b[k];
      }
    }
    n_elems += tq->numel();
    ++n_tensors;
  }
  ASSERT_GT(n_tensors, 0) << "no " << c.type << " tensors in " << q_path;
  ASSERT_GT(norm, 0);
  const double nmse = err / norm;
  std::cout << "[ nmse ] " << c.type << ": " << nmse << " over " << n_tensors << " tensors, " << n_elems
            << " weights (bound " << c.max_nmse << ")\n";
  EXPECT_LT(nmse, c.max_nmse) << c.type;
}

INSTANTIATE_TEST_SUITE_P(Types, QuantRef,
                         // Bounds a little above what was measured (F16 4.3e-8, BF16 2.8e-6, Q8_0 5.3e-5,
                         // Q5_0 3.4e-3, Q4_0 1.34e-2, Q4_1 8.8e-3, Q2_K 0.118, Q3_K 3.37e-2, Q4_K 7.5e-3,
                         // Q5_K 1.92e-3, Q6_K 5.2e-4): a wrong nibble or bit order gives ~1.
                         ::testing::Values(Case{"F16", 1e-7}, Case{"BF16", 5e-6}, Case{"Q8_0", 7e-5},
                                           Case{"Q5_0", 4e-3}, Case{"Q4_0", 1.6e-2}, Case{"Q4_1", 1.1e-2},
                                           Case{"Q2_K", 0.13}, Case{"Q3_K", 4e-2}, Case{"Q4_K", 9e-3},
                                           Case{"Q5_K", 2.3e-3}, Case{"Q6_K", 6.5e-4}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.type); });

}  // namespace
}  // namespace slm
