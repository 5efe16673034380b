// RTN quantization: hand-computed blocks for each quantizer, and whole files
// byte-identical to llama-quantize's (../shared/data/models/quant-ref).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "slm/compress/quantize.h"
#include "slm/core/half.h"
#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "quant_ref.h"
#include "test_util.h"

namespace slm {
namespace {

using kernels::BlockQ4_0;
using kernels::BlockQ4_1;
using kernels::BlockQ5_0;
using kernels::BlockQ8_0;

std::vector<float> ramp(float from) {  // from, from + 1, ..., from + 31
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = from + static_cast<float>(j);
  return x;
}

TEST(QuantizeRef, Q4_1HandComputed) {
  // 0..31: min 0, d = 31/15 (f16 0x4022 = 2.06640625), q = round(j * 15/31).
  const auto x = ramp(0);
  BlockQ4_1 b{};
  kernels::quantize_row_q4_1_ref(x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x4022);
  EXPECT_EQ(b.m, 0x0000);
  const int q[32] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11,
                     12, 12, 13, 13, 14, 14, 15, 15};
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], q[j] | (q[j + 16] << 4)) << j;

  // A shifted ramp keeps the codes and moves the min: m = f16(-10) = 0xc900.
  const auto y = ramp(-10);
  BlockQ4_1 c{};
  kernels::quantize_row_q4_1_ref(y.data(), &c, 32);
  EXPECT_EQ(c.m, 0xc900);
  EXPECT_EQ(c.d, 0x4022);
  EXPECT_EQ(std::memcmp(b.qs, c.qs, 16), 0);
}

TEST(QuantizeRef, Q5_0HandComputed) {
  // -16..15: the largest magnitude is -16, so d = -16 / -16 = 1 and q = x + 16 = j.
  const auto x = ramp(-16);
  BlockQ5_0 b{};
  kernels::quantize_row_q5_0_ref(x.data(), &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], j | (j << 4)) << j;  // low nibbles of j and j + 16
  // Fifth bits: elements 16..31 (q = 16..31) have it, 0..15 do not.
  EXPECT_EQ(b.qh[0], 0x00);
  EXPECT_EQ(b.qh[1], 0x00);
  EXPECT_EQ(b.qh[2], 0xff);
  EXPECT_EQ(b.qh[3], 0xff);

  // 16..-15: the largest magnitude is +16, so d = -1 and again q = j.
  std::vector<float> y(32);
  for (int j = 0; j < 32; ++j) y[j] = 16.f - static_cast<float>(j);
  BlockQ5_0 c{};
  kernels::quantize_row_q5_0_ref(y.data(), &c, 32);
  EXPECT_EQ(c.d, 0xbc00);
  EXPECT_EQ(std::memcmp(b.qs, c.qs, 16), 0);
  EXPECT_EQ(std::memcmp(b.qh, c.qh, 4), 0);

  // All zeros: d = 0 / -16 = -0 (f16 0x8000, as ggml writes it), every q is 16
  // (low nibble 0, fifth bit set).
  std::vector<float> z(32, 0.f);
  BlockQ5_0 e{};
  kernels::quantize_row_q5_0_ref(z.data(), &e, 32);
  EXPECT_EQ(e.d, 0x8000);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(e.qs[j], 0);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(e.qh[j], 0xff);
}

TEST(QuantizeRef, Q8_0AndQ4_0HandComputed) {
  const auto x = ramp(-16);  // amax 16
  BlockQ8_0 b{};
  kernels::quantize_row_q8_0_ref(x.data(), &b, 32);
  EXPECT_EQ(b.d, f32_to_f16(16.f / 127.f));
  EXPECT_EQ(b.qs[0], -127);   // -16 * 127/16
  EXPECT_EQ(b.qs[17], 8);     // 1 * 127/16 = 7.94
  EXPECT_EQ(b.qs[31], 119);   // 15 * 127/16 = 119.06
  EXPECT_EQ(b.qs[16], 0);
  BlockQ4_0 c{};
  kernels::quantize_row_q4_0_ref(x.data(), &c, 32);
  EXPECT_EQ(c.d, 0x4000);  // -16 / -8 = 2
  // q = min(15, trunc(x / 2 + 8.5)): x = -16 -> 0, x = 0 -> 8, x = -1 -> 8, x = 15 -> 16, clamped to 15.
  EXPECT_EQ(c.qs[0], 0 | (8 << 4));
  EXPECT_EQ(c.qs[15], 8 | (15 << 4));
}

TEST(QuantizeRef, Q4_1ZeroAndConstantBlocks) {
  std::vector<float> z(32, 0.f);
  BlockQ4_1 b{};
  kernels::quantize_row_q4_1_ref(z.data(), &b, 32);
  EXPECT_EQ(b.d, 0);
  EXPECT_EQ(b.m, 0);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[j], 0);
  std::vector<float> k(32, 3.f);  // max == min: d = 0, m = 3
  kernels::quantize_row_q4_1_ref(k.data(), &b, 32);
  EXPECT_EQ(b.d, 0);
  EXPECT_EQ(b.m, 0x4200);
}

// Every tensor of our file has the type, shape and bytes of llama.cpp's.
void expect_same_as_llama_cpp(const std::string& type) {
  const std::string ref = quant_ref_dir() + "rand-2m-" + type + ".gguf";
  const std::string out = quantize_rand_2m(type);
  ASSERT_FALSE(out.empty());
  auto a = io::GgufFile::open(out);
  auto b = io::GgufFile::open(ref);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  for (const auto& tb : (*b)->tensors()) {
    const auto* ta = (*a)->find_tensor(tb.name);
    ASSERT_NE(ta, nullptr) << tb.name;
    EXPECT_EQ(ta->ggml_type, tb.ggml_type) << tb.name;
    EXPECT_EQ(ta->shape, tb.shape) << tb.name;
    auto va = (*a)->tensor(tb.name);
    auto vb = (*b)->tensor(tb.name);
    ASSERT_TRUE(va.ok() && vb.ok()) << tb.name;
    ASSERT_EQ(va->nbytes, vb->nbytes) << tb.name;
    EXPECT_EQ(std::memcmp(va->data, vb->data, va->nbytes), 0) << type << ": " << tb.name << " differs";
  }
  // Metadata: the same keys and values (order aside).
  EXPECT_EQ((*a)->metadata().size(), (*b)->metadata().size());
  for (const auto& [k, v] : (*b)->metadata()) {
    const io::GgufValue* mine = (*a)->find(k);
    ASSERT_NE(mine, nullptr) << k;
    EXPECT_EQ(mine->to_string(1 << 20), v.to_string(1 << 20)) << k;
  }
  EXPECT_EQ((*a)->key_order(), (*b)->key_order());
  // And so the whole file, header, padding and all.
  auto read_all = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string fa = read_all(out), fb = read_all(ref);
  EXPECT_EQ(fa.size(), fb.size());
  EXPECT_TRUE(fa == fb) << type << ": the files differ";
  ::unlink(out.c_str());
}

TEST(QuantizeRtn, Q8_0ByteIdenticalToLlamaCpp) {
  SLM_REQUIRE_DATA(test::shared_data("models/quant-ref/rand-2m-Q8_0.gguf"));
  expect_same_as_llama_cpp("Q8_0");
}
TEST(QuantizeRtn, Q4_0ByteIdenticalToLlamaCpp) {
  SLM_REQUIRE_DATA(test::shared_data("models/quant-ref/rand-2m-Q4_0.gguf"));
  expect_same_as_llama_cpp("Q4_0");
}
TEST(QuantizeRtn, Q4_1ByteIdenticalToLlamaCpp) {
  SLM_REQUIRE_DATA(test::shared_data("models/quant-ref/rand-2m-Q4_1.gguf"));
  expect_same_as_llama_cpp("Q4_1");
}
TEST(QuantizeRtn, Q5_0ByteIdenticalToLlamaCpp) {
  SLM_REQUIRE_DATA(test::shared_data("models/quant-ref/rand-2m-Q5_0.gguf"));
  expect_same_as_llama_cpp("Q5_0");
}

TEST(QuantizeRtn, BadInput) {
  EXPECT_FALSE(compress::parse_quant_format("Q3_X", -1).ok());
  EXPECT_FALSE(compress::parse_quant_format("F32", -1).ok());
  compress::QuantizeOptions opt;
  opt.format.type = DType::kQ4_0;
  const std::string out = ::testing::TempDir() + "/slm_rtn_bad." + std::to_string(::getpid()) + ".gguf";
  auto r = compress::quantize_gguf("/nonexistent/model.gguf", out, opt);
  EXPECT_FALSE(r.ok());
  opt.method = "magic";
  r = compress::quantize_gguf("/nonexistent/model.gguf", out, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("magic"), std::string::npos);
  EXPECT_FALSE(file_exists(out));
  // A quantized model is refused as a source, and no output is left behind.
  const std::string q = test::shared_data("models/quant-ref/rand-2m-Q8_0.gguf");
  if (file_exists(q)) {
    opt.method = "rtn";
    r = compress::quantize_gguf(q, out, opt);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("already Q8_0"), std::string::npos) << r.status().message();
    EXPECT_FALSE(file_exists(out));
  }
}

// The command line: a summary table, a file `slm info` lists with the chosen
// types, one-line errors.
TEST(QuantizeCli, WritesFileInfoShowsTypes) {
  const std::string src = test::shared_data("models/quant-ref/rand-2m-f32.gguf");
  SLM_REQUIRE_DATA(src);
  const std::string out = ::testing::TempDir() + "/slm_cli_q5." + std::to_string(::getpid()) + ".gguf";
  std::string text;
  ASSERT_EQ(test::run_command(test::slm_binary() + " quantize " + src + " --type q5_0 --method rtn --out " + out +
                                  " 2>/dev/null", &text), 0);
  EXPECT_NE(text.find("blk.0.attn_q.weight"), std::string::npos) << text;
  EXPECT_NE(text.find("wrote " + out), std::string::npos) << text;
  text.clear();
  ASSERT_EQ(test::run_command(test::slm_binary() + " info " + out, &text), 0);
  EXPECT_NE(text.find("general.file_type = 8"), std::string::npos) << text;
  for (const char* want : {"token_embd.weight", "blk.1.ffn_down.weight", "output.weight"}) {
    const size_t at = text.find(std::string("  ") + want + " ");
    ASSERT_NE(at, std::string::npos) << want;
    EXPECT_NE(text.substr(at, 60).find("Q5_0"), std::string::npos) << text.substr(at, 60);
  }
  const size_t norm = text.find("blk.0.attn_norm.weight");
  ASSERT_NE(norm, std::string::npos);
  EXPECT_NE(text.substr(norm, 60).find("F32"), std::string::npos);
  ::unlink(out.c_str());

  std::string err;
  EXPECT_NE(test::run_command(test::slm_binary() + " quantize " + src + " --type Q9_9 --out " + out + " 2>&1", &err), 0);
  EXPECT_NE(err.find("Q9_9"), std::string::npos) << err;
  err.clear();
  EXPECT_NE(test::run_command(test::slm_binary() + " quantize " + src + " --type Q4_0 --method gptq --out " + out +
                                  " 2>&1", &err), 0);
  EXPECT_NE(err.find("gptq"), std::string::npos) << err;
  for (const auto& [flags, want] : {std::pair{"--type Q4_K --method imatrix", "calibration text"},
                                    std::pair{"--type int4 --group 48", "multiple of 32"},
                                    std::pair{"--type Q4_K --group 64", "only int4 and int8"},
                                    std::pair{"--type Q4_0 --method imatrix --calib /dev/null", "k-quants"},
                                    std::pair{"--type Q4_K --method gptq --calib /dev/null", "not Q4_K"},
                                    std::pair{"--type Q4_K --keep blk. token_embd output.", "cannot take Q4_K"}}) {
    err.clear();
    EXPECT_NE(test::run_command(test::slm_binary() + " quantize " + src + " " + flags + " --out " + out + " 2>&1", &err), 0);
    EXPECT_NE(err.find(want), std::string::npos) << flags << ": " << err;
  }
  EXPECT_FALSE(file_exists(out));
}

}  // namespace
}  // namespace slm
