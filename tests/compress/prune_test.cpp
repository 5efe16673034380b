// Calibration, slm prune and slm quantize --method gptq on stories260K: the
// Hessians against an independent computation, the files they write (2:4
// exactly, pruned weights zero, GPTQ below RTN per layer), and bad input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include "slm/compress/calibrate.h"
#include "slm/compress/eval.h"
#include "slm/compress/prune.h"
#include "slm/engine/session.h"
#include "slm/io/gguf.h"
#include "slm/kernels/ops.h"
#include "slm/kernels/quant.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm {
namespace {

const char* kModel = "models/stories260K/stories260K.gguf";
const char* kText = "corpora/cs336/tinystories_sample.txt";

std::string tmp_path(const std::string& name) { return "/tmp/slm_prune_test_" + std::to_string(getpid()) + "_" + name; }

// Options (PruneOptions or QuantizeOptions) for a calibrated run of method on
// kText, in windows of 128 tokens.
template <typename Options>
Options calibrated(const std::string& method) {
  Options o;
  o.method = method;
  o.calib = test::shared_data(kText);
  o.calib_opt.n_ctx = 128;
  return o;
}

TEST(Calibrate, HessianOfTheFirstLayerInput) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  auto src = model::ModelSource::open(model);
  ASSERT_TRUE(src.ok());
  auto tok = engine::open_tokenizer(model);
  ASSERT_TRUE(tok.ok());
  auto ids = compress::tokenize_file(**tok, text);
  ASSERT_TRUE(ids.ok());
  model::Model m((*src)->config(), (*src)->weights());
  compress::CalibrationOptions o;
  o.n_ctx = 64;
  o.max_tokens = 256;
  auto cal = compress::calibrate(m, *ids, (*tok)->bos(), o);
  ASSERT_TRUE(cal.ok()) << cal.status().to_string();
  const auto& c = (*src)->config();
  EXPECT_EQ(cal->sites.size(), static_cast<size_t>(4 * c.n_layer + 1));  // and the output's input
  EXPECT_EQ(cal->n_tokens, 256);
  const compress::InputStats* s = cal->for_weight("blk.0.attn_k.weight");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s, cal->for_weight("blk.0.attn_q.weight"));
  const compress::InputStats* so = cal->for_weight("output.weight");
  ASSERT_NE(so, nullptr);
  EXPECT_EQ(so->n, c.n_embd);
  EXPECT_EQ(so->n_tok, 256);
  EXPECT_EQ(cal->for_weight("token_embd.weight"), nullptr);
  EXPECT_EQ(cal->for_weight("blk.1.ffn_down.weight")->n, c.n_ff);
  // Layer 0's attention input is RMSNorm(embedding): recompute H from it.
  const int64_t D = c.n_embd;
  std::vector<float> norm_w(static_cast<size_t>(D)), e(static_cast<size_t>(D)), x(static_cast<size_t>(D));
  kernels::dequantize_row_ref((*src)->weights().layers[0].attn_norm.dtype, (*src)->weights().layers[0].attn_norm.data,
                              norm_w.data(), D);
  std::vector<double> h(static_cast<size_t>(D * D), 0.0);
  for (int64_t w = 0; w < 4; ++w)
    for (int64_t j = 0; j < 64; ++j) {
      const int32_t t = j == 0 ? (*tok)->bos() : (*ids)[static_cast<size_t>(w * 64 + j)];
      kernels::get_row((*src)->weights().token_embd, t, e.data());
      kernels::rmsnorm_ref(e.data(), norm_w.data(), c.norm_eps, x.data(), D);
      for (int64_t a = 0; a < D; ++a)
        for (int64_t b = 0; b < D; ++b) h[static_cast<size_t>(a * D + b)] += static_cast<double>(x[a]) * x[b];
    }
  for (int64_t i = 0; i < D * D; ++i) EXPECT_NEAR(s->xtx[i], h[i], 1e-3 * (1 + std::fabs(h[i]))) << i;
}

TEST(Calibrate, SequentialSeesTheCompressedLayers) {
  // A "compressor" that silences layer 0 (zero attention output and ffn_down
  // projections): layer 1 then reads RMSNorm(embedding) too, so its H is
  // layer 0's rescaled by the ratio of the two norms' weights.
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  compress::CalibrationOptions o;
  o.n_ctx = 64;
  o.max_tokens = 256;
  std::vector<float> zeros;
  auto cal = compress::calibrate_file(model, text, o, {}, [&](int64_t l, const compress::Calibration&, model::LayerWeights& w) {
    if (l != 0) return Status::Ok();
    zeros.assign(static_cast<size_t>(w.ffn_down.numel()), 0.0f);
    for (TensorView* v : {&w.wo, &w.ffn_down}) {
      v->data = zeros.data();
      v->dtype = DType::kF32;
      v->nbytes = static_cast<size_t>(v->numel()) * sizeof(float);
    }
    return Status::Ok();
  });
  ASSERT_TRUE(cal.ok()) << cal.status().to_string();
  auto src = model::ModelSource::open(model);
  ASSERT_TRUE(src.ok());
  const int64_t D = (*src)->config().n_embd;
  std::vector<float> g0(static_cast<size_t>(D)), g1(static_cast<size_t>(D));
  const auto& L = (*src)->weights().layers;
  kernels::dequantize_row_ref(L[0].attn_norm.dtype, L[0].attn_norm.data, g0.data(), D);
  kernels::dequantize_row_ref(L[1].attn_norm.dtype, L[1].attn_norm.data, g1.data(), D);
  const auto& h0 = cal->sites.at("blk.0.attn_in").xtx;
  const auto& h1 = cal->sites.at("blk.1.attn_in").xtx;
  for (int64_t a = 0; a < D; ++a)
    for (int64_t b = 0; b < D; ++b) {
      const double want = h0[a * D + b] * (g1[a] / g0[a]) * (g1[b] / g0[b]);
      EXPECT_NEAR(h1[a * D + b], want, 1e-3 * (1 + std::fabs(want))) << a << "," << b;
    }
}

TEST(Prune, SparseGpt24FileAndErrors) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("24.gguf");
  auto o = calibrated<compress::PruneOptions>("sparsegpt");
  o.pattern = "2:4";
  auto r = compress::prune_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto f = io::GgufFile::open(out);
  ASSERT_TRUE(f.ok());
  int n_pruned = 0;
  for (const auto& ti : (*f)->tensors()) {
    auto v = (*f)->tensor(ti.name);
    ASSERT_TRUE(v.ok());
    if (compress::input_site(ti.name).empty()) continue;
    ++n_pruned;
    const float* w = static_cast<const float*>(v->data);
    for (int64_t g = 0; g < v->numel(); g += 4)
      ASSERT_EQ((w[g] == 0) + (w[g + 1] == 0) + (w[g + 2] == 0) + (w[g + 3] == 0), 2) << ti.name << " at " << g;
  }
  EXPECT_EQ(n_pruned, 35);  // 7 matrices x 5 layers
  for (const auto& p : r->tensors) {
    if (compress::input_site(p.name).empty()) continue;
    EXPECT_GT(p.err, 0) << p.name;
  }
  ::unlink(out.c_str());

  // Bad input: named, and no file left behind.
  const std::string bad = tmp_path("bad.gguf");
  o.sparsity = 1.0;
  o.pattern.clear();
  EXPECT_NE(compress::prune_gguf(model, bad, o).status().to_string().find("--sparsity 1"), std::string::npos);
  o.sparsity = 0.5;
  o.pattern = "4:4";
  EXPECT_FALSE(compress::prune_gguf(model, bad, o).ok());
  o.pattern.clear();
  const std::string short_text = tmp_path("short.txt");
  std::ofstream(short_text) << "Once upon a time.";
  o.calib = short_text;
  auto st = compress::prune_gguf(model, bad, o).status();
  EXPECT_NE(st.to_string().find("give a longer --calib file"), std::string::npos) << st.to_string();
  o.calib = tmp_path("missing.txt");
  EXPECT_FALSE(compress::prune_gguf(model, bad, o).ok());
  o.method = "wanda";
  o.calib.clear();
  EXPECT_NE(compress::prune_gguf(model, bad, o).status().to_string().find("--calib"), std::string::npos);
  o.method = "random";
  EXPECT_NE(compress::prune_gguf(model, bad, o).status().to_string().find("random"), std::string::npos);
  o.method = "magnitude";
  EXPECT_FALSE(compress::prune_gguf(text, bad, o).ok());  // not a GGUF file
  EXPECT_FALSE(file_exists(bad));
  ::unlink(short_text.c_str());
}

TEST(Prune, FfnChannelsMakeASmallerModelThatRuns) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("ffn.gguf");
  auto o = calibrated<compress::PruneOptions>("ffn");
  o.sparsity = 0.25;
  auto r = compress::prune_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_LT(r->bytes_out, r->bytes_in);
  auto src = model::ModelSource::open(out);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ((*src)->config().n_ff, 129);  // round(172 * 0.75); 172 is not whole blocks of 32
  EXPECT_EQ((*src)->weights().layers[4].ffn_down.cols(), 129);
  EXPECT_EQ((*src)->weights().layers[4].ffn_up.rows(), 129);
  // It still models the text: perplexity within 2x of the full model's.
  auto tok = engine::open_tokenizer(model);
  ASSERT_TRUE(tok.ok());
  auto ids = compress::tokenize_file(**tok, text);
  ASSERT_TRUE(ids.ok());
  compress::PerplexityOptions po;
  po.n_ctx = 128;
  auto full_src = model::ModelSource::open(model);
  ASSERT_TRUE(full_src.ok());
  model::Model full((*full_src)->config(), (*full_src)->weights()), small((*src)->config(), (*src)->weights());
  auto p_full = compress::perplexity(full, *ids, (*tok)->bos(), po);
  auto p_small = compress::perplexity(small, *ids, (*tok)->bos(), po);
  ASSERT_TRUE(p_full.ok() && p_small.ok());
  EXPECT_GT(p_small->ppl, p_full->ppl);
  EXPECT_LT(p_small->ppl, 2 * p_full->ppl);
  ::unlink(out.c_str());
  o.pattern = "2:4";
  EXPECT_FALSE(compress::prune_gguf(model, out, o).ok());
}

TEST(Prune, HeadsByKeyValueGroup) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("heads.gguf");
  auto o = calibrated<compress::PruneOptions>("heads");
  o.sparsity = 0.25;  // 1 of 4 KV heads, with its 2 query heads
  auto r = compress::prune_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto src = model::ModelSource::open(out);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ((*src)->config().n_head, 6);
  EXPECT_EQ((*src)->config().n_head_kv, 3);
  EXPECT_EQ((*src)->config().head_dim, 8);
  EXPECT_EQ((*src)->weights().layers[2].wo.cols(), 48);
  auto tok = engine::open_tokenizer(model);
  ASSERT_TRUE(tok.ok());
  auto ids = compress::tokenize_file(**tok, text);
  ASSERT_TRUE(ids.ok());
  compress::PerplexityOptions po;
  po.n_ctx = 128;
  model::Model m((*src)->config(), (*src)->weights());
  auto ppl = compress::perplexity(m, *ids, (*tok)->bos(), po);
  ASSERT_TRUE(ppl.ok());
  EXPECT_LT(ppl->ppl, 30);  // F32: 6.85; chance: 512
  ::unlink(out.c_str());
  o.sparsity = 0.9;
  EXPECT_FALSE(compress::prune_gguf(model, out, o).ok());
  EXPECT_FALSE(file_exists(out));
}

TEST(Prune, LayersOfLeastInfluenceLeave) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("layers.gguf");
  auto o = calibrated<compress::PruneOptions>("layers");
  o.sparsity = 0.2;  // 1 of 5
  auto r = compress::prune_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  int dropped = 0;
  for (const auto& p : r->tensors) dropped += p.to == "-";
  EXPECT_EQ(dropped, 9);  // one layer's 9 tensors
  auto src = model::ModelSource::open(out);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  EXPECT_EQ((*src)->config().n_layer, 4);
  ::unlink(out.c_str());
  o.sparsity = 0.95;
  EXPECT_NE(compress::prune_gguf(model, out, o).status().to_string().find("all 5 layers"), std::string::npos);
  EXPECT_FALSE(file_exists(out));
}

TEST(QuantizeGptq, BelowRtnOnEveryLayer) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("gptq.gguf");
  auto o = calibrated<compress::QuantizeOptions>("gptq");
  o.format.type = DType::kQ4_0;
  auto r = compress::quantize_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  int n = 0;
  for (const auto& p : r->tensors) {
    if (p.err < 0) continue;
    ++n;
    EXPECT_LT(p.err, p.err_rtn) << p.name;
  }
  EXPECT_EQ(n, 31);  // ffn_down's rows of 172 are not whole blocks of 32: kept; the output too
  auto src = model::ModelSource::open(out);
  EXPECT_TRUE(src.ok());
  ::unlink(out.c_str());
  o.calib.clear();
  EXPECT_FALSE(compress::quantize_gguf(model, out, o).ok());
  o.calib = text;
  o.format.type = DType::kQ4_K;  // gptq does not write the k-quants
  EXPECT_FALSE(compress::quantize_gguf(model, out, o).ok());
  EXPECT_FALSE(file_exists(out));
}

TEST(QuantizeAwq, FoldsScalesAndBeatsRtnOnCalibration) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("awq.gguf");
  auto o = calibrated<compress::QuantizeOptions>("awq");
  o.format.type = DType::kQ4_0;
  auto r = compress::quantize_gguf(model, out, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  double err = 0, err_rtn = 0;
  for (const auto& p : r->tensors)
    if (p.err >= 0) err += p.err, err_rtn += p.err_rtn;
  EXPECT_LT(err, err_rtn);
  // The norms before attention now carry 1 / s: they changed.
  auto a = io::GgufFile::open(model), b = io::GgufFile::open(out);
  ASSERT_TRUE(a.ok() && b.ok());
  auto na = (*a)->tensor("blk.0.attn_norm.weight"), nb = (*b)->tensor("blk.0.attn_norm.weight");
  ASSERT_TRUE(na.ok() && nb.ok());
  EXPECT_NE(std::memcmp(na->data, nb->data, 64 * sizeof(float)), 0);
  ::unlink(out.c_str());
  o.keep = {"blk.0.attn_q"};
  EXPECT_FALSE(compress::quantize_gguf(model, out, o).ok());
  EXPECT_FALSE(file_exists(out));
}

TEST(CompressCli, PruneAndMixedQuantize) {
  const std::string model = test::shared_data(kModel), text = test::shared_data(kText);
  SLM_REQUIRE_DATA(model);
  SLM_REQUIRE_DATA(text);
  const std::string out = tmp_path("cli.gguf");
  std::string o;
  ASSERT_EQ(test::run_command(test::slm_binary() + " prune " + model + " --method wanda --pattern 2:4 --calib " + text +
                                  " --calib-ctx 128 --out " + out + " 2>/dev/null", &o), 0);
  EXPECT_NE(o.find("mean relative output error"), std::string::npos) << o;
  EXPECT_NE(o.find("wrote " + out), std::string::npos) << o;
  o.clear();
  EXPECT_NE(test::run_command(test::slm_binary() + " prune " + model + " --sparsity 1.5 --out " + out + " 2>&1", &o), 0);
  EXPECT_NE(o.find("--sparsity 1.5 is outside [0, 1)"), std::string::npos) << o;
  ::unlink(out.c_str());
  // Mixed types: embeddings and output kept F32, the blocks Q8_0 by GPTQ; slm info shows each.
  o.clear();
  ASSERT_EQ(test::run_command(test::slm_binary() + " quantize " + model + " --type Q8_0 --method gptq --calib " + text +
                                  " --calib-ctx 128 --keep token_embd output. --out " + out + " 2>/dev/null", &o), 0);
  o.clear();
  ASSERT_EQ(test::run_command(test::slm_binary() + " info " + out, &o), 0);
  for (const auto& [tensor, type] : {std::pair{"token_embd.weight", "F32"}, std::pair{"output.weight", "F32"},
                                     std::pair{"blk.3.attn_v.weight", "Q8_0"}}) {
    const size_t at = o.find(std::string("  ") + tensor + " ");
    ASSERT_NE(at, std::string::npos) << tensor;
    EXPECT_NE(o.substr(at, 60).find(type), std::string::npos) << o.substr(at, 60);
  }
  ::unlink(out.c_str());
}

}  // namespace
}  // namespace slm
