// Behaviour of the tokenizer API beyond the reference vectors: specials, BOS,
// streaming decode, invalid input, Unicode helpers, thread safety.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "../../src/tokenizer/pre_patterns.h"
#include "../../src/tokenizer/regex.h"
#include "../../src/tokenizer/unicode.h"
#include "../../src/tokenizer/utf8.h"
#include "slm/core/mapped_file.h"
#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::tokenizer {
namespace {

using test::shared_data;

// A tiny SentencePiece-style BPE with byte fallback, written inline so these
// tests need no shared data.
const char* const kTinyJson = R"({
  "added_tokens": [
    {"id": 0, "content": "<unk>", "special": true},
    {"id": 1, "content": "<s>", "special": true},
    {"id": 2, "content": "</s>", "special": true},
    {"id": 12, "content": "<tool>", "special": false}
  ],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "\u2581"},
    {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": true, "fuse_unk": true,
    "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0xF0>": 3, "<0x9F>": 4, "<0x98>": 5, "<0x80>": 6,
              "\u2581": 7, "a": 8, "b": 9, "\u2581a": 10, "ab": 11},
    "merges": ["\u2581 a", "a b"]}
})";

std::unique_ptr<Tokenizer> tiny() {
  auto r = load_hf_tokenizer_json(kTinyJson);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(Tokenizer, TinyEncodeDecode) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->kind(), "bpe");
  EXPECT_EQ(t->n_vocab(), 13);
  EXPECT_EQ(t->bos(), 1);
  EXPECT_EQ(t->eos(), 2);
  auto r = t->encode("a ab", false);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), (std::vector<int32_t>{10, 10, 9}));  // "\u2581a" merges first, so "a b" never applies
  EXPECT_EQ(t->decode(r.value()), "a ab");
  auto with_bos = t->encode("a", true);
  ASSERT_TRUE(with_bos.ok());
  EXPECT_EQ(with_bos.value(), (std::vector<int32_t>{1, 10}));
  // Byte fallback for a character the vocabulary lacks.
  auto emoji = t->encode("\xF0\x9F\x98\x80", false);
  ASSERT_TRUE(emoji.ok());
  EXPECT_EQ(emoji.value(), (std::vector<int32_t>{7, 3, 4, 5, 6}));
  EXPECT_EQ(t->decode(emoji.value()), "\xF0\x9F\x98\x80");
  EXPECT_EQ(t->token_to_bytes(3), "\xF0");
  EXPECT_EQ(t->token_text(10), "\xE2\x96\x81" "a");
  EXPECT_TRUE(t->is_end_of_generation(2));
  EXPECT_FALSE(t->is_end_of_generation(8));
}

TEST(Tokenizer, SpecialTokensOnlyWhenAsked) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  auto plain = t->encode("a</s>", false, false);
  auto special = t->encode("a</s>", false, true);
  ASSERT_TRUE(plain.ok() && special.ok());
  EXPECT_EQ(special.value(), (std::vector<int32_t>{10, 2}));
  EXPECT_NE(plain.value(), special.value());
  EXPECT_EQ(std::count(plain.value().begin(), plain.value().end(), 2), 0);
  // A non-special added token is always matched.
  auto tool = t->encode("a<tool>", false, false);
  ASSERT_TRUE(tool.ok());
  EXPECT_EQ(tool.value(), (std::vector<int32_t>{10, 12}));
  // Control tokens decode to nothing unless rendered.
  EXPECT_EQ(t->decode({1, 10, 2}), "a");
  EXPECT_EQ(t->decode({1, 10, 2}, true), "<s> a</s>");  // as HF: the rendered <s> starts the text
}

TEST(Tokenizer, InvalidUtf8NamesOffset) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  for (const std::string& bad : {std::string("abc\xFF"), std::string("ab\xC3"), std::string("abc\xED\xA0\x80"),
                                 std::string("abc\xC0\xAF"), std::string("abc\x80")}) {
    auto r = t->encode(bad, true);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().message();
  }
  auto r = t->encode("abc\xFF", false);
  EXPECT_NE(r.status().message().find("offset 3"), std::string::npos) << r.status().message();
  EXPECT_TRUE(t->encode("", true).ok());
}

TEST(Tokenizer, OutOfRangeIdsAreHarmless) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->decode({-1, 10, 999999}), "a");
  EXPECT_EQ(t->token_to_bytes(-7), "");
  EXPECT_EQ(t->token_text(1 << 30), "");
  EXPECT_FALSE(t->is_end_of_generation(-1));
}

TEST(StreamDecoder, HoldsSplitCharacterUntilComplete) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  StreamDecoder d(*t, true);
  EXPECT_EQ(d.feed(10), "a");
  EXPECT_EQ(d.feed(7), " ");
  EXPECT_EQ(d.feed(3), "");
  EXPECT_EQ(d.feed(4), "");
  EXPECT_EQ(d.feed(5), "");
  EXPECT_EQ(d.feed(6), "\xF0\x9F\x98\x80");
  EXPECT_EQ(d.flush(), "");
  // Leftover partial bytes come out as U+FFFD on flush.
  StreamDecoder d2(*t, false);
  EXPECT_EQ(d2.feed(3), "");
  EXPECT_EQ(d2.feed(4), "");
  std::string rest = d2.flush();
  EXPECT_FALSE(rest.empty());
  EXPECT_FALSE(utf8_first_invalid(rest).has_value());
  EXPECT_NE(rest.find("\xEF\xBF\xBD"), std::string::npos);
  // A byte that can never start a sequence is replaced right away.
  StreamDecoder d3(*t, false);
  EXPECT_EQ(d3.feed(6), "\xEF\xBF\xBD");
}

TEST(StreamDecoder, MatchesDecodeOnRealVocabs) {
  const std::string spm = shared_data("tokenizers/llama2/tokenizer.model");
  const std::string tk = shared_data("tokenizers/tiktoken/cl100k_base.tiktoken");
  SLM_REQUIRE_DATA(spm);
  SLM_REQUIRE_DATA(tk);
  for (const std::string& path : {spm, tk}) {
    auto r = load_tokenizer_file(path);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Tokenizer& t = *r.value();
    for (const std::string text : {"Hello 🦙 wörld 你好", "  x\n\n\t🚀(ok)", "Ꙋ🦙"}) {
      auto ids = t.encode(text, true);
      ASSERT_TRUE(ids.ok());
      StreamDecoder d(t, true);
      std::string out;
      for (int32_t id : ids.value()) {
        std::string piece = d.feed(id);
        EXPECT_FALSE(utf8_first_invalid(piece).has_value());
        out += piece;
      }
      out += d.flush();
      EXPECT_EQ(out, text) << path;
      EXPECT_EQ(t.decode(ids.value()), text) << path;
    }
  }
}

TEST(Tokenizer, AddSpecialFollowsMetadata) {
  const std::string spm = shared_data("tokenizers/llama2/tokenizer.model");
  const std::string gguf = shared_data("tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
  const std::string bert = shared_data("tokenizers/llamacpp-vocab/ggml-vocab-bert-bge.gguf");
  const std::string gpt2 = shared_data("tokenizers/gpt2/encoder.json");
  SLM_REQUIRE_DATA(spm);
  SLM_REQUIRE_DATA(bert);
  auto s = load_tokenizer_file(spm);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value()->encode("Hello", true).value().front(), 1);
  EXPECT_EQ(s.value()->kind(), "spm");
  auto g = load_tokenizer_file(gguf);
  ASSERT_TRUE(g.ok());
  auto gi = g.value()->encode("Hello world", true).value();
  EXPECT_EQ(gi, (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(g.value()->decode(gi), "Hello world");
  auto b = load_tokenizer_file(bert);
  ASSERT_TRUE(b.ok());
  auto bi = b.value()->encode("Hello world", true).value();
  EXPECT_EQ(bi, (std::vector<int32_t>{101, 7592, 2088, 102}));
  EXPECT_EQ(b.value()->decode(bi), "hello world");
  EXPECT_EQ(b.value()->kind(), "wordpiece");
  auto p = load_tokenizer_file(gpt2);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value()->encode("Hello", true).value(), (std::vector<int32_t>{15496}));  // GPT-2 adds no BOS
  EXPECT_EQ(p.value()->encode("<|endoftext|>", false, true).value(), (std::vector<int32_t>{50256}));
  EXPECT_GT(p.value()->encode("<|endoftext|>", false, false).value().size(), 1u);
  EXPECT_TRUE(p.value()->is_end_of_generation(50256));
}

TEST(Tokenizer, TiktokenEncodingsLoad) {
  struct Case {
    const char* file;
    int32_t n_vocab;
    int32_t eot;
  };
  for (const Case& c : {Case{"r50k_base", 50257, 50256}, Case{"p50k_base", 50281, 50256},
                        Case{"o200k_base", 200019, 199999}}) {
    const std::string path = shared_data(std::string("tokenizers/tiktoken/") + c.file + ".tiktoken");
    SLM_REQUIRE_DATA(path);
    auto r = load_tokenizer_file(path);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    const Tokenizer& t = *r.value();
    EXPECT_EQ(t.n_vocab(), c.n_vocab) << c.file;
    EXPECT_EQ(t.eos(), c.eot);
    const std::string text = "Hello world! Grüße, 你好 🦙 1234567 don't";
    auto ids = t.encode(text, false);
    ASSERT_TRUE(ids.ok());
    EXPECT_EQ(t.decode(ids.value()), text) << c.file;
    EXPECT_EQ(t.encode("<|endoftext|>", false, true).value(), (std::vector<int32_t>{c.eot}));
  }
}

// The same vocabulary in three containers gives the same ids.
TEST(Tokenizer, ContainersAgree) {
  const std::string gguf = shared_data("models/stories260K/stories260K.gguf");
  const std::string bin = shared_data("models/stories260K/tok512.bin");
  const std::string l2bin = shared_data("tokenizers/llama2/tokenizer.bin");
  const std::string l2model = shared_data("tokenizers/llama2/tokenizer.model");
  SLM_REQUIRE_DATA(gguf);
  SLM_REQUIRE_DATA(l2bin);
  auto a = load_tokenizer_file(gguf);
  auto b = load_tokenizer_file(bin);  // vocab size counted from the file
  auto c = load_llama2c_tokenizer(l2bin, 32000);
  auto d = load_tokenizer_file(l2model);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  EXPECT_EQ(b.value()->n_vocab(), 512);
  for (const std::string text : {"Once upon a time, there was a little girl named Lily.", "Ünïcödé  spaces\tand\nlines 🦙",
                                 "  leading", "trailing  "}) {
    EXPECT_EQ(a.value()->encode(text, true).value(), b.value()->encode(text, true).value()) << text;
    EXPECT_EQ(c.value()->encode(text, true).value(), d.value()->encode(text, true).value()) << text;
    EXPECT_EQ(b.value()->decode(b.value()->encode(text, true).value()), text);
  }
}

TEST(Tokenizer, ConcurrentEncode) {
  auto t = tiny();
  ASSERT_NE(t, nullptr);
  auto expected = t->encode("ab a ab \xF0\x9F\x98\x80 b", true).value();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (t->encode("ab a ab \xF0\x9F\x98\x80 b", true).value() != expected) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Unicode, NormalizationForms) {
  EXPECT_EQ(nfd("\xC3\xA9"), "e\xCC\x81");                     // é -> e + acute
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(nfd("\xEA\xB0\x80"), "\xE1\x84\x80\xE1\x85\xA1");  // 가 -> Hangul jamo
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");
  // Canonical reordering: dot below (220) before acute (230).
  EXPECT_EQ(nfd("a\xCC\x81\xCC\xA3"), "a\xCC\xA3\xCC\x81");
  EXPECT_EQ(nfc("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");
  EXPECT_EQ(to_lower("\xC3\x89T\xC3\x89 \xD0\x9F\xD0\xA0\xD0\x98"), "\xC3\xA9t\xC3\xA9 \xD0\xBF\xD1\x80\xD0\xB8");
  EXPECT_EQ(strip_marks(nfd("Caf\xC3\xA9 na\xC3\xAFve \xD0\xB9")), "Cafe naive \xD0\xB8");
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("a\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
}

TEST(PreTokenizer, EveryNamedPatternCompiles) {
  for (const char* name : {"default", "llama3", "llama-bpe", "gpt-2", "qwen2", "deepseek-llm", "deepseek-coder",
                           "deepseek-v3", "falcon", "starcoder", "bloom", "viking", "tekken", "chameleon", "gpt-4o",
                           "bailingmoe", "seed-coder", "smollm", "command-r"}) {
    auto p = pre_tokenizer_patterns(name);
    ASSERT_TRUE(p.ok()) << name;
    for (const std::string& pat : p.value()) {
      auto r = Regex::compile(pat);
      EXPECT_TRUE(r.ok()) << name << ": " << r.status().to_string();
    }
  }
  auto unknown = pre_tokenizer_patterns("kimi-k2");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), Status::Code::kUnsupported);
  // Llama 3 splits digits in threes and keeps a leading space on words.
  auto re = Regex::compile(kLlama3Pattern);
  ASSERT_TRUE(re.ok());
  std::vector<std::string> parts;
  std::string text = "I've 12345 apples\n\n";
  for (auto [b, e] : re.value().find_all(text)) parts.push_back(text.substr(b, e - b));
  EXPECT_EQ(parts, (std::vector<std::string>{"I", "'ve", " ", "123", "45", " apples", "\n\n"}));
}

}  // namespace
}  // namespace slm::tokenizer
