// Tokenizers written as GGUF keys: read back, they encode as the original
// does; a llama2.c vocabulary comes out as llama.cpp's converter wrote it; what
// GGUF cannot describe is refused by name.
#include "slm/tokenizer/gguf_export.h"

#include <gtest/gtest.h>

#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::tokenizer {
namespace {

// The keys a tokenizer exports, parsed back as a GGUF file.
struct Exported {
  std::vector<uint8_t> bytes;
  std::unique_ptr<io::GgufFile> file;
};

Result<Exported> export_keys(const std::string& path, int32_t llama2c_vocab = 0) {
  SLM_ASSIGN_OR_RETURN(auto tok, load_tokenizer_file(path, llama2c_vocab));
  io::GgufWriter w;
  w.set_string("general.architecture", "llama");
  SLM_RETURN_IF_ERROR(add_tokenizer_to_gguf(*tok, path, &w));
  Exported e;
  e.bytes = w.serialize();
  SLM_ASSIGN_OR_RETURN(e.file, io::GgufFile::parse(e.bytes.data(), e.bytes.size(), path));
  return e;
}

TEST(GgufExport, Llama2cVocabularyMatchesLlamaCppsConversion) {
  const std::string bin = test::shared_data("models/stories260K/tok512.bin");
  const std::string ref = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(bin);
  SLM_REQUIRE_DATA(ref);
  auto e = export_keys(bin, 512);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  auto r = io::GgufFile::open(ref);
  ASSERT_TRUE(r.ok());
  for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id"}) {
    const io::GgufValue* a = e->file->find(key);
    const io::GgufValue* b = (*r)->find(key);
    ASSERT_TRUE(a != nullptr && b != nullptr) << key;
    EXPECT_EQ(a->to_string(1 << 20), b->to_string(1 << 20)) << key;
  }
}

TEST(GgufExport, ByteLevelBpeJsonRoundTrips) {
  const std::string dir = test::shared_data("tokenizers/hf-tokenizer-cases/");
  SLM_REQUIRE_DATA(dir + "tiny_bpe_bytelevel_tokenizer.json");
  const std::pair<const char*, const char*> cases[] = {{"tiny_bpe_bytelevel_tokenizer.json", "gpt-2"},
                                                       {"tiny_bpe_split_qwen2_tokenizer.json", "qwen2"}};
  for (const auto& [file, pre] : cases) {
    auto e = export_keys(dir + file);
    ASSERT_TRUE(e.ok()) << file << ": " << e.status().to_string();
    EXPECT_EQ(e->file->get_string("tokenizer.ggml.pre").value_or(""), pre) << file;
    EXPECT_EQ(e->file->get_string("tokenizer.ggml.model").value_or(""), "gpt2") << file;
    auto orig = load_tokenizer_file(dir + file);
    auto back = load_from_gguf(*e->file);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    for (const char* text : {"The quick brown fox's 123456 jumps\n\n  over", "naïve café — 東京 🙂"}) {
      auto a = (*orig)->encode(text, false), b = (*back)->encode(text, false);
      ASSERT_TRUE(a.ok() && b.ok());
      EXPECT_EQ(*a, *b) << file << ": " << text;
    }
  }
}

TEST(GgufExport, WhatGgufCannotDescribeIsRefusedByName) {
  const std::string dir = test::shared_data("tokenizers/hf-tokenizer-cases/");
  SLM_REQUIRE_DATA(dir + "tiny_unigram_tokenizer.json");
  auto e = export_keys(dir + "tiny_unigram_tokenizer.json");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().to_string().find("unigram"), std::string::npos) << e.status().to_string();
  auto w = export_keys(dir + "tiny_wordpiece_tokenizer.json");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.status().to_string().find("wordpiece"), std::string::npos) << w.status().to_string();
}

}  // namespace
}  // namespace slm::tokenizer
