// Every hf-tiny architecture through the slm binary: `slm run --prompt-ids
// --print-ids` picks the next token Hugging Face's float64 logits pick, from
// the safetensors folder and from the GGUF `slm convert` writes of it; `slm
// embed --ids` gives the mean of the reference hidden states.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace slm {
namespace {

using nlohmann::json;

json load_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

std::string tmp_path(const std::string& name) {
  return ::testing::TempDir() + "/slm_arch_" + std::to_string(::getpid()) + "_" + name;
}

std::string join_ids(const std::vector<int>& ids, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += (i ? " " : "") + std::to_string(ids[i]);
  return s;
}

class ArchCli : public ::testing::TestWithParam<const char*> {};

TEST_P(ArchCli, GreedyNextTokenMatchesTransformersFromBothFormats) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  const std::string gguf = tmp_path(std::string(GetParam()) + ".gguf");
  std::string out;
  ASSERT_EQ(test::run_command(test::slm_binary() + " convert " + dir + " --out " + gguf + " 2>&1", &out), 0) << out;
  const json ref = load_json(dir + "/reference_logits.json");
  int checked = 0;
  for (size_t s = 0; s < ref["sequences"].size(); ++s) {
    const auto ids = ref["sequences"][s].get<std::vector<int>>();
    for (size_t k : {size_t{1}, size_t{6}, ids.size() - 1}) {  // the model has ids.size() positions
      std::vector<double> lg = ref["logits"][s][k - 1].get<std::vector<double>>();
      std::vector<double> sorted = lg;
      std::sort(sorted.rbegin(), sorted.rend());
      if (sorted[0] - sorted[1] < 1e-4) continue;  // a near-tie: either answer is right
      const int want = static_cast<int>(std::max_element(lg.begin(), lg.end()) - lg.begin());
      for (const std::string& model : {dir, gguf}) {
        const std::string cmd = test::slm_binary() + " run " + model + " --prompt-ids \"" + join_ids(ids, k) +
                                "\" -n 1 --temp 0 --print-ids 2>/dev/null";
        out.clear();  // run_command appends
        ASSERT_EQ(test::run_command(cmd, &out), 0) << cmd;
        ASSERT_FALSE(out.empty()) << cmd;
        EXPECT_EQ(std::stoi(out), want) << cmd;
        ++checked;
      }
    }
  }
  std::remove(gguf.c_str());
  EXPECT_GT(checked, 8);
}

INSTANTIATE_TEST_SUITE_P(Decoders, ArchCli,
                         ::testing::Values("qwen2", "mistral", "smollm2", "phi3", "gemma", "distilgpt2"));

TEST(ArchCliEmbed, MeanOfTheReferenceHiddenStates) {
  const std::string dir = test::shared_data("models/hf-tiny/distilbert");
  SLM_REQUIRE_DATA(dir);
  const json ref = load_json(dir + "/reference_hidden.json");
  std::string lines;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq.get<std::vector<int>>();
    lines += join_ids(ids, ids.size()) + "\n";
  }
  const std::string in = tmp_path("embed_in.txt");
  std::ofstream(in) << lines;
  std::string out;
  ASSERT_EQ(test::run_command(test::slm_binary() + " embed " + dir + " --ids < " + in, &out), 0) << out;
  std::remove(in.c_str());
  std::istringstream got(out);
  std::string line;
  double worst = 0;
  size_t s = 0;
  for (; std::getline(got, line); ++s) {
    ASSERT_LT(s, ref["hidden"].size()) << out;
    const auto v = json::parse(line).get<std::vector<double>>();
    const auto& h = ref["hidden"][s];
    ASSERT_EQ(v.size(), h[0].size());
    for (size_t d = 0; d < v.size(); ++d) {
      double mean = 0;
      for (const auto& row : h) mean += row[d].get<double>();
      mean /= static_cast<double>(h.size());
      worst = std::max(worst, std::fabs(v[d] - mean));
    }
  }
  EXPECT_EQ(s, ref["sequences"].size());
  EXPECT_LT(worst, 1e-4);
}

TEST(ArchCliEmbed, RefusesDecodersAndTextWithoutTokenizer) {
  const std::string dir = test::shared_data("models/hf-tiny");
  SLM_REQUIRE_DATA(dir + "/bert");
  std::string out;
  EXPECT_NE(test::run_command("echo 1 2 | " + test::slm_binary() + " embed " + dir + "/qwen2 --ids 2>&1", &out), 0);
  EXPECT_NE(out.find("decoder"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command("echo hello | " + test::slm_binary() + " embed " + dir + "/bert 2>&1", &out), 0);
  EXPECT_NE(out.find("no tokenizer"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(test::run_command("echo 1 99 | " + test::slm_binary() + " embed " + dir + "/bert --ids 2>&1", &out), 0);
  EXPECT_NE(out.find("outside the vocabulary"), std::string::npos) << out;
}

}  // namespace
}  // namespace slm
