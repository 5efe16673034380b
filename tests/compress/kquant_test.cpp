// The k-quant quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): hand-computed blocks read back
// by the kernels' dequantizers, per tensor errors no worse than llama.cpp's
// own files (../shared/data/models/quant-ref), and the importance-weighted
// (imatrix) variant lowering the error where the importance is.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "slm/compress/format.h"
#include "slm/compress/kquant.h"
#include "slm/compress/quantize.h"
#include "slm/core/half.h"
#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "slm/kernels/quant_k.h"
#include "quant_ref.h"
#include "test_util.h"

namespace slm {
namespace {

using compress::quantize_row_k;

std::vector<float> dequant(DType t, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  kernels::dequantize_row_ref(t, q.data(), y.data(), n);
  return y;
}

// Sub-block j of 32 holds l, minus 8 (Q4_K) or 16 (Q5_K) when j is odd: on
// the grid exactly, scale 1 and min 0 or nmax / 2 + 1/2 rounded down.
std::vector<float> k4_ramp(int nmax) {
  std::vector<float> x(256);
  const int half = (nmax + 1) / 2;
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < 32; ++l) x[32 * j + l] = static_cast<float>(l % (nmax + 1) - (j % 2 ? half : 0));
  return x;
}

TEST(KQuant, Q2_KHandComputed) {
  // Sub-blocks of 16 holding l % 4, minus 2 on odd ones: on the grid, scale 1
  // and min 0 or 2, the codes 15 of d = 1/15 and dmin = 2/15.
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 4 - ((i / 16) % 2 ? 2 : 0));
  std::vector<uint8_t> q(sizeof(kernels::BlockQ2_K));
  quantize_row_k(DType::kQ2_K, x.data(), q.data(), 256, nullptr);
  const auto& b = *reinterpret_cast<const kernels::BlockQ2_K*>(q.data());
  EXPECT_EQ(b.d, f32_to_f16(1 / 15.f));
  EXPECT_EQ(b.dmin, f32_to_f16(2 / 15.f));
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.scales[j], j % 2 ? 0xFF : 0x0F) << j;  // scale | min << 4
  // Element 128h + 32j + l at bits 2j of qs[32h + l]: code l % 4 in all four.
  for (int i = 0; i < 64; ++i) EXPECT_EQ(b.qs[i], (i % 4) * 0x55) << i;
  const auto y = dequant(DType::kQ2_K, q, 256);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i], 1e-2) << i;
}

TEST(KQuant, Q3_KHandComputed) {
  // Sub-blocks of 16 holding l % 8 - 4: every one fits scale 1 exactly
  // (codes x + 4), and d = -1/32 (F16 0xa800) maps scale 1 to the 6-bit
  // code -32, stored 0: all 12 scale bytes zero.
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 8 - 4);
  std::vector<uint8_t> q(sizeof(kernels::BlockQ3_K));
  quantize_row_k(DType::kQ3_K, x.data(), q.data(), 256, nullptr);
  const auto& b = *reinterpret_cast<const kernels::BlockQ3_K*>(q.data());
  EXPECT_EQ(b.d, 0xa800);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(b.scales[i], 0) << i;
  // Code e % 8: the third bit (e % 8 >= 4) at bit e / 32 of hmask[e % 32],
  // the low two as Q2_K's.
  for (int m = 0; m < 32; ++m) EXPECT_EQ(b.hmask[m], m % 8 >= 4 ? 0xFF : 0x00) << m;
  for (int i = 0; i < 64; ++i) EXPECT_EQ(b.qs[i], (i % 4) * 0x55) << i;
  const auto y = dequant(DType::kQ3_K, q, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], x[i]) << i;
  // All zeros: every byte zero, as llama.cpp writes it.
  std::vector<float> z(256, 0.f);
  quantize_row_k(DType::kQ3_K, z.data(), q.data(), 256, nullptr);
  for (uint8_t v : q) ASSERT_EQ(v, 0);
}

TEST(KQuant, Q4_KHandComputed) {
  const auto x = k4_ramp(15);
  std::vector<uint8_t> q(sizeof(kernels::BlockQ4_K));
  quantize_row_k(DType::kQ4_K, x.data(), q.data(), 256, nullptr);
  const auto& b = *reinterpret_cast<const kernels::BlockQ4_K*>(q.data());
  // Largest scale 1 and min 8 map to the 6-bit codes 63: d = 1/63, dmin = 8/63.
  EXPECT_EQ(b.d, f32_to_f16(1 / 63.f));
  EXPECT_EQ(b.dmin, f32_to_f16(8 / 63.f));
  // Scales 63 everywhere, mins 63 on odd sub-blocks: bytes 0..3 the low six
  // bits of scales 0..3 and the top two of scales 4..7; 4..7 mins 0..3 (and
  // the top of mins 4..7); 8..11 scale | min << 4 of sub-blocks 4..7.
  const uint8_t want[12] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x0F, 0xFF, 0x0F, 0xFF};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(b.scales[i], want[i]) << i;
  // Codes l % 16: sub-block 2k in the low nibbles, 2k + 1 in the high.
  for (int i = 0; i < 128; ++i) EXPECT_EQ(b.qs[i], (i % 16) | ((i % 16) << 4)) << i;
  const auto y = dequant(DType::kQ4_K, q, 256);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i], 1e-2) << i;  // 1/63 in F16 is 0.02% off
}

TEST(KQuant, Q5_KHandComputed) {
  const auto x = k4_ramp(31);
  std::vector<uint8_t> q(sizeof(kernels::BlockQ5_K));
  quantize_row_k(DType::kQ5_K, x.data(), q.data(), 256, nullptr);
  const auto& b = *reinterpret_cast<const kernels::BlockQ5_K*>(q.data());
  EXPECT_EQ(b.d, f32_to_f16(1 / 63.f));
  EXPECT_EQ(b.dmin, f32_to_f16(16 / 63.f));
  // Codes l: low nibbles as Q4_K, the fifth bit (l >= 16) of sub-block s at bit s of qh[l].
  for (int i = 0; i < 128; ++i) EXPECT_EQ(b.qs[i], (i % 32 % 16) | ((i % 32 % 16) << 4)) << i;
  for (int l = 0; l < 32; ++l) EXPECT_EQ(b.qh[l], l >= 16 ? 0xFF : 0x00) << l;
  const auto y = dequant(DType::kQ5_K, q, 256);
  for (int i = 0; i < 256; ++i) EXPECT_NEAR(y[i], x[i], 2e-2) << i;
}

TEST(KQuant, Q6_KHandComputed) {
  // Sub-blocks of 16 holding l - 8: every one fits scale 1/4 exactly (codes
  // 4x + 32 = 4l, the largest magnitude -8 at -32); the super-scale maps 1/4
  // to the 8-bit code -128: d = -1/512 (F16 0x9800).
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>(i % 16 - 8);
  std::vector<uint8_t> q(sizeof(kernels::BlockQ6_K));
  quantize_row_k(DType::kQ6_K, x.data(), q.data(), 256, nullptr);
  const auto& b = *reinterpret_cast<const kernels::BlockQ6_K*>(q.data());
  EXPECT_EQ(b.d, 0x9800);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b.scales[i], -128) << i;
  // Element l < 32 of the first half: low nibble of code 4 (l % 16) in
  // ql[l], top two bits at bits 0..1 of qh[l]; element 64 + l in the high nibble of ql[l].
  for (int l = 0; l < 32; ++l) {
    const int c = 4 * (l % 16);
    EXPECT_EQ(b.ql[l] & 0x0F, c & 0x0F) << l;
    EXPECT_EQ(b.ql[l] >> 4, c & 0x0F) << l;
    EXPECT_EQ(b.qh[l] & 3, c >> 4) << l;
  }
  const auto y = dequant(DType::kQ6_K, q, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], x[i]) << i;
  // All zeros: d = 0, every byte zero.
  std::vector<float> z(256, 0.f);
  quantize_row_k(DType::kQ6_K, z.data(), q.data(), 256, nullptr);
  for (uint8_t v : q) ASSERT_EQ(v, 0);
}

double nmse(const std::vector<float>& x, const std::vector<float>& y) {
  double e = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) e += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]), s += x[i] * static_cast<double>(x[i]);
  return e / s;
}

// Every tensor of our file reconstructs the F32 source at least as well as llama.cpp's.
void expect_no_worse_than_llama_cpp(const std::string& type) {
  const std::string src = quant_ref_dir() + "rand-2m-f32.gguf", ref = quant_ref_dir() + "rand-2m-" + type + ".gguf";
  SLM_REQUIRE_DATA(ref);
  const std::string out = quantize_rand_2m(type);
  ASSERT_FALSE(out.empty());
  auto a = io::GgufFile::open(out), b = io::GgufFile::open(ref), s = io::GgufFile::open(src);
  ASSERT_TRUE(a.ok() && b.ok() && s.ok());
  double sum_ours = 0, sum_ref = 0;
  int n = 0;
  for (const auto& tb : (*b)->tensors()) {
    const auto* ta = (*a)->find_tensor(tb.name);
    ASSERT_NE(ta, nullptr) << tb.name;
    ASSERT_EQ(ta->ggml_type, tb.ggml_type) << tb.name;
    ASSERT_EQ(ta->shape, tb.shape) << tb.name;
    if (tb.shape.size() < 2) continue;
    auto va = (*a)->tensor(tb.name), vb = (*b)->tensor(tb.name), vs = (*s)->tensor(tb.name);
    ASSERT_TRUE(va.ok() && vb.ok() && vs.ok()) << tb.name;
    ASSERT_EQ(va->nbytes, vb->nbytes) << tb.name;
    const int64_t numel = vs->numel();
    std::vector<float> x(numel), ya(numel), yb(numel);
    kernels::dequantize_row_ref(vs->dtype, vs->data, x.data(), numel);
    kernels::dequantize_row_ref(va->dtype, va->data, ya.data(), numel);
    kernels::dequantize_row_ref(vb->dtype, vb->data, yb.data(), numel);
    const double ea = nmse(x, ya), eb = nmse(x, yb);
    EXPECT_LE(ea, eb) << type << " " << tb.name;
    sum_ours += ea, sum_ref += eb, ++n;
  }
  std::printf("[ nmse ] %s over %d tensors: ours %.5g, llama.cpp %.5g (%.2f%% lower)\n", type.c_str(), n, sum_ours / n,
              sum_ref / n, 100 * (1 - sum_ours / sum_ref));
  ::unlink(out.c_str());
}

TEST(KQuant, Q2_KNoWorseThanLlamaCpp) { expect_no_worse_than_llama_cpp("Q2_K"); }
TEST(KQuant, Q3_KNoWorseThanLlamaCpp) { expect_no_worse_than_llama_cpp("Q3_K"); }
TEST(KQuant, Q4_KNoWorseThanLlamaCpp) { expect_no_worse_than_llama_cpp("Q4_K"); }
TEST(KQuant, Q5_KNoWorseThanLlamaCpp) { expect_no_worse_than_llama_cpp("Q5_K"); }
TEST(KQuant, Q6_KNoWorseThanLlamaCpp) { expect_no_worse_than_llama_cpp("Q6_K"); }

TEST(KQuant, ImportanceLowersTheWeightedError) {
  // Rows of Student-t-ish weights; a few input channels 30x as important.
  std::mt19937 rng(7);
  std::student_t_distribution<float> td(4);
  const int64_t rows = 16, n = 512;
  std::vector<float> w(static_cast<size_t>(rows * n)), imp(static_cast<size_t>(n));
  for (float& v : w) v = 0.05f * td(rng);
  for (int64_t j = 0; j < n; ++j) imp[j] = (j % 7 == 3) ? 30.f : 1.f;
  for (DType t : {DType::kQ2_K, DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    double e_plain = 0, e_imp = 0;
    std::vector<uint8_t> q(row_bytes(t, n));
    std::vector<float> y(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = &w[static_cast<size_t>(r * n)];
      for (const bool use : {false, true}) {
        quantize_row_k(t, x, q.data(), n, use ? imp.data() : nullptr);
        kernels::dequantize_row_ref(t, q.data(), y.data(), n);
        double e = 0;
        for (int64_t j = 0; j < n; ++j) e += imp[j] * (x[j] - y[j]) * static_cast<double>(x[j] - y[j]);
        (use ? e_imp : e_plain) += e;
      }
    }
    EXPECT_LT(e_imp, 0.9 * e_plain) << dtype_name(t);
  }
}

TEST(KQuant, ImatrixLowersTheOutputErrorOnCalibration) {
  // rand-2m (dim 256, ffn 768: every matrix takes Q4_K), calibrated on a
  // TinyStories sample: each block matrix's output error tr(D H D^T) / tr(W H W^T)
  // falls below rtn's, and the file still holds Q4_K blocks.
  const std::string src = test::shared_data("models/quant-ref/rand-2m-f32.gguf");
  const std::string text = test::shared_data("corpora/cs336/tinystories_sample.txt");
  SLM_REQUIRE_DATA(src);
  SLM_REQUIRE_DATA(text);
  const std::string out = ::testing::TempDir() + "/slm_imatrix." + std::to_string(::getpid()) + ".gguf";
  compress::QuantizeOptions opt;
  opt.format.type = DType::kQ4_K;
  opt.method = "imatrix";
  opt.calib = text;
  opt.calib_opt.n_ctx = 128;
  auto rep = compress::quantize_gguf(src, out, opt);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  double err = 0, err_rtn = 0;
  int n = 0;
  for (const auto& p : rep->tensors) {
    if (p.err < 0) continue;
    EXPECT_EQ(p.to, "Q4_K") << p.name;
    EXPECT_LT(p.err, p.err_rtn) << p.name;
    err += p.err, err_rtn += p.err_rtn, ++n;
  }
  EXPECT_EQ(n, 15);  // 7 matrices in each of the 2 layers, and the output
  std::printf("[ imatrix ] Q4_K mean output error %.4g (rtn %.4g)\n", err / n, err_rtn / n);
  ::unlink(out.c_str());
}

}  // namespace
}  // namespace slm
