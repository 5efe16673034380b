// Every hf-tiny architecture through the slm binary: `slm run --prompt-ids
// --print-ids` picks the next token Hugging Face's float64 logits pick, from
// the safetensors folder and from the GGUF `slm convert` writes of it; `slm
// embed --ids` gives the mean of the reference hidden states.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>
#include <sstream>

#include <nlohmann/json.hpp>

#include "slm/io/safetensors.h"
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

// slm info names the architecture and the features that matter for it.
TEST(ArchCliInfo, NamesArchitectureAndFeatures) {
  const std::pair<const char*, std::vector<const char*>> cases[] = {
      {"qwen2", {"arch qwen2", "qkv bias", "multi-query attention"}},
      {"mistral", {"arch mistral", "sliding window 4"}},
      {"smollm2", {"arch llama", "tied output", "rope theta 100000"}},
      {"phi3", {"arch phi3", "partial rotary (6 of 8 dims)", "sliding window 4", "grouped-query attention"}},
      {"gemma", {"arch gemma", "RMSNorm (1 + weight)", "GeGLU", "GELU (tanh)", "embeddings scaled by 2.82843",
                 "head dim 6 independent"}},
      {"distilgpt2", {"arch gpt2", "learned positions", "LayerNorm with bias", "MLP (GELU (tanh))"}},
      {"bert", {"arch bert", "bidirectional attention", "token types", "post-norm blocks", "GELU (erf)", "pooler (tanh)"}},
      {"distilbert", {"arch distilbert", "bidirectional attention", "mean pooling"}},
  };
  for (const auto& [model, needles] : cases) {
    const std::string dir = test::shared_data(std::string("models/hf-tiny/") + model);
    SLM_REQUIRE_DATA(dir);
    std::string out;
    ASSERT_EQ(test::run_command(test::slm_binary() + " info " + dir + " 2>&1", &out), 0) << out;
    for (const char* n : needles) EXPECT_NE(out.find(n), std::string::npos) << model << ": no '" << n << "' in\n" << out;
  }
}

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

// Text goes through the model's WordPiece tokenizer with [CLS] ... [SEP]: a
// vocabulary of the tiny model's 11 ids written beside its weights.
TEST(ArchCliEmbed, TextIsTokenizedWithClsAndSep) {
  const std::string src = test::shared_data("models/hf-tiny/distilbert");
  SLM_REQUIRE_DATA(src);
  const std::string dir = tmp_path("distilbert_text");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(src + "/config.json", dir + "/config.json");
  std::filesystem::create_symlink(src + "/model.safetensors", dir + "/model.safetensors");
  json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2}, {"[SEP]", 3}, {"[MASK]", 4}, {"the", 5},
                {"cat", 6},   {"sat", 7},   {"##s", 8},   {"on", 9},    {"mat", 10}};
  json added = json::array();
  for (int id = 0; id < 5; ++id)
    added.push_back({{"id", id}, {"content", std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}[id]},
                     {"special", true}, {"single_word", false}, {"lstrip", false}, {"rstrip", false}, {"normalized", false}});
  const json tok = {{"version", "1.0"},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
                    {"post_processor", {{"type", "BertProcessing"}, {"cls", {"[CLS]", 2}}, {"sep", {"[SEP]", 3}}}},
                    {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
                    {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                               {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  std::string from_text, from_ids;
  ASSERT_EQ(test::run_command("echo 'the cats sat on the mat' | " + test::slm_binary() + " embed " + dir + " 2>&1",
                              &from_text), 0) << from_text;
  ASSERT_EQ(test::run_command("echo '2 5 6 8 7 9 5 10 3' | " + test::slm_binary() + " embed " + dir + " --ids 2>&1",
                              &from_ids), 0) << from_ids;
  std::filesystem::remove_all(dir);
  EXPECT_EQ(from_text, from_ids);
  EXPECT_EQ(json::parse(from_text).size(), 8u);
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

// An hf-tiny encoder's folder with a classification head of known weights
// added, as BertForSequenceClassification / DistilBertForSequenceClassification
// store it: extra (name, rows, cols) tensors filled with sin(k).
class WithHead {
 public:
  WithHead(const std::string& model, const std::vector<std::tuple<std::string, int64_t, int64_t>>& extra,
           const json& id2label)
      : dir_(tmp_path(model + "_head")) {
    std::filesystem::create_directories(dir_);
    const std::string src = test::shared_data("models/hf-tiny/" + model);
    auto st = io::SafetensorsFile::open(src + "/model.safetensors");
    EXPECT_TRUE(st.ok());
    std::vector<TensorView> views;
    for (const auto& t : (*st)->tensors()) views.push_back((*st)->tensor(t.name).value());
    int k = 0;
    for (const auto& [name, rows, cols] : extra) {
      auto& buf = bufs_.emplace_back();
      for (int64_t i = 0; i < rows * std::max<int64_t>(cols, 1); ++i) buf.push_back(std::sin(static_cast<float>(++k)));
      TensorView v;
      v.name = name;
      v.shape = cols > 0 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows};
      v.data = buf.data();
      v.nbytes = buf.size() * sizeof(float);
      views.push_back(v);
    }
    EXPECT_TRUE(io::write_safetensors(dir_ + "/model.safetensors", views).ok());
    json c = load_json(src + "/config.json");
    c["id2label"] = id2label;
    std::ofstream(dir_ + "/config.json") << c.dump();
  }
  ~WithHead() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }
  const std::vector<float>& tensor(size_t i) const { return bufs_[i]; }

 private:
  std::string dir_;
  std::vector<std::vector<float>> bufs_;
};

// y = w x + b in double; w (rows, x.size()).
std::vector<double> affine(const std::vector<float>& w, const std::vector<float>& b, const std::vector<double>& x) {
  std::vector<double> y(b.begin(), b.end());
  for (size_t r = 0; r < y.size(); ++r)
    for (size_t c = 0; c < x.size(); ++c) y[r] += static_cast<double>(w[r * x.size() + c]) * x[c];
  return y;
}

// Runs slm classify --ids over the reference's sequences; checks labels and
// probabilities against softmax(expected_logits(s)).
void check_classify(const std::string& model_dir, const json& ref, const std::vector<std::string>& labels,
                    const std::function<std::vector<double>(size_t)>& expected_logits) {
  std::string lines;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq.get<std::vector<int>>();
    lines += join_ids(ids, ids.size()) + "\n";
  }
  const std::string in = tmp_path("classify_in.txt");
  std::ofstream(in) << lines;
  std::string out;
  ASSERT_EQ(test::run_command(test::slm_binary() + " classify " + model_dir + " --ids < " + in, &out), 0) << out;
  std::remove(in.c_str());
  std::istringstream got(out);
  std::string line;
  size_t s = 0;
  for (; std::getline(got, line); ++s) {
    const json j = json::parse(line);
    std::vector<double> want = expected_logits(s);
    const double mx = *std::max_element(want.begin(), want.end());
    double sum = 0;
    for (double& e : want) sum += (e = std::exp(e - mx));
    size_t best = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_NEAR(j["scores"][labels[i]].get<double>(), want[i] / sum, 1e-5) << line;
      if (want[i] > want[best]) best = i;
    }
    EXPECT_EQ(j["label"], labels[best]) << line;
  }
  EXPECT_EQ(s, ref["sequences"].size());
}

// DistilBertForSequenceClassification: classifier(relu(pre_classifier(CLS))).
TEST(ArchCliClassify, DistilBertHeadOnTheClsToken) {
  SLM_REQUIRE_DATA(test::shared_data("models/hf-tiny/distilbert"));
  const WithHead m("distilbert",
                   {{"pre_classifier.weight", 8, 8}, {"pre_classifier.bias", 8, 0}, {"classifier.weight", 3, 8},
                    {"classifier.bias", 3, 0}},
                   {{"0", "neg"}, {"1", "neutral"}, {"2", "pos \"quoted\""}});
  const json ref = load_json(test::shared_data("models/hf-tiny/distilbert/reference_hidden.json"));
  const auto expected = [&](size_t s) {
    std::vector<double> h = affine(m.tensor(0), m.tensor(1), ref["hidden"][s][0].get<std::vector<double>>());
    for (double& e : h) e = std::max(e, 0.0);
    return affine(m.tensor(2), m.tensor(3), h);
  };
  const std::vector<std::string> labels = {"neg", "neutral", "pos \"quoted\""};
  check_classify(m.dir(), ref, labels, expected);
  // The GGUF keeps the head, its relu and its labels.
  const std::string gguf = tmp_path("distilbert_head.gguf");
  std::string out;
  ASSERT_EQ(test::run_command(test::slm_binary() + " convert " + m.dir() + " --out " + gguf + " 2>&1", &out), 0) << out;
  check_classify(gguf, ref, labels, expected);
  std::remove(gguf.c_str());
  ASSERT_EQ(test::run_command(test::slm_binary() + " info " + m.dir(), &out), 0);
  EXPECT_NE(out.find("classification head (3 labels)"), std::string::npos) << out;
}

TEST(ArchCliClassify, ModelWithoutHeadIsNamed) {
  const std::string dir = test::shared_data("models/hf-tiny/bert");
  SLM_REQUIRE_DATA(dir);
  std::string out;
  EXPECT_NE(test::run_command("echo 1 2 | " + test::slm_binary() + " classify " + dir + " --ids 2>&1", &out), 0);
  EXPECT_NE(out.find("no classification head"), std::string::npos) << out;
}

}  // namespace
}  // namespace slm
