// Tokenizers against ids produced by reference implementations (Hugging Face
// tokenizers, sentencepiece, tiktoken, llama2.c): ../shared/data.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "slm/core/mapped_file.h"
#include "slm/io/gguf.h"
#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::tokenizer {
namespace {

using test::shared_data;

std::string slurp(const std::string& path) {
  auto r = read_file(path);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? r.value() : std::string();
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

std::unique_ptr<Tokenizer> load_or_fail(const std::string& path, int32_t vocab = 0) {
  auto r = load_tokenizer_file(path, vocab);
  EXPECT_TRUE(r.ok()) << path << ": " << r.status().to_string();
  return r.ok() ? std::move(r).value() : nullptr;
}

// llama.cpp test-tokenizer-0 pairs: .inp texts split by "\n__ggml_vocab_test__\n",
// .out one line of ids per text (no BOS).
void check_llamacpp_vocab(const std::string& name, bool check_decode) {
  const std::string base = shared_data("tokenizers/llamacpp-vocab/ggml-vocab-" + name + ".gguf");
  SLM_REQUIRE_DATA(base);
  auto tok = load_or_fail(base);
  ASSERT_NE(tok, nullptr);
  std::string inp = slurp(base + ".inp"), out = slurp(base + ".out");
  std::vector<std::string> texts;
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (true) {
    size_t p = inp.find(sep, pos);
    if (p == std::string::npos) break;
    texts.push_back(inp.substr(pos, p - pos));
    pos = p + sep.size();
  }
  std::vector<std::vector<int32_t>> expected;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    int32_t id;
    while (ls >> id) ids.push_back(id);
    expected.push_back(ids);
  }
  ASSERT_GE(expected.size(), texts.size());
  ASSERT_GT(texts.size(), 40u);
  int fails = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto r = tok->encode(texts[i], false, false);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    if (r.value() != expected[i]) {
      ++fails;
      ADD_FAILURE() << name << " text #" << i << " '" << texts[i] << "'\n got:     " << ids_str(r.value())
                    << "\n expected:" << ids_str(expected[i]);
    } else if (check_decode) {
      EXPECT_EQ(tok->decode(r.value()), texts[i]) << name << " decode of text #" << i;
    }
  }
  EXPECT_EQ(fails, 0) << name << ": " << fails << "/" << texts.size() << " texts differ";
}

TEST(LlamaCppVocab, LlamaSpm) { check_llamacpp_vocab("llama-spm", true); }
TEST(LlamaCppVocab, Gpt2) { check_llamacpp_vocab("gpt-2", true); }
TEST(LlamaCppVocab, BertBge) { check_llamacpp_vocab("bert-bge", false); }

TEST(LlamaCppVocab, LoadsVocabsWithoutPairs) {
  for (const char* name : {"baichuan", "gpt-neox"}) {
    const std::string path = shared_data(std::string("tokenizers/llamacpp-vocab/ggml-vocab-") + name + ".gguf");
    SLM_REQUIRE_DATA(path);
    auto tok = load_or_fail(path);
    ASSERT_NE(tok, nullptr);
    auto r = tok->encode("Hello world, this is a test 123!", false);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r.value().empty());
    EXPECT_EQ(tok->decode(r.value()), "Hello world, this is a test 123!") << name;
  }
}

// testvectors/golden/*.jsonl: {text, ids} without BOS, special tokens as text.
void check_golden(const std::string& jsonl, const std::string& tok_path, int32_t vocab = 0) {
  const std::string path = shared_data("testvectors/golden/" + jsonl);
  SLM_REQUIRE_DATA(path);
  SLM_REQUIRE_DATA(shared_data(tok_path));
  auto tok = load_or_fail(shared_data(tok_path), vocab);
  ASSERT_NE(tok, nullptr);
  std::istringstream in(slurp(path));
  std::string line;
  int n = 0, fails = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    std::string text = j["text"];
    std::vector<int32_t> expected = j["ids"].get<std::vector<int32_t>>();
    auto r = tok->encode(text, false, false);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ++n;
    if (r.value() != expected) {
      ++fails;
      ADD_FAILURE() << jsonl << " line " << n << " '" << text.substr(0, 80) << "'\n got:     " << ids_str(r.value())
                    << "\n expected:" << ids_str(expected);
      continue;
    }
    EXPECT_EQ(tok->decode(expected), text) << jsonl << " decode of line " << n;
  }
  EXPECT_GT(n, 50);
  EXPECT_EQ(fails, 0) << jsonl << ": " << fails << "/" << n << " texts differ";
}

TEST(Golden, Gpt2) { check_golden("gpt2.jsonl", "tokenizers/gpt2/encoder.json"); }
TEST(Golden, Llama2Spm) { check_golden("llama2_spm.jsonl", "tokenizers/llama2/tokenizer.model"); }
TEST(Golden, Cl100k) { check_golden("cl100k_base.jsonl", "tokenizers/tiktoken/cl100k_base.tiktoken"); }
TEST(Golden, Tok512Llama2c) { check_golden("tok512_llama2c.jsonl", "models/stories260K/tok512.bin", 512); }

// hf_tokenizer_cases.json: ids and decoded strings from HF tokenizers
// (added tokens in the text are matched; decode skips special tokens).
class HfCases : public ::testing::TestWithParam<std::string> {};

TEST_P(HfCases, Group) {
  const std::string dir = shared_data("tokenizers/hf-tokenizer-cases/");
  SLM_REQUIRE_DATA(dir + "hf_tokenizer_cases.json");
  auto all = nlohmann::json::parse(slurp(dir + "hf_tokenizer_cases.json"));
  const std::string group = GetParam();
  ASSERT_TRUE(all.contains(group));
  const auto& g = all[group];
  auto tok = load_or_fail(dir + g["tokenizer"].get<std::string>());
  ASSERT_NE(tok, nullptr);
  int fails = 0, n = 0;
  for (const auto& c : g["cases"]) {
    std::string text = c["text"];
    std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    auto r = tok->encode(text, false, true);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ++n;
    if (r.value() != expected) {
      ++fails;
      ADD_FAILURE() << group << " '" << text << "'\n got:     " << ids_str(r.value()) << "\n expected:" << ids_str(expected);
      continue;
    }
    EXPECT_EQ(tok->decode(expected), c["decoded"].get<std::string>()) << group << " decode of '" << text << "'";
  }
  EXPECT_EQ(fails, 0) << group << ": " << fails << "/" << n;
}

INSTANTIATE_TEST_SUITE_P(All, HfCases,
                         ::testing::Values("byte_level", "metaspace", "wordpiece", "split_qwen2", "split_cl100k",
                                           "metaspace_pretok", "unigram", "spm_model", "split_deepseek",
                                           "bytelevel_noregex", "split_o200k", "spm_bytefallback", "spm_bpe_model",
                                           "digits_bytelevel", "falcon_seq", "split_o200k_harmony", "split_qwen35",
                                           "split_qwen35_ascii"));

}  // namespace
}  // namespace slm::tokenizer
