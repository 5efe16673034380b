// Llama-family variants against Hugging Face transformers' float64 logits
// (../shared/data/models/hf-tiny): Qwen2's qkv biases, Mistral's sliding
// window, SmolLM2's tied embeddings and rope theta. The references were built
// so that dropping any of these features changes the outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "slm/model/llama.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm::model {
namespace {

class HfTiny : public ::testing::TestWithParam<const char*> {};

TEST_P(HfTiny, LogitsMatchTransformersAtEveryPosition) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const ModelConfig& c = (*src)->config();
  Model m(c, (*src)->weights());
  std::ifstream f(dir + "/reference_logits.json");
  auto ref = nlohmann::json::parse(f);
  double max_diff = 0;
  for (size_t s = 0; s < ref["sequences"].size(); ++s) {
    auto ids = ref["sequences"][s].get<std::vector<int32_t>>();
    KvCache kv(c, 0, c.n_layer, 1, static_cast<int64_t>(ids.size()));
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, true});
    std::vector<float> logits;
    Status st = m.forward(batch, kv, &logits);
    ASSERT_TRUE(st.ok()) << st.to_string();
    for (size_t p = 0; p < ids.size(); ++p)
      for (int64_t v = 0; v < c.n_vocab; ++v)
        max_diff = std::max(max_diff, std::fabs(logits[p * c.n_vocab + v] - ref["logits"][s][p][v].get<double>()));
  }
  std::printf("[ diff ] %s: max |logit - reference| = %.3g\n", GetParam(), max_diff);
  EXPECT_LT(max_diff, 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(LlamaFamily, HfTiny, ::testing::Values("qwen2", "mistral", "smollm2"));

TEST(HfTinyRefused, GemmaAndPhi3NameWhatIsMissing) {
  for (const char* arch : {"gemma", "phi3"}) {
    const std::string dir = test::shared_data(std::string("models/hf-tiny/") + arch);
    if (!file_exists(dir)) GTEST_SKIP() << "missing " << dir;
    auto src = ModelSource::open(dir);
    ASSERT_FALSE(src.ok());
    EXPECT_EQ(src.status().code(), Status::Code::kUnsupported);
    EXPECT_NE(src.status().message().find(arch), std::string::npos) << src.status().message();
  }
}

}  // namespace
}  // namespace slm::model
