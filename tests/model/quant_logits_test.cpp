// Models whose weights llama.cpp quantized (models/quant-ref/rand-2m-<TYPE>.gguf,
// llama-quantize --pure from rand-2m-f32.gguf: every matrix in one type) run
// through our forward pass, and their logits stay close to the f32 model's:
// normalised MSE, sum (a - b)^2 / sum b^2, with a bound per type a little
// above what was measured. A wrong block decode gives logits that look like
// noise (NMSE ~1).
#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <vector>

#include "slm/kernels/quant.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm::model {
namespace {

// A fixed prompt of in-vocabulary ids (the vocab has 512 tokens).
const std::vector<int32_t> kPrompt = {1, 403, 261, 378, 300, 467, 289, 313, 407, 271, 259, 500, 34, 99};

// The prompt's logits in one batch; with n_steps, then those of the tokens
// after it fed one at a time (the prompt's tokens again).
std::vector<float> run_prompt(const ModelConfig& cfg, const Weights& w, const ModelOptions& opt = {}, int n_steps = 0) {
  Model m(cfg, w, opt);
  const auto n = static_cast<int64_t>(kPrompt.size());
  KvCache kv(cfg, 0, cfg.n_layer, 1, n + n_steps);
  std::vector<BatchToken> batch;
  for (int64_t i = 0; i < n; ++i) batch.push_back({kPrompt[static_cast<size_t>(i)], i, 0, true});
  std::vector<float> logits, step;
  Status st = m.forward(batch, kv, &logits);
  for (int64_t i = 0; st.ok() && i < n_steps; ++i) {
    st = m.forward({{kPrompt[static_cast<size_t>(i % n)], n + i, 0, true}}, kv, &step);
    logits.insert(logits.end(), step.begin(), step.end());
  }
  EXPECT_TRUE(st.ok()) << st.to_string();
  return logits;
}

std::vector<float> prompt_logits(const std::string& path) {
  auto src = ModelSource::open(path);
  EXPECT_TRUE(src.ok()) << src.status().to_string();
  if (!src.ok()) return {};
  return run_prompt((*src)->config(), (*src)->weights());
}

// A view of the same tensor dequantized to F32 into storage.
TensorView to_f32(const TensorView& v, std::deque<std::vector<float>>* storage) {
  if (v.data == nullptr || v.dtype == DType::kF32) return v;
  storage->emplace_back(static_cast<size_t>(v.numel()));
  std::vector<float>& buf = storage->back();
  for (int64_t r = 0; r < v.rows(); ++r) kernels::dequantize_row_ref(v.dtype, v.row(r), buf.data() + r * v.cols(), v.cols());
  TensorView f = v;
  f.dtype = DType::kF32;
  f.data = buf.data();
  f.nbytes = buf.size() * 4;
  return f;
}

double nmse(const std::vector<float>& a, const std::vector<float>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0 ? err / norm : 1e30;
}

struct Case {
  const char* type;
  double max_nmse;         // vs the f32 model
  double max_kernel_nmse;  // vs the same weights dequantized
};

class QuantLogits : public ::testing::TestWithParam<Case> {};

TEST_P(QuantLogits, CloseToF32Model) {
  const Case c = GetParam();
  const std::string ref_path = test::shared_data("models/quant-ref/rand-2m-f32.gguf");
  const std::string q_path = test::shared_data(std::string("models/quant-ref/rand-2m-") + c.type + ".gguf");
  SLM_REQUIRE_DATA(ref_path);
  SLM_REQUIRE_DATA(q_path);
  const std::vector<float> ref = prompt_logits(ref_path);
  const std::vector<float> q = prompt_logits(q_path);
  ASSERT_FALSE(ref.empty());
  ASSERT_EQ(q.size(), ref.size());
  const double e = nmse(q, ref);
  std::printf("[ logits nmse ] %s vs f32 model: %.3g over %zu logits (bound %.3g)\n", c.type, e, ref.size(), c.max_nmse);
  EXPECT_LT(e, c.max_nmse) << c.type;
}

// The quantized model through its kernels (int8 activations, integer dots)
// against the same weights dequantized to F32 through the float path: what is
// left is the kernels' own error, far below the weights' quantization error.
TEST_P(QuantLogits, KernelsMatchDequantizedWeights) {
  const Case c = GetParam();
  const std::string q_path = test::shared_data(std::string("models/quant-ref/rand-2m-") + c.type + ".gguf");
  SLM_REQUIRE_DATA(q_path);
  auto src = ModelSource::open(q_path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const Weights& w = (*src)->weights();
  std::deque<std::vector<float>> storage;
  Weights wf = w;
  wf.token_embd = to_f32(w.token_embd, &storage);
  wf.output = to_f32(w.output, &storage);
  for (auto& l : wf.layers)
    for (TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) *t = to_f32(*t, &storage);
  const std::vector<float> q = run_prompt((*src)->config(), w);
  const std::vector<float> f = run_prompt((*src)->config(), wf);
  ASSERT_FALSE(f.empty());
  ASSERT_EQ(q.size(), f.size());
  const double e = nmse(q, f);
  std::printf("[ logits nmse ] %s kernels vs dequantized f32: %.3g (bound %.3g)\n", c.type, e, c.max_kernel_nmse);
  EXPECT_LT(e, c.max_kernel_nmse) << c.type;
}

// Repacked weights (ModelOptions::repack) give the rows' logits, for a
// prompt's batch and for tokens one at a time: the same integer dots, only
// the float sums in another order. Those can move an activation across a
// rounding boundary of its int8 quantization downstream (measured: Q4_0
// 6.5e-15, Q4_K 2.4e-14, Q8_0 2.9e-5 where one did, in layer 0's ffn_down
// input at the first single token), far below the kernels' own error
// against dequantized weights (~1e-3 above); a wrong block gives ~1.
class QuantLogitsRepack : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantLogitsRepack, SameLogitsAsRows) {
  const std::string path = test::shared_data(std::string("models/quant-ref/rand-2m-") + GetParam() + ".gguf");
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const ModelConfig& cfg = (*src)->config();
  Model probe(cfg, (*src)->weights(), ModelOptions{true});
  if (probe.repacked_bytes() == 0) GTEST_SKIP() << "no stored panels for " << GetParam() << " on this CPU (AVX-512 VNNI)";
  const std::vector<float> rows = run_prompt(cfg, (*src)->weights(), {}, 5);
  const std::vector<float> packed = run_prompt(cfg, (*src)->weights(), ModelOptions{true}, 5);
  ASSERT_EQ(rows.size(), packed.size());
  const double e = nmse(packed, rows);
  std::printf("[ logits nmse ] %s repacked vs rows: %.3g over %zu logits\n", GetParam(), e, rows.size());
  EXPECT_LT(e, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantLogitsRepack, ::testing::Values("Q4_0", "Q8_0", "Q4_K"),
                         [](const ::testing::TestParamInfo<const char*>& i) { return std::string(i.param); });

// Measured (vs f32 model; kernels vs dequantized): F16 1.0e-6, 3.5e-13; BF16 6.3e-5, 3.2e-13;
// Q8_0 1.7e-3, 7.8e-4; Q4_0 0.285, 6.2e-4; Q4_1 0.193, 9.1e-4; Q5_0 8.1e-2, 7.5e-4;
// Q2_K 1.30, 1.9e-3; Q3_K 0.585, 1.5e-3; Q4_K 0.156, 1.9e-3; Q5_K 4.6e-2, 1.4e-3; Q6_K 1.5e-2, 1.6e-3.
// This random model magnifies weight error about 25x into its logits, so vs
// the f32 model Q2_K/Q3_K bounds say little; the kernels-vs-dequantized bound
// is the sharp one (int8 activations in blocks of 32, or 256 for k-quants).
INSTANTIATE_TEST_SUITE_P(Types, QuantLogits,
                         ::testing::Values(Case{"F16", 1.5e-6, 1e-10}, Case{"BF16", 8e-5, 1e-10},
                                           Case{"Q8_0", 2.2e-3, 1e-3}, Case{"Q4_0", 0.35, 8e-4},
                                           Case{"Q4_1", 0.24, 1.2e-3}, Case{"Q5_0", 0.1, 1e-3},
                                           Case{"Q2_K", 1.6, 2.4e-3}, Case{"Q3_K", 0.7, 2e-3},
                                           Case{"Q4_K", 0.19, 2.4e-3}, Case{"Q5_K", 5.6e-2, 1.8e-3},
                                           Case{"Q6_K", 1.9e-2, 2e-3}),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.type); });

}  // namespace
}  // namespace slm::model
