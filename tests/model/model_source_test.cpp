// ModelSource: the three formats agree on stories260K; bad or unsupported
// configs are refused with messages that name what is wrong or missing.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "slm/io/gguf.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm::model {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh temp folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static int n = 0;
    path_ = fs::temp_directory_path() / ("slm_ms_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream f(path_ / name, std::ios::binary);
    f << text;
  }

 private:
  fs::path path_;
};

json stories_config() {
  std::ifstream f(test::shared_data("models/stories260K-hf/config.json"));
  return json::parse(f);
}

// A folder with stories260K's weights (a symlink) and the given config.json.
void make_hf_dir(const TempDir& d, const std::string& config_text) {
  fs::create_symlink(test::shared_data("models/stories260K-hf/model.safetensors"), d.path() / "model.safetensors");
  d.write("config.json", config_text);
}

Status open_status(const std::string& path) {
  auto r = ModelSource::open(path);
  return r.ok() ? Status::Ok() : r.status();
}

#define EXPECT_REFUSED(expr, code_, needle)                                            \
  do {                                                                                 \
    Status _st = (expr);                                                               \
    ASSERT_FALSE(_st.ok()) << "accepted (" << needle << ")";                           \
    EXPECT_EQ(_st.code(), code_) << _st.to_string();                                   \
    EXPECT_NE(_st.message().find(needle), std::string::npos) << _st.message();         \
  } while (0)

#define REQUIRE_STORIES() SLM_REQUIRE_DATA(test::shared_data("models/stories260K-hf/model.safetensors"))

TEST(ModelSource, ThreeFormatsOfStories260KAgree) {
  REQUIRE_STORIES();
  std::vector<std::unique_ptr<ModelSource>> srcs;
  for (const char* p : {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin",
                        "models/stories260K-hf", "models/stories260K-hf/model.safetensors"}) {
    auto r = ModelSource::open(test::shared_data(p));
    ASSERT_TRUE(r.ok()) << p << ": " << r.status().to_string();
    srcs.push_back(std::move(r).value());
  }
  EXPECT_EQ(srcs[0]->format(), FileFormat::kGguf);
  EXPECT_EQ(srcs[1]->format(), FileFormat::kLlama2c);
  EXPECT_EQ(srcs[2]->format(), FileFormat::kSafetensors);
  for (const auto& s : srcs) {
    const ModelConfig& c = s->config();
    EXPECT_EQ(c.n_vocab, 512);
    EXPECT_EQ(c.n_embd, 64);
    EXPECT_EQ(c.n_layer, 5);
    EXPECT_EQ(c.n_head, 8);
    EXPECT_EQ(c.n_head_kv, 4);
    EXPECT_EQ(c.n_ff, 172);
    // The GGUF stores output.weight as its own (equal) tensor; the others tie it.
    EXPECT_EQ(c.tied_output, s->format() != FileFormat::kGguf);
    EXPECT_EQ(s->weights().output.shape, (std::vector<int64_t>{512, 64}));
    EXPECT_EQ(s->weights().layers.size(), 5u);
  }
  EXPECT_EQ(srcs[1]->tokenizer_path(), test::shared_data("models/stories260K/tok512.bin"));
}

TEST(ModelSource, BF16Safetensors) {
  const std::string p = test::shared_data("models/tiny-random-llama-2");
  SLM_REQUIRE_DATA(p);
  auto r = ModelSource::open(p);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->weights().token_embd.dtype, DType::kBF16);
}

TEST(ModelSource, MissingPaths) {
  EXPECT_REFUSED(open_status("/nonexistent/slm/model.gguf"), Status::Code::kNotFound, "no model at");
  REQUIRE_STORIES();
  TempDir d;
  d.write("config.json", stories_config().dump());
  EXPECT_REFUSED(open_status(d.str()), Status::Code::kNotFound, "no model.safetensors");
  TempDir e;  // weights but no config
  fs::create_symlink(test::shared_data("models/stories260K-hf/model.safetensors"), e.path() / "model.safetensors");
  EXPECT_FALSE(open_status(e.str()).ok());
}

TEST(ModelSource, UnknownModelType) {
  REQUIRE_STORIES();
  TempDir d;
  json c = stories_config();
  c["model_type"] = "frobnicator";
  make_hf_dir(d, c.dump());
  EXPECT_REFUSED(open_status(d.str()), Status::Code::kUnsupported, "unknown architecture 'frobnicator'");
}

TEST(ModelSource, MissingOrMistypedKeys) {
  REQUIRE_STORIES();
  for (const char* key : {"model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}) {
    TempDir d;
    json c = stories_config();
    c.erase(key);
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, key);
  }
  {
    TempDir d;
    json c = stories_config();
    c["hidden_size"] = "64";
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "expected an integer");
  }
  {
    TempDir d;
    json c = stories_config();
    c["hidden_size"] = nullptr;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "hidden_size");
  }
  {
    TempDir d;
    json c = stories_config();
    c["rms_norm_eps"] = "small";
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "rms_norm_eps");
  }
  {
    TempDir d;
    json c = stories_config();
    c["tie_word_embeddings"] = 1;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "expected true or false");
  }
  {
    TempDir d;
    json c = stories_config();
    c["num_attention_heads"] = -8;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "head count is -8");
  }
  {
    TempDir d;
    json c = stories_config();
    c["num_key_value_heads"] = 3;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "KV head count is 3");
  }
}

TEST(ModelSource, ConfigNotJson) {
  REQUIRE_STORIES();
  for (const char* text : {"", "{", "not json", "{\"model_type\": }"}) {
    TempDir d;
    make_hf_dir(d, text);
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kCorruption, "not valid JSON");
  }
  for (const char* text : {"[]", "42", "\"llama\""}) {
    TempDir d;
    make_hf_dir(d, text);
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kCorruption, "not a JSON object");
  }
}

TEST(ModelSource, ShapesContradictingTheTensors) {
  REQUIRE_STORIES();
  {
    TempDir d;
    json c = stories_config();
    c["hidden_size"] = 32;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "[512, 64], but the config implies [512, 32]");
  }
  {
    TempDir d;
    json c = stories_config();
    c["intermediate_size"] = 128;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "blk.0.ffn_gate.weight");
  }
  {
    TempDir d;
    json c = stories_config();
    c["num_hidden_layers"] = 6;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kNotFound, "blk.5.");
  }
  {
    TempDir d;
    json c = stories_config();
    c["num_key_value_heads"] = 8;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "attn_k.weight");
  }
  {
    TempDir d;
    json c = stories_config();
    c["vocab_size"] = 32000;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "token_embd.weight");
  }
  {  // Qwen2 needs q/k/v biases the stories weights do not have.
    TempDir d;
    json c = stories_config();
    c["model_type"] = "qwen2";
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kNotFound, "attn_q.bias");
  }
}

TEST(ModelSource, UnsupportedArchitecturesNameWhatIsMissing) {
  REQUIRE_STORIES();
  const std::pair<const char*, const char*> cases[] = {
      {"gemma2", "soft-capping"}, {"gemma3", "soft-capping"}, {"phi", "parallel"}, {"roberta", "position ids"}};
  for (const auto& [type, needle] : cases) {
    TempDir d;
    json c = stories_config();
    c["model_type"] = type;
    make_hf_dir(d, c.dump());
    Status st = open_status(d.str());
    EXPECT_REFUSED(st, Status::Code::kUnsupported, needle);
    EXPECT_NE(st.message().find(type), std::string::npos) << st.message();
  }
}

TEST(ModelSource, ArchitectureMismatchesNameTheTensorOrKey) {
  REQUIRE_STORIES();
  // Llama weights under another architecture's config: the first tensor or key that does not fit is named.
  const std::pair<const char*, const char*> cases[] = {
      {"phi3", "attn_qkv.weight"},      // wants fused qkv
      {"gpt2", "missing the required key 'n_embd'"},
      {"bert", "embeddings.word_embeddings.weight"},
      {"distilbert", "missing the required key 'dim'"},
      {"gemma", "has shape [64, 64], but the config implies [2048, 64]"},  // HF's default head_dim 256
  };
  for (const auto& [type, needle] : cases) {
    TempDir d;
    json c = stories_config();
    c["model_type"] = type;
    make_hf_dir(d, c.dump());
    Status st = open_status(d.str());
    EXPECT_FALSE(st.ok()) << type;
    EXPECT_NE(st.message().find(needle), std::string::npos) << type << ": " << st.message();
  }
}

TEST(ModelSource, RopeScaling) {
  REQUIRE_STORIES();
  {
    TempDir d;
    json c = stories_config();
    c["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kUnsupported, "yarn");
  }
  {  // A non-string type must not throw out of the loader.
    TempDir d;
    json c = stories_config();
    c["rope_scaling"] = {{"rope_type", 5}, {"type", {1, 2}}};
    make_hf_dir(d, c.dump());
    EXPECT_TRUE(open_status(d.str()).ok()) << open_status(d.str()).to_string();
  }
  {
    TempDir d;
    json c = stories_config();
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
    make_hf_dir(d, c.dump());
    auto r = ModelSource::open(d.str());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r.value()->config().rope_scaling, RopeScaling::kLinear);
    EXPECT_EQ(r.value()->config().rope_factor, 2.0f);
  }
  {
    TempDir d;
    json c = stories_config();
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", -2.0}};
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "rope scaling factor");
  }
}

TEST(ModelSource, ShardIndex) {
  REQUIRE_STORIES();
  {
    TempDir d;
    d.write("config.json", stories_config().dump());
    d.write("model.safetensors.index.json", R"({"weight_map": {"a": "../model.safetensors"}})");
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kCorruption, "outside the folder");
  }
  {
    TempDir d;
    d.write("config.json", stories_config().dump());
    d.write("model.safetensors.index.json", R"({"weights": {}})");
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kCorruption, "index.json");
  }
  {
    TempDir d;
    d.write("config.json", stories_config().dump());
    d.write("model.safetensors.index.json", R"({"weight_map": {"a": 7}})");
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kCorruption, "index.json");
  }
  {  // A valid index naming the one real file.
    TempDir d;
    d.write("config.json", stories_config().dump());
    fs::create_symlink(test::shared_data("models/stories260K-hf/model.safetensors"), d.path() / "shard-1.safetensors");
    d.write("model.safetensors.index.json", R"({"weight_map": {"model.norm.weight": "shard-1.safetensors"}})");
    EXPECT_TRUE(open_status(d.str()).ok()) << open_status(d.str()).to_string();
  }
}

TEST(ModelSource, GgufMetadata) {
  TempDir d;
  auto write = [&](const io::GgufWriter& w) {
    const std::string p = (d.path() / "m.gguf").string();
    EXPECT_TRUE(w.write(p).ok());
    return open_status(p);
  };
  {
    io::GgufWriter w;
    w.set_string("tokenizer.ggml.model", "llama");
    EXPECT_REFUSED(write(w), Status::Code::kInvalidArgument, "general.architecture");
  }
  {
    io::GgufWriter w;
    w.set_string("general.architecture", "gemma2");
    EXPECT_REFUSED(write(w), Status::Code::kUnsupported, "architecture 'gemma2' needs");
  }
  {
    io::GgufWriter w;
    w.set_string("general.architecture", "mamba");
    EXPECT_REFUSED(write(w), Status::Code::kUnsupported, "unknown architecture 'mamba'");
  }
  {
    io::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.feed_forward_length", 8);
    w.set_u32("llama.attention.head_count", 2);
    EXPECT_REFUSED(write(w), Status::Code::kInvalidArgument, "llama.embedding_length");
  }
  {
    io::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.embedding_length", 8);
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.feed_forward_length", 8);
    w.set_u32("llama.attention.head_count", 2);
    w.set_string("llama.rope.scaling.type", "yarn");
    EXPECT_REFUSED(write(w), Status::Code::kUnsupported, "yarn");
  }
  {  // Shapes all there in metadata, but no tensors.
    io::GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_u32("llama.embedding_length", 8);
    w.set_u32("llama.block_count", 1);
    w.set_u32("llama.feed_forward_length", 8);
    w.set_u32("llama.attention.head_count", 2);
    w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "c"});
    EXPECT_REFUSED(write(w), Status::Code::kNotFound, "token_embd.weight");
  }
}

TEST(ModelSource, NotAModelAtAll) {
  TempDir d;
  d.write("junk.bin", std::string(1000, 'x'));
  Status st = open_status((d.path() / "junk.bin").string());
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("junk.bin"), std::string::npos) << st.message();
  d.write("empty.bin", "");
  EXPECT_FALSE(open_status((d.path() / "empty.bin").string()).ok());
  d.write("bad.gguf", "GGUF\x03");
  EXPECT_FALSE(open_status((d.path() / "bad.gguf").string()).ok());
}

}  // namespace
}  // namespace slm::model

namespace slm::model {
namespace {

TEST(ModelSourceReview, MistralNullWindowMeansNoWindow) {
  REQUIRE_STORIES();
  TempDir d;
  json c = stories_config();
  c["model_type"] = "mistral";
  c["sliding_window"] = nullptr;
  make_hf_dir(d, c.dump());
  auto r = ModelSource::open(d.str());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r.value()->config().sliding_window, 0);
  TempDir e;
  c.erase("sliding_window");  // absent: Hugging Face's default
  make_hf_dir(e, c.dump());
  auto r2 = ModelSource::open(e.str());
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2.value()->config().sliding_window, 4096);
}

TEST(ModelSourceReview, UnimplementedFeaturesAreNamed) {
  REQUIRE_STORIES();
  {
    TempDir d;
    json c = stories_config();
    c["mlp_bias"] = true;  // supported, so the biases must be there
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kNotFound, "mlp.gate_proj.bias");
  }
  {
    TempDir d;
    json c = stories_config();
    c["num_local_experts"] = 8;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kUnsupported, "mixture-of-experts");
  }
  {
    TempDir d;
    json c = stories_config();
    c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 4.0}};
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "low_freq_factor");
  }
  {
    TempDir d;
    json c = stories_config();
    c["max_position_embeddings"] = -1;
    make_hf_dir(d, c.dump());
    EXPECT_REFUSED(open_status(d.str()), Status::Code::kInvalidArgument, "training context");
  }
}

}  // namespace
}  // namespace slm::model
