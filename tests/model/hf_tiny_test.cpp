// Every architecture against Hugging Face transformers' float64 outputs
// (../shared/data/models/hf-tiny): decoder logits (Qwen2's qkv biases,
// Mistral's sliding window, SmolLM2's tied embeddings and rope theta, Phi-3's
// fused projections, partial rotary and sliding window, Gemma's (1 + w)
// norms, GeGLU and scaled embeddings, GPT-2's learned positions, LayerNorm,
// Conv1D weights and GELU MLP) and encoder hidden states (BERT with token
// types and pooler, DistilBERT). The references were built so that dropping
// any of these features changes the outputs, and the FeatureDropped tests
// check that it does here too.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>

#include "slm/model/convert.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm::model {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

// Our outputs for the reference's sequences, flattened, and the reference's
// beside them: logits for a decoder; last hidden states (and the pooler,
// where there is one) for an encoder.
struct Outputs {
  std::vector<double> ours, ref;
};

Outputs run_reference_inputs(const std::string& dir, const ModelConfig& c, const Weights& w) {
  Model m(c, w);
  const bool encoder = file_exists(dir + "/reference_hidden.json");
  const json ref = load_json(dir + (encoder ? "/reference_hidden.json" : "/reference_logits.json"));
  const int64_t width = encoder ? c.n_embd : c.n_vocab;
  Outputs o;
  for (size_t s = 0; s < ref["sequences"].size(); ++s) {
    auto ids = ref["sequences"][s].get<std::vector<int32_t>>();
    std::vector<int32_t> types(ids.size(), 0);
    if (ref.contains("token_types") && c.n_token_types > 0) types = ref["token_types"][s].get<std::vector<int32_t>>();
    KvCache kv(c, 0, c.n_layer, 1, static_cast<int64_t>(ids.size()));
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, true, types[i]});
    std::vector<float> out;
    Status st = encoder ? m.encode(batch, kv, &out) : m.forward(batch, kv, &out);
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok()) return {};
    const json& want = ref[encoder ? "hidden" : "logits"][s];
    for (size_t p = 0; p < ids.size(); ++p)
      for (int64_t v = 0; v < width; ++v) {
        o.ours.push_back(out[p * width + v]);
        o.ref.push_back(want[p][v].get<double>());
      }
    if (encoder && ref.contains("pooler") && c.has_pooler) {
      const std::vector<float> pooled = m.pooler(out.data());
      for (int64_t v = 0; v < width; ++v) {
        o.ours.push_back(pooled[v]);
        o.ref.push_back(ref["pooler"][s][v].get<double>());
      }
    }
  }
  return o;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

double max_diff_vs_reference(const std::string& dir, const ModelConfig& c, const Weights& w) {
  const Outputs o = run_reference_inputs(dir, c, w);
  return max_abs_diff(o.ours, o.ref);
}

class HfTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(HfTiny, MatchesTransformersAtEveryPosition) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const double d = max_diff_vs_reference(dir, (*src)->config(), (*src)->weights());
  std::printf("[ diff ] %s: max |ours - reference| = %.3g\n", GetParam(), d);
  EXPECT_LT(d, 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, HfTiny,
                         ::testing::Values("qwen2", "mistral", "smollm2", "phi3", "gemma", "distilgpt2", "bert",
                                           "distilbert"));

// slm convert's GGUF of each model: GGUF names and metadata, the same outputs.
TEST_P(HfTiny, ConvertedToGgufGivesTheSameOutputs) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const std::string out = (std::filesystem::temp_directory_path() /
                           fmt::format("slm_convert_{}_{}.gguf", ::getpid(), GetParam())).string();
  auto rep = convert_to_gguf(**src, out);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  auto gg = ModelSource::open(out);
  std::filesystem::remove(out);  // the mapping keeps the bytes
  ASSERT_TRUE(gg.ok()) << gg.status().to_string();
  EXPECT_EQ((*gg)->format(), FileFormat::kGguf);
  const ModelConfig& a = (*src)->config();
  const ModelConfig& b = (*gg)->config();
  EXPECT_EQ(b.arch, a.arch == "distilbert" ? "bert" : a.arch);
  EXPECT_EQ(a.features(), b.features());
  const std::string arch_key = b.arch + ".embedding_length";
  bool named = false;
  for (const auto& [k, v] : (*gg)->metadata()) named |= k == arch_key;
  EXPECT_TRUE(named) << arch_key;
  const Outputs x = run_reference_inputs(dir, a, (*src)->weights());
  const Outputs y = run_reference_inputs(dir, b, (*gg)->weights());
  const double d = max_abs_diff(x.ours, y.ours);
  std::printf("[ gguf ] %s: max |gguf - safetensors| = %.3g, vs reference %.3g\n", GetParam(), d,
              max_abs_diff(y.ours, y.ref));
  EXPECT_LT(d, 1e-5) << GetParam();
  EXPECT_LT(max_abs_diff(y.ours, y.ref), 1e-4) << GetParam();
}

// Each case switches one feature off and expects the reference to be missed.
struct Drop {
  const char* model;
  const char* feature;
  std::function<void(ModelConfig*, Weights*)> drop;
};

TEST(HfTinyFeatureDropped, EachFeatureChangesTheOutputs) {
  const Drop drops[] = {
      {"qwen2", "qkv biases", [](ModelConfig*, Weights* w) { for (auto& L : w->layers) L.bq = L.bk = L.bv = {}; }},
      {"mistral", "sliding window", [](ModelConfig* c, Weights*) { c->sliding_window = 0; }},
      {"phi3", "sliding window", [](ModelConfig* c, Weights*) { c->sliding_window = 0; }},
      {"phi3", "partial rotary", [](ModelConfig* c, Weights*) { c->n_rot = c->head_dim; }},
      {"gemma", "(1 + w) norms", [](ModelConfig* c, Weights*) { c->norm_plus_one = false; }},
      {"gemma", "embedding scale", [](ModelConfig* c, Weights*) { c->embd_scale = 1; }},
      {"distilgpt2", "learned positions", [](ModelConfig*, Weights* w) { w->position_embd = {}; }},
      {"distilgpt2", "biases", [](ModelConfig*, Weights* w) { for (auto& L : w->layers) L.ffn_up_b = L.bo = {}; }},
      {"bert", "token types", [](ModelConfig* c, Weights* w) { c->n_token_types = 0; w->token_types = {}; }},
      {"bert", "bidirectional attention", [](ModelConfig* c, Weights*) { c->causal = true; }},
      {"distilbert", "post-norm", [](ModelConfig* c, Weights*) { c->post_norm = false; }},
  };
  for (const Drop& d : drops) {
    const std::string dir = test::shared_data(std::string("models/hf-tiny/") + d.model);
    SLM_REQUIRE_DATA(dir);
    auto src = ModelSource::open(dir);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    ModelConfig c = (*src)->config();
    Weights w = (*src)->weights();
    d.drop(&c, &w);
    const double diff = max_diff_vs_reference(dir, c, w);
    std::printf("[ drop ] %s without %s: max diff %.3g\n", d.model, d.feature, diff);
    EXPECT_GT(diff, 1e-3) << d.model << " without " << d.feature << " still matches";
  }
}

}  // namespace
}  // namespace slm::model
