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

// Largest |ours - reference| over every position of every sequence: logits
// for a decoder; last hidden states (and the pooler, where there is one) for an encoder.
double max_diff_vs_reference(const std::string& dir, const ModelConfig& c, const Weights& w) {
  Model m(c, w);
  const bool encoder = file_exists(dir + "/reference_hidden.json");
  const json ref = load_json(dir + (encoder ? "/reference_hidden.json" : "/reference_logits.json"));
  const int64_t width = encoder ? c.n_embd : c.n_vocab;
  double max_diff = 0;
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
    if (!st.ok()) return INFINITY;
    const json& want = ref[encoder ? "hidden" : "logits"][s];
    for (size_t p = 0; p < ids.size(); ++p)
      for (int64_t v = 0; v < width; ++v)
        max_diff = std::max(max_diff, std::fabs(out[p * width + v] - want[p][v].get<double>()));
    if (encoder && ref.contains("pooler") && c.has_pooler) {
      const std::vector<float> pooled = m.pooler(out.data());
      for (int64_t v = 0; v < width; ++v)
        max_diff = std::max(max_diff, std::fabs(pooled[v] - ref["pooler"][s][v].get<double>()));
    }
  }
  return max_diff;
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
      {"gemma", "(1 + w) norms", [](ModelConfig* c, Weights*) { c->norm_weight_offset = 0; }},
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
