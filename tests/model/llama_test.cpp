// The Llama forward pass against references nobody here wrote in C++:
// llama2.c's own logits, and numpy float64 fixtures from tests/ref/llama_ref.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

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

// Runs ids through the model one batch (the whole prompt at once), returning
// logits (n, vocab).
std::vector<float> all_logits(const ModelSource& src, const std::vector<int32_t>& ids) {
  Model m(src.config(), src.weights());
  KvCache kv(src.config(), 0, src.config().n_layer, 1, static_cast<int64_t>(ids.size()));
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, true});
  std::vector<float> logits;
  Status st = m.forward(batch, kv, &logits);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return logits;
}

std::vector<int32_t> greedy(const ModelSource& src, std::vector<int32_t> prompt, int n) {
  Model m(src.config(), src.weights());
  KvCache kv(src.config(), 0, src.config().n_layer, 1, static_cast<int64_t>(prompt.size()) + n);
  std::vector<BatchToken> batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.push_back({prompt[i], static_cast<int64_t>(i), 0, i + 1 == prompt.size()});
  std::vector<int32_t> out;
  std::vector<float> logits;
  int64_t pos = static_cast<int64_t>(prompt.size());
  for (int s = 0; s < n; ++s) {
    Status st = m.forward(batch, kv, &logits);
    EXPECT_TRUE(st.ok()) << st.to_string();
    int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    out.push_back(next);
    batch = {{next, pos++, 0, true}};
  }
  return out;
}

const char* kStoriesFiles[] = {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin",
                               "models/stories260K-hf"};

class Stories : public ::testing::TestWithParam<const char*> {};

TEST_P(Stories, LogitsMatchLlama2c) {
  const std::string path = test::shared_data(GetParam());
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  json ref = load_json(test::shared_data("testvectors/stories260K_logits.json"));
  std::vector<int32_t> ids = ref["prompt_ids"].get<std::vector<int32_t>>();
  auto g = ref["greedy_ids"].get<std::vector<int32_t>>();
  const auto& rows = ref["logits"];
  ids.insert(ids.end(), g.begin(), g.begin() + static_cast<long>(rows.size() - ids.size()));
  std::vector<float> logits = all_logits(**src, ids);
  ASSERT_EQ(logits.size(), rows.size() * 512);
  double max_diff = 0;
  for (size_t p = 0; p < rows.size(); ++p)
    for (size_t v = 0; v < 512; ++v) max_diff = std::max(max_diff, std::fabs(logits[p * 512 + v] - rows[p][v].get<double>()));
  std::printf("[ diff ] %s: max |logit - reference| = %.3g\n", GetParam(), max_diff);
  EXPECT_LT(max_diff, 1e-4) << GetParam();
}

TEST_P(Stories, Greedy200MatchesNumpyReference) {
  const std::string path = test::shared_data(GetParam());
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  json ref = load_json(test::fixture("stories260K_greedy200.json"));
  auto want = ref["ids"].get<std::vector<int32_t>>();
  EXPECT_EQ(greedy(**src, {1}, static_cast<int>(want.size())), want);
}

INSTANTIATE_TEST_SUITE_P(AllFormats, Stories, ::testing::ValuesIn(kStoriesFiles));

TEST(TinyRandomLlama2, Bf16LogitsMatchNumpyReference) {
  const std::string path = test::shared_data("models/tiny-random-llama-2");
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  json ref = load_json(test::fixture("tiny_random_llama2_logits.json"));
  auto ids = ref["ids"].get<std::vector<int32_t>>();
  std::vector<float> logits = all_logits(**src, ids);
  const int64_t V = (*src)->config().n_vocab;
  ASSERT_EQ(V, 3000);
  double max_diff = 0;
  for (size_t p = 0; p < ids.size(); ++p)
    for (int64_t v = 0; v < V; ++v)
      max_diff = std::max(max_diff, std::fabs(logits[p * V + v] - ref["logits"][p][v].get<double>()));
  std::printf("[ diff ] tiny-random-llama-2: max |logit - reference| = %.3g\n", max_diff);
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_EQ(greedy(**src, ids, 20), ref["greedy"].get<std::vector<int32_t>>());
}

// Splitting the layers over two calls (as a pipeline of machines would) gives
// the same logits as one call.
TEST(ForwardRange, SlicesComposeToTheWholeModel) {
  const std::string path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok());
  const ModelConfig& c = (*src)->config();
  Model m(c, (*src)->weights());
  std::vector<BatchToken> batch = {{1, 0, 0, false}, {403, 1, 0, false}, {407, 2, 0, true}};
  KvCache whole(c, 0, c.n_layer, 1, 8);
  std::vector<float> want;
  ASSERT_TRUE(m.forward(batch, whole, &want).ok());

  KvCache front(c, 0, 2, 1, 8), back(c, 2, c.n_layer, 1, 8);
  std::vector<float> hidden(batch.size() * c.n_embd), got;
  ASSERT_TRUE(m.embed(batch, hidden.data()).ok());
  ASSERT_TRUE(m.forward_layers(batch, 0, 2, hidden.data(), front).ok());
  ASSERT_TRUE(m.forward_layers(batch, 2, c.n_layer, hidden.data(), back).ok());
  m.output(batch, hidden.data(), &got);
  ASSERT_EQ(got, want);
  // A range outside the cache is an error, not a crash.
  EXPECT_FALSE(m.forward_layers(batch, 0, c.n_layer, hidden.data(), front).ok());
}

// A half-precision KV cache stays close to the F32 one.
TEST(KvCacheF16, LogitsCloseToF32) {
  const std::string path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok());
  const ModelConfig& c = (*src)->config();
  Model m(c, (*src)->weights());
  std::vector<BatchToken> batch;
  const int32_t ids[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 400, 428};
  for (int i = 0; i < 12; ++i) batch.push_back({ids[i], i, 0, true});
  KvCache k32(c, 0, c.n_layer, 1, 16), k16(c, 0, c.n_layer, 1, 16, DType::kF16);
  std::vector<float> a, b;
  ASSERT_TRUE(m.forward(batch, k32, &a).ok());
  ASSERT_TRUE(m.forward(batch, k16, &b).ok());
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
  std::printf("[ diff ] F16 KV cache vs F32: max |logit diff| = %.3g\n", max_diff);
  EXPECT_GT(max_diff, 0.0);  // it did use half precision
  EXPECT_LT(max_diff, 2e-2);
  EXPECT_EQ(k16.bytes() * 2, k32.bytes());
}

// Two sequences in one batch give the same logits as each alone.
TEST(Batch, SequencesDoNotSeeEachOther) {
  const std::string path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(path);
  auto src = ModelSource::open(path);
  ASSERT_TRUE(src.ok());
  const ModelConfig& c = (*src)->config();
  Model m(c, (*src)->weights());
  KvCache kv(c, 0, c.n_layer, 2, 8);
  std::vector<float> both, a, b;
  ASSERT_TRUE(m.forward({{1, 0, 0, false}, {1, 0, 1, false}, {403, 1, 0, true}, {300, 1, 1, true}}, kv, &both).ok());
  KvCache kv1(c, 0, c.n_layer, 1, 8);
  ASSERT_TRUE(m.forward({{1, 0, 0, false}, {403, 1, 0, true}}, kv1, &a).ok());
  KvCache kv2(c, 0, c.n_layer, 1, 8);
  ASSERT_TRUE(m.forward({{1, 0, 0, false}, {300, 1, 0, true}}, kv2, &b).ok());
  for (int v = 0; v < 512; ++v) {
    EXPECT_NEAR(both[v], a[v], 1e-5);
    EXPECT_NEAR(both[512 + v], b[v], 1e-5);
  }
  // Bad tokens, positions and slots are refused.
  std::vector<float> out;
  EXPECT_FALSE(m.forward({{512, 0, 0, true}}, kv, &out).ok());
  EXPECT_FALSE(m.forward({{1, 8, 0, true}}, kv, &out).ok());
  EXPECT_FALSE(m.forward({{1, 0, 2, true}}, kv, &out).ok());
  // Positions must continue without gaps or repeats; a rewind overwrites.
  KvCache kv3(c, 0, c.n_layer, 1, 8);
  EXPECT_FALSE(m.forward({{1, 1, 0, true}}, kv3, &out).ok());                    // gap: slot is empty
  EXPECT_FALSE(m.forward({{1, 0, 0, false}, {2, 0, 0, true}}, kv3, &out).ok());  // repeat
  EXPECT_FALSE(m.forward({{1, 0, 0, false}, {2, 2, 0, true}}, kv3, &out).ok());  // gap inside the batch
  ASSERT_TRUE(m.forward({{1, 0, 0, false}, {2, 1, 0, true}}, kv3, &out).ok());
  EXPECT_EQ(kv3.length(0), 2);
  EXPECT_FALSE(m.forward({{3, 3, 0, true}}, kv3, &out).ok());
  EXPECT_TRUE(m.forward({{3, 1, 0, true}}, kv3, &out).ok());  // rewind
  EXPECT_EQ(kv3.length(0), 2);
}

// A context that cannot fit is refused with what to change, not allocated.
TEST(KvCacheCreate, RefusesWhatCannotFit) {
  ModelConfig c;
  c.n_layer = 22;
  c.n_head_kv = 4;
  c.head_dim = 64;
  auto r = KvCache::create(c, 0, 22, 1, int64_t{1} << 24);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--ctx"), std::string::npos) << r.status().message();
  EXPECT_FALSE(KvCache::create(c, 0, 22, 1, 0).ok());
  EXPECT_FALSE(KvCache::create(c, 0, 23, 1, 16).ok());
  EXPECT_TRUE(KvCache::create(c, 0, 22, 1, 16).ok());
}

}  // namespace
}  // namespace slm::model
