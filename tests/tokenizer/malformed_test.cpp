// Malformed tokenizer files: every loader returns a clear Status, never crashes
// (the corruption-test idea of LevelDB db/corruption_test.cc).
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "slm/core/mapped_file.h"
#include "slm/io/gguf.h"
#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::tokenizer {
namespace {

using test::shared_data;

void expect_error(const Result<std::unique_ptr<Tokenizer>>& r, const std::string& needle, const std::string& what) {
  ASSERT_FALSE(r.ok()) << what << ": loaded, expected an error";
  EXPECT_FALSE(r.status().message().empty());
  if (!needle.empty()) {
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << what << ": " << r.status().to_string();
  }
}

nlohmann::json tiny_bpe() {
  return nlohmann::json::parse(R"({
    "added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
    "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "post_processor": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3},
              "merges": ["a b"]}})");
}

TEST(Malformed, TokenizerJson) {
  ASSERT_TRUE(load_hf_tokenizer_json(tiny_bpe().dump()).ok());
  const std::string good = tiny_bpe().dump();
  expect_error(load_hf_tokenizer_json(good.substr(0, good.size() / 2)), "not valid JSON", "truncated");
  expect_error(load_hf_tokenizer_json(""), "not valid JSON", "empty");
  expect_error(load_hf_tokenizer_json("[1,2,3]"), "top level", "array");
  expect_error(load_hf_tokenizer_json("{}"), "no model", "no model");

  struct Edit {
    const char* what;
    void (*apply)(nlohmann::json&);
    const char* needle;
  };
  const Edit edits[] = {
      {"vocab is an array", [](nlohmann::json& j) { j["model"]["vocab"] = nlohmann::json::array({1, 2}); }, "vocab"},
      {"vocab id is a string", [](nlohmann::json& j) { j["model"]["vocab"]["a"] = "one"; }, "not an integer"},
      {"negative id", [](nlohmann::json& j) { j["model"]["vocab"]["a"] = -4; }, "out of range"},
      {"huge id", [](nlohmann::json& j) { j["model"]["vocab"]["a"] = 1LL << 40; }, "out of range"},
      {"merge is a number", [](nlohmann::json& j) { j["model"]["merges"] = nlohmann::json::array({7}); }, "merges[0]"},
      {"merge of unknown pieces", [](nlohmann::json& j) { j["model"]["merges"] = {"x y"}; }, "not in the vocabulary"},
      {"merge without space", [](nlohmann::json& j) { j["model"]["merges"] = {"ab"}; }, "merges[0]"},
      {"no merges", [](nlohmann::json& j) { j["model"].erase("merges"); }, "merges"},
      {"unknown unk", [](nlohmann::json& j) { j["model"]["unk_token"] = "<nope>"; }, "unk_token"},
      {"added token id string", [](nlohmann::json& j) { j["added_tokens"][0]["id"] = "0"; }, "added_tokens[0]"},
      {"added tokens not array", [](nlohmann::json& j) { j["added_tokens"] = 5; }, "added_tokens"},
      {"unknown model", [](nlohmann::json& j) { j["model"]["type"] = "Magic"; }, "Magic"},
      {"unknown normalizer", [](nlohmann::json& j) { j["normalizer"] = {{"type", "Precompiled"}}; }, "Precompiled"},
      {"normalizer without type", [](nlohmann::json& j) { j["normalizer"] = {{"x", 1}}; }, "type"},
      {"unknown pre-tokenizer", [](nlohmann::json& j) { j["pre_tokenizer"] = {{"type", "Wat"}}; }, "Wat"},
      {"bad split regex",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
       },
       "regex"},
      {"bad split behavior",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", "x"}}}, {"behavior", "Sideways"}};
       },
       "Sideways"},
      {"post-processor id out of range",
       [](nlohmann::json& j) {
         j["post_processor"] = {{"type", "BertProcessing"}, {"cls", {"[CLS]", 99999}}, {"sep", {"[SEP]", 1}}};
       },
       "out of range"},
      {"template names missing token",
       [](nlohmann::json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<bos>"}}}}, {{"Sequence", {{"id", "A"}}}}}}};
       },
       "<bos>"},
      {"unigram unk_id out of range",
       [](nlohmann::json& j) {
         j["model"] = nlohmann::json::parse(R"({"type": "Unigram", "unk_id": 50, "vocab": [["a", -1.0], ["b", -2.0]]})");
       },
       "unk_id"},
      {"unigram entry not a pair",
       [](nlohmann::json& j) { j["model"] = nlohmann::json::parse(R"({"type": "Unigram", "vocab": [["a"], ["b", -2.0]]})"); },
       "vocab[0]"},
  };
  for (const Edit& e : edits) {
    nlohmann::json j = tiny_bpe();
    e.apply(j);
    expect_error(load_hf_tokenizer_json(j.dump()), e.needle, e.what);
  }
}

TEST(Malformed, TruncatedRealFilesNeverCrash) {
  const std::string dir = shared_data("tokenizers/hf-tokenizer-cases/");
  SLM_REQUIRE_DATA(dir + "tiny_wordpiece_tokenizer.json");
  for (const char* name : {"tiny_wordpiece_tokenizer.json", "tiny_bpe_metaspace_tokenizer.json", "tiny_spm_bpe.model",
                           "tiny_spm.model", "tiny_unigram_tokenizer.json"}) {
    auto data = read_file(dir + name);
    ASSERT_TRUE(data.ok());
    const std::string& full = data.value();
    const bool spm = std::string(name).find(".model") != std::string::npos;
    for (size_t cut = 0; cut < full.size(); cut += std::max<size_t>(1, full.size() / 97)) {
      std::string part = full.substr(0, cut);
      auto r = spm ? load_sentencepiece_model(part) : load_hf_tokenizer_json(part);
      if (!spm) EXPECT_FALSE(r.ok()) << name << " cut at " << cut;  // truncated JSON never parses
      if (r.ok()) (void)r.value()->encode("hello world", true);
    }
    // Flipped bytes: any outcome but a crash.
    std::string flipped = full;
    for (size_t i = 0; i < flipped.size(); i += 13) {
      flipped[i] = static_cast<char>(flipped[i] ^ 0x5A);
      auto r = spm ? load_sentencepiece_model(flipped) : load_hf_tokenizer_json(flipped);
      if (r.ok()) (void)r.value()->encode("hello world", true);
    }
  }
}

std::string varint(uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
  return s;
}
std::string field_bytes(int num, const std::string& payload) {
  return varint((static_cast<uint64_t>(num) << 3) | 2) + varint(payload.size()) + payload;
}
std::string field_varint(int num, uint64_t v) { return varint(static_cast<uint64_t>(num) << 3) + varint(v); }
std::string piece(const std::string& text, float score, int type) {
  std::string f(4, '\0');
  std::memcpy(f.data(), &score, 4);
  return field_bytes(1, field_bytes(1, text) + varint((2 << 3) | 5) + f + field_varint(3, type));
}

TEST(Malformed, SentencePieceModel) {
  const std::string base = piece("<unk>", 0, 2) + piece("<s>", 0, 3) + piece("</s>", 0, 3) +
                           piece("\xE2\x96\x81" "a", -1, 1) + piece("a", -2, 1);
  const std::string trainer = field_bytes(2, field_varint(3, 2));  // BPE
  auto ok = load_sentencepiece_model(base + trainer);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok.value()->encode("a a", false).value(), (std::vector<int32_t>{3, 3}));

  expect_error(load_sentencepiece_model(""), "no pieces", "empty");
  expect_error(load_sentencepiece_model(std::string("\x0A\xFF\xFF\xFF\xFF\x0F", 6)), "bytes", "length past end");
  expect_error(load_sentencepiece_model(std::string("\x0A", 1)), "truncated varint", "truncated key");
  expect_error(load_sentencepiece_model(std::string(11, '\xFF')), "varint", "endless varint");
  expect_error(load_sentencepiece_model(base + piece("x", 0, 9)), "type 9", "bad piece type");
  expect_error(load_sentencepiece_model(base + field_bytes(1, field_bytes(1, "\xFF"))), "UTF-8", "bad piece text");
  expect_error(load_sentencepiece_model(base + field_bytes(2, field_varint(40, 77))), "unk_id", "unk out of range");
  expect_error(load_sentencepiece_model(base + field_bytes(2, field_varint(3, 4))), "model_type 4", "char model");
  expect_error(load_sentencepiece_model(base + field_bytes(3, field_bytes(2, "xyz"))), "character map",
               "precompiled charsmap");
  expect_error(load_sentencepiece_model(base + varint((1 << 3) | 3)), "wire type", "group wire type");
  expect_error(load_sentencepiece_model(base + varint((1 << 3) | 0) + varint(5)), "wire type", "piece as varint");
  // Every truncation of a valid model: an error or a usable tokenizer, never a crash.
  const std::string full = base + trainer;
  for (size_t cut = 0; cut < full.size(); ++cut) {
    auto r = load_sentencepiece_model(full.substr(0, cut));
    if (r.ok()) (void)r.value()->encode("a a", true);
  }
}

TEST(Malformed, TiktokenLines) {
  // Three ranks named as an encoding: loads (specials past the ranks), so the errors below are the lines'.
  auto ok = load_tiktoken("YQ== 0\nYg== 1\nYWI= 2\n", "cl100k_base");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok.value()->encode("ab", false).value(), (std::vector<int32_t>{2}));
  expect_error(load_tiktoken("", "cl100k_base"), "no ranks", "empty");
  expect_error(load_tiktoken("!!!! 0\n", "cl100k_base"), "bad base64", "bad base64 chars");
  expect_error(load_tiktoken("YQ 0\nY 1\n", "cl100k_base"), "bad base64", "bad base64 length");
  expect_error(load_tiktoken("YQ== zero\n", "cl100k_base"), "bad rank", "bad rank");
  expect_error(load_tiktoken("YQ==\n", "cl100k_base"), "expected", "no rank");
  expect_error(load_tiktoken("YQ== 0\nYg== 0\n", "cl100k_base"), "twice", "duplicate rank");
  expect_error(load_tiktoken("YQ== 0\nYQ== 1\n", "cl100k_base"), "twice", "duplicate bytes");
  expect_error(load_tiktoken("YQ== 100257\n", "cl100k_base"), "special", "rank collides with special");
  expect_error(load_tiktoken("YQ== 0\n", "mystery"), "cannot tell", "unknown encoding");
  expect_error(load_tiktoken("YQ== 99999999999\n", "cl100k_base"), "bad rank", "rank too large");
}

std::string l2c(int32_t max_len, const std::vector<std::pair<float, std::string>>& toks) {
  std::string s(4, '\0');
  std::memcpy(s.data(), &max_len, 4);
  for (auto& [score, text] : toks) {
    char h[8];
    int32_t len = static_cast<int32_t>(text.size());
    std::memcpy(h, &score, 4);
    std::memcpy(h + 4, &len, 4);
    s.append(h, 8);
    s += text;
  }
  return s;
}

TEST(Malformed, Llama2cBin) {
  const std::vector<std::pair<float, std::string>> toks = {{0, "<unk>"}, {0, "\n<s>\n"}, {0, "\n</s>\n"}, {-1, " a"},
                                                           {-2, "a"},    {-3, " "}};
  auto ok = load_llama2c_tokenizer_bytes(l2c(6, toks), 6);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok.value()->encode("a a", false).value(), (std::vector<int32_t>{3, 3}));
  EXPECT_TRUE(load_llama2c_tokenizer_bytes(l2c(6, toks), 0).ok());  // counted

  expect_error(load_llama2c_tokenizer_bytes("", 6), "too short", "empty");
  expect_error(load_llama2c_tokenizer_bytes(l2c(0, toks), 6), "max_token_length", "zero max len");
  expect_error(load_llama2c_tokenizer_bytes(l2c(3, toks), 6), "length", "token longer than max");
  expect_error(load_llama2c_tokenizer_bytes(l2c(6, toks), 7), "header bytes", "vocab size too big");
  expect_error(load_llama2c_tokenizer_bytes(l2c(6, toks), 5), "left after", "vocab size too small");
  expect_error(load_llama2c_tokenizer_bytes(l2c(6, toks), -2), "negative", "negative vocab size");
  expect_error(load_llama2c_tokenizer_bytes(l2c(6, {{0, "<unk>"}}), 1), "only 1 tokens", "too few");
  std::string neg = l2c(6, toks);
  int32_t minus = -5;
  std::memcpy(neg.data() + 4 + 4, &minus, 4);
  expect_error(load_llama2c_tokenizer_bytes(neg, 6), "length -5", "negative length");
  std::string full = l2c(6, toks);
  for (size_t cut = 0; cut < full.size(); ++cut) {
    EXPECT_FALSE(load_llama2c_tokenizer_bytes(full.substr(0, cut), 6).ok()) << "cut " << cut;
  }
  const std::string real = shared_data("models/stories260K/tok512.bin");
  if (file_exists(real)) {
    expect_error(load_llama2c_tokenizer(real, 600), "header bytes", "real file, wrong vocab size");
  }
}

// A GGUF vocabulary built in memory with one thing wrong.
struct GgufCase {
  std::vector<uint8_t> bytes;
  Result<std::unique_ptr<Tokenizer>> load() {
    auto f = io::GgufFile::parse(bytes.data(), bytes.size(), "test.gguf");
    if (!f.ok()) return f.status();
    return load_from_gguf(*f.value());
  }
};

io::GgufWriter spm_writer() {
  io::GgufWriter w;
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "\xE2\x96\x81" "a", "a", "\xE2\x96\x81"});
  w.set_f32_array("tokenizer.ggml.scores", {0, 0, 0, -1, -2, -3});
  w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1});
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  return w;
}

TEST(Malformed, Gguf) {
  {
    GgufCase c{spm_writer().serialize()};
    auto r = c.load();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r.value()->encode("a a", true).value(), (std::vector<int32_t>{1, 3, 3}));
  }
  struct Edit {
    const char* what;
    void (*apply)(io::GgufWriter&);
    const char* needle;
  };
  const Edit edits[] = {
      {"unsupported model", [](io::GgufWriter& w) { w.set_string("tokenizer.ggml.model", "rwkv"); }, "rwkv"},
      {"model not a string", [](io::GgufWriter& w) { w.set_u32("tokenizer.ggml.model", 3); }, "expected string"},
      {"tokens are ints", [](io::GgufWriter& w) { w.set_i32_array("tokenizer.ggml.tokens", {1, 2, 3}); }, "strings"},
      {"tokens not an array", [](io::GgufWriter& w) { w.set_string("tokenizer.ggml.tokens", "abc"); }, "array"},
      {"empty tokens", [](io::GgufWriter& w) { w.set_string_array("tokenizer.ggml.tokens", {}); }, "empty"},
      {"scores too short", [](io::GgufWriter& w) { w.set_f32_array("tokenizer.ggml.scores", {0, 0}); }, "scores"},
      {"scores are strings",
       [](io::GgufWriter& w) { w.set_string_array("tokenizer.ggml.scores", {"a", "b", "c", "d", "e", "f"}); },
       "scores[0]"},
      {"token type 9", [](io::GgufWriter& w) { w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 9, 1}); },
       "token_type[4]"},
      {"types too long",
       [](io::GgufWriter& w) { w.set_i32_array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1, 1, 1}); }, "token_type"},
      {"bos out of range", [](io::GgufWriter& w) { w.set_u32("tokenizer.ggml.bos_token_id", 600); }, "bos_token_id"},
      {"eos is a string", [](io::GgufWriter& w) { w.set_string("tokenizer.ggml.eos_token_id", "2"); }, "eos_token_id"},
      {"add_bos is a string", [](io::GgufWriter& w) { w.set_string("tokenizer.ggml.add_bos_token", "yes"); },
       "add_bos_token"},
      {"gpt2 without merges", [](io::GgufWriter& w) { w.set_string("tokenizer.ggml.model", "gpt2"); }, "merges"},
      {"unknown pre-tokenizer",
       [](io::GgufWriter& w) {
         w.set_string("tokenizer.ggml.model", "gpt2");
         w.set_string("tokenizer.ggml.pre", "klingon");
       },
       "klingon"},
      {"merge without space",
       [](io::GgufWriter& w) {
         w.set_string("tokenizer.ggml.model", "gpt2");
         w.set_string_array("tokenizer.ggml.merges", {"ab"});
       },
       "merges[0]"},
  };
  for (const Edit& e : edits) {
    io::GgufWriter w = spm_writer();
    e.apply(w);
    GgufCase c{w.serialize()};
    expect_error(c.load(), e.needle, e.what);
  }
  {
    io::GgufWriter w;
    w.set_string("general.name", "no vocab");
    GgufCase c{w.serialize()};
    auto r = c.load();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  }
}

TEST(Malformed, DispatchNamesTheFile) {
  auto r = load_tokenizer_file("/nonexistent/tokenizer.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
  const std::string vocab = shared_data("tokenizers/hf-tokenizer-cases/hf_tokenizer_cases.json");
  SLM_REQUIRE_DATA(vocab);
  auto c = load_tokenizer_file(vocab);  // JSON, but not a tokenizer
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("hf_tokenizer_cases.json"), std::string::npos) << c.status().to_string();
}

}  // namespace
}  // namespace slm::tokenizer
