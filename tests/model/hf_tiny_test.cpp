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
#include <cstring>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>

#include "slm/io/gguf.h"
#include "slm/model/convert.h"
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

// Our outputs for the reference's sequences, flattened, and the reference's
// beside them: logits for a decoder; last hidden states (and the pooler,
// where there is one) for an encoder.
struct Outputs {
  std::vector<double> ours, ref;
};

// decode: one token per forward call (a decoder's generation steps), else the whole sequence at once.
Outputs run_reference_inputs(const std::string& dir, const ModelConfig& c, const Weights& w, bool decode = false) {
  Model m(c, w);
  const bool encoder = file_exists(dir + "/reference_hidden.json");
  const json ref = load_json(dir + (encoder ? "/reference_hidden.json" : "/reference_logits.json"));
  const int64_t width = encoder ? c.n_embd : c.n_vocab;
  Outputs o;
  for (size_t s = 0; s < ref["sequences"].size(); ++s) {
    auto ids = ref["sequences"][s].get<std::vector<int32_t>>();
    std::vector<int32_t> types(ids.size(), 0);
    if (ref.contains("token_types") && c.n_token_types > 0) types = ref["token_types"][s].get<std::vector<int32_t>>();
    KvCache kv(c, 0, c.n_layer, 1, static_cast<int64_t>(ids.size()));
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, true, types[i]});
    std::vector<float> out;
    Status st;
    if (encoder) {
      st = m.encode(batch, kv, &out);
    } else if (!decode) {
      st = m.forward(batch, kv, &out);
    } else {
      for (size_t i = 0; i < batch.size() && st.ok(); ++i) {
        std::vector<float> step;
        st = m.forward({batch[i]}, kv, &step);
        out.insert(out.end(), step.begin(), step.end());
      }
    }
    EXPECT_TRUE(st.ok()) << st.to_string();
    if (!st.ok()) return {};
    const json& want = ref[encoder ? "hidden" : "logits"][s];
    for (size_t p = 0; p < ids.size(); ++p)
      for (int64_t v = 0; v < width; ++v) {
        o.ours.push_back(out[p * width + v]);
        o.ref.push_back(want[p][v].get<double>());
      }
    if (encoder && ref.contains("pooler") && c.has_pooler) {
      const std::vector<float> pooled = m.pooler(out.data());
      for (int64_t v = 0; v < width; ++v) {
        o.ours.push_back(pooled[v]);
        o.ref.push_back(ref["pooler"][s][v].get<double>());
      }
    }
  }
  return o;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

double max_diff_vs_reference(const std::string& dir, const ModelConfig& c, const Weights& w) {
  const Outputs o = run_reference_inputs(dir, c, w);
  return max_abs_diff(o.ours, o.ref);
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

// Decoding one token at a time (the sliding window now limits what the
// cache shows each step) gives the same logits.
class HfTinyDecoder : public ::testing::TestWithParam<const char*> {};

TEST_P(HfTinyDecoder, OneTokenPerCallMatchesToo) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const Outputs o = run_reference_inputs(dir, (*src)->config(), (*src)->weights(), /*decode=*/true);
  EXPECT_LT(max_abs_diff(o.ours, o.ref), 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Decoders, HfTinyDecoder,
                         ::testing::Values("qwen2", "mistral", "smollm2", "phi3", "gemma", "distilgpt2"));

// A sliding-window cache much shorter than the context (a ring of window +
// chunk - 1 positions, written twice) gives the reference logits however the
// tokens come: all at once (fed in chunks), one per call, or several sequences
// interleaved; a rewind past what the ring holds is refused.
TEST(KvRing, SlidingWindowModelsMatchFromARing) {
  for (const char* name : {"mistral", "phi3"}) {
    const std::string dir = test::shared_data(std::string("models/hf-tiny/") + name);
    SLM_REQUIRE_DATA(dir);
    auto src = ModelSource::open(dir);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    const ModelConfig& c = (*src)->config();
    ASSERT_EQ(c.sliding_window, 4);
    Model m(c, (*src)->weights());
    const json ref = load_json(dir + "/reference_logits.json");
    const size_t n_seq = ref["sequences"].size(), len = ref["sequences"][0].size();
    const int64_t V = c.n_vocab;
    auto check = [&](const std::vector<BatchToken>& batch, const std::vector<float>& logits, const char* how) {
      double worst = 0;
      for (size_t i = 0; i < batch.size(); ++i)
        for (int64_t v = 0; v < V; ++v)
          worst = std::max(worst, std::fabs(logits[i * V + v] - ref["logits"][static_cast<size_t>(batch[i].seq)]
                                                                       [static_cast<size_t>(batch[i].pos)][v].get<double>()));
      EXPECT_LT(worst, 1e-4) << name << ", " << how;
    };
    // Ring of 4 + 2 - 1 = 5 positions (10 rows) for a context of 16.
    KvCache kv(c, 0, c.n_layer, static_cast<int32_t>(n_seq), static_cast<int64_t>(len), DType::kF32, /*ring_chunk=*/2);
    ASSERT_TRUE(kv.is_ring());
    EXPECT_LT(kv.bytes(), KvCache(c, 0, c.n_layer, static_cast<int32_t>(n_seq), static_cast<int64_t>(len)).bytes());
    std::vector<BatchToken> all;
    for (size_t p = 0; p < len; ++p)
      for (size_t s = 0; s < n_seq; ++s)
        all.push_back({ref["sequences"][s][p].get<int32_t>(), static_cast<int64_t>(p), static_cast<int32_t>(s), true});
    std::vector<float> logits;
    ASSERT_TRUE(m.forward(all, kv, &logits).ok());
    check(all, logits, "interleaved in one batch");
    for (size_t s = 0; s < n_seq; ++s) {  // whole sequences, from position 0 again
      std::vector<BatchToken> one;
      for (const BatchToken& t : all)
        if (t.seq == static_cast<int32_t>(s)) one.push_back(t);
      ASSERT_TRUE(m.forward(one, kv, &logits).ok());
      check(one, logits, "one sequence per batch");
      for (const BatchToken& t : one) {
        ASSERT_TRUE(m.forward({t}, kv, &logits).ok());
        check({t}, logits, "one token per call");
      }
    }
    // The slot holds 16 positions; the ring keeps the windows of the last 2.
    Status st = m.forward({all[10 * n_seq]}, kv, &logits);
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("rewinds past what the sliding-window cache still holds (from position 14"),
              std::string::npos) << st.message();
    ASSERT_TRUE(m.forward({all[15 * n_seq]}, kv, &logits).ok());
    check({all[15 * n_seq]}, logits, "a rewind the ring still holds");
  }
}

// slm convert's GGUF of each model: GGUF names and metadata, the same outputs.
TEST_P(HfTiny, ConvertedToGgufGivesTheSameOutputs) {
  const std::string dir = test::shared_data(std::string("models/hf-tiny/") + GetParam());
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const std::string out = (std::filesystem::temp_directory_path() /
                           fmt::format("slm_convert_{}_{}.gguf", ::getpid(), GetParam())).string();
  auto rep = convert_to_gguf(**src, out);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  auto gg = ModelSource::open(out);
  std::filesystem::remove(out);  // the mapping keeps the bytes
  ASSERT_TRUE(gg.ok()) << gg.status().to_string();
  EXPECT_EQ((*gg)->format(), FileFormat::kGguf);
  const ModelConfig& a = (*src)->config();
  const ModelConfig& b = (*gg)->config();
  EXPECT_EQ(b.arch, a.arch == "distilbert" ? "bert" : a.arch);
  EXPECT_EQ(a.features(), b.features());
  const std::string arch_key = b.arch + ".embedding_length";
  bool named = false;
  for (const auto& [k, v] : (*gg)->metadata()) named |= k == arch_key;
  EXPECT_TRUE(named) << arch_key;
  const Outputs x = run_reference_inputs(dir, a, (*src)->weights());
  const Outputs y = run_reference_inputs(dir, b, (*gg)->weights());
  const double d = max_abs_diff(x.ours, y.ours);
  std::printf("[ gguf ] %s: max |gguf - safetensors| = %.3g, vs reference %.3g\n", GetParam(), d,
              max_abs_diff(y.ours, y.ref));
  EXPECT_LT(d, 1e-5) << GetParam();
  EXPECT_LT(max_abs_diff(y.ours, y.ref), 1e-4) << GetParam();
}

// llama.cpp's own GGUF of stories260K is the oracle for the q/k permutation:
// converting the Hugging Face copy (rotate-half rows) gives its tensors byte
// for byte; converting the GGUF itself keeps them and its vocabulary.
TEST(Convert, StoriesHfBecomesLlamaCppsGgufByteForByte) {
  const std::string hf = test::shared_data("models/stories260K-hf");
  const std::string ref_path = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(hf);
  SLM_REQUIRE_DATA(ref_path);
  auto ref = ModelSource::open(ref_path);
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  for (const std::string& from : {hf, ref_path}) {
    auto src = ModelSource::open(from);
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    const std::string out = (std::filesystem::temp_directory_path() / fmt::format("slm_conv_st_{}.gguf", ::getpid())).string();
    ASSERT_TRUE(convert_to_gguf(**src, out).ok());
    auto gg = ModelSource::open(out);
    std::filesystem::remove(out);
    ASSERT_TRUE(gg.ok()) << gg.status().to_string();
    int compared = 0;
    for (const std::string& name : (*ref)->stored_tensor_names()) {
      if (name == "output.weight" && (*gg)->config().tied_output) continue;  // the HF copy says tied: dropped
      auto a = (*ref)->stored_tensor(name);
      auto b = (*gg)->stored_tensor(name);
      ASSERT_TRUE(a.ok() && b.ok()) << from << ": " << name;
      ASSERT_EQ(a->shape, b->shape) << name;
      ASSERT_EQ(a->nbytes, b->nbytes) << name;
      EXPECT_EQ(std::memcmp(a->data, b->data, a->nbytes), 0) << from << ": " << name << " differs";
      ++compared;
    }
    EXPECT_GE(compared, 2 + 9 * (*ref)->config().n_layer) << from;
    EXPECT_EQ((*gg)->gguf()->find("tokenizer.ggml.tokens") != nullptr, from == ref_path) << from;
  }
}

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
      {"gemma", "(1 + w) norms", [](ModelConfig* c, Weights*) { c->norm_plus_one = false; }},
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

namespace slm::model {
namespace {

// The phi3 fixture's weights beside an edited config.json.
class EditedConfig {
 public:
  EditedConfig(const std::string& model, const std::function<void(json*)>& edit) {
    src_ = test::shared_data("models/hf-tiny/" + model);
    dir_ = std::filesystem::temp_directory_path() / fmt::format("slm_hf_edit_{}_{}", ::getpid(), n_++);
    std::filesystem::create_directories(dir_);
    std::filesystem::create_symlink(src_ + "/model.safetensors", dir_ / "model.safetensors");
    json c = load_json(src_ + "/config.json");
    edit(&c);
    std::ofstream(dir_ / "config.json") << c.dump();
  }
  ~EditedConfig() { std::filesystem::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  const std::string& reference_dir() const { return src_; }

 private:
  static inline int n_ = 0;
  std::string src_;
  std::filesystem::path dir_;
};

json longrope(double short_f, double long_f, int half) {
  return {{"type", "longrope"}, {"short_factor", std::vector<double>(half, short_f)},
          {"long_factor", std::vector<double>(half, long_f)}};
}

TEST(LongRope, FrequenciesAndAttentionFactorFollowTheFormula) {
  ModelConfig c;
  c.n_rot = 8;
  c.head_dim = 8;
  c.rope_theta = 10000;
  c.rope_scaling = RopeScaling::kLongRope;
  c.rope_short_factor = {1, 2, 3, 4};
  c.rope_long_factor = {5, 6, 7, 8};
  c.rope_orig_ctx = 4096;
  c.n_ctx_train = 131072;
  for (int64_t n_ctx : {int64_t{16}, int64_t{8192}}) {
    const std::vector<float> f = c.rope_freqs(n_ctx);
    for (int i = 0; i < 4; ++i) {
      const double factor = (n_ctx > 4096 ? c.rope_long_factor : c.rope_short_factor)[i];
      const double want = 1.0 / (factor * std::pow(10000.0, 2.0 * i / 8));
      EXPECT_NEAR(f[i], want, 1e-6 * want) << n_ctx << " " << i;
    }
  }
  // sqrt(1 + ln(131072 / 4096) / ln(4096)), as Phi-3-128k's config implies.
  EXPECT_NEAR(c.rope_attn_factor(), std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-6);
  c.n_ctx_train = 4096;
  EXPECT_EQ(c.rope_attn_factor(), 1.0f);
}

TEST(LongRope, Phi3WithUnitShortFactorsStillMatchesAndOtherFactorsDoNot) {
  SLM_REQUIRE_DATA(test::shared_data("models/hf-tiny/phi3"));
  // Within the original context (16 = every position here), short factors of 1 are plain rotary.
  for (const auto& [short_f, matches] : {std::pair{1.0, true}, std::pair{4.0, false}}) {
    EditedConfig e("phi3", [&](json* c) {
      (*c)["rope_scaling"] = longrope(short_f, 9.0, 3);
      (*c)["original_max_position_embeddings"] = 16;
    });
    auto src = ModelSource::open(e.dir());
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    EXPECT_EQ((*src)->config().rope_scaling, RopeScaling::kLongRope);
    const double d = max_diff_vs_reference(e.reference_dir(), (*src)->config(), (*src)->weights());
    if (matches) EXPECT_LT(d, 1e-4) << "short factor " << short_f;
    else EXPECT_GT(d, 1e-3) << "short factor " << short_f;
  }
  {  // Past an original context of 8, the long factors apply.
    EditedConfig e("phi3", [&](json* c) {
      (*c)["rope_scaling"] = longrope(1.0, 4.0, 3);
      (*c)["original_max_position_embeddings"] = 8;
    });
    auto src = ModelSource::open(e.dir());
    ASSERT_TRUE(src.ok()) << src.status().to_string();
    EXPECT_GT(max_diff_vs_reference(e.reference_dir(), (*src)->config(), (*src)->weights()), 1e-3);
    // And the GGUF keeps them (rope_factors_long/short tensors, original context).
    const std::string out = (std::filesystem::temp_directory_path() / fmt::format("slm_lr_{}.gguf", ::getpid())).string();
    ASSERT_TRUE(convert_to_gguf(**src, out).ok());
    auto gg = ModelSource::open(out);
    std::filesystem::remove(out);
    ASSERT_TRUE(gg.ok()) << gg.status().to_string();
    const ModelConfig& g = (*gg)->config();
    EXPECT_EQ(g.rope_scaling, RopeScaling::kLongRope);
    EXPECT_EQ(g.rope_orig_ctx, 8);
    EXPECT_EQ(g.rope_long_factor, std::vector<float>(3, 4.0f));
    const Outputs x = run_reference_inputs(e.reference_dir(), (*src)->config(), (*src)->weights());
    const Outputs y = run_reference_inputs(e.reference_dir(), g, (*gg)->weights());
    EXPECT_LT(max_abs_diff(x.ours, y.ours), 1e-5);
  }
}

// An encoder batch of several sequences (each in its own slot, interleaved
// token by token): every token sees its whole sequence and nothing of the others.
TEST(HfTinyEncoderBatch, InterleavedSequencesInOneCall) {
  const std::string dir = test::shared_data("models/hf-tiny/bert");
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  const ModelConfig& c = (*src)->config();
  Model m(c, (*src)->weights());
  const json ref = load_json(dir + "/reference_hidden.json");
  const size_t n_seq = ref["sequences"].size(), len = ref["sequences"][0].size();
  KvCache kv(c, 0, c.n_layer, static_cast<int32_t>(n_seq), static_cast<int64_t>(len));
  std::vector<BatchToken> batch;
  for (size_t p = 0; p < len; ++p)
    for (size_t s = 0; s < n_seq; ++s)
      batch.push_back({ref["sequences"][s][p].get<int32_t>(), static_cast<int64_t>(p), static_cast<int32_t>(s), false,
                       ref["token_types"][s][p].get<int32_t>()});
  std::vector<float> hidden;
  ASSERT_TRUE(m.encode(batch, kv, &hidden).ok());
  double worst = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const auto& want = ref["hidden"][static_cast<size_t>(batch[i].seq)][static_cast<size_t>(batch[i].pos)];
    for (int64_t d = 0; d < c.n_embd; ++d)
      worst = std::max(worst, std::fabs(hidden[i * c.n_embd + d] - want[d].get<double>()));
  }
  EXPECT_LT(worst, 1e-4);
}

// BertForSequenceClassification's head reads the pooler: checked on the
// reference's pooler output (token types included), the head's weights ours.
TEST(HfTinyHead, BertClassifierOnThePooler) {
  const std::string dir = test::shared_data("models/hf-tiny/bert");
  SLM_REQUIRE_DATA(dir);
  auto src = ModelSource::open(dir);
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  ModelConfig c = (*src)->config();
  Weights w = (*src)->weights();
  c.n_labels = 3;
  std::vector<float> head(3 * 8 + 3);
  for (size_t i = 0; i < head.size(); ++i) head[i] = std::cos(static_cast<float>(i));
  w.classifier.shape = {3, 8};
  w.classifier.data = head.data();
  w.classifier.nbytes = 24 * sizeof(float);
  w.classifier_b.shape = {3};
  w.classifier_b.data = head.data() + 24;
  w.classifier_b.nbytes = 3 * sizeof(float);
  Model m(c, w);
  const json ref = load_json(dir + "/reference_hidden.json");
  double worst = 0;
  for (size_t s = 0; s < ref["sequences"].size(); ++s) {
    const auto ids = ref["sequences"][s].get<std::vector<int32_t>>();
    const auto types = ref["token_types"][s].get<std::vector<int32_t>>();
    KvCache kv(c, 0, c.n_layer, 1, static_cast<int64_t>(ids.size()));
    std::vector<BatchToken> batch;
    for (size_t i = 0; i < ids.size(); ++i) batch.push_back({ids[i], static_cast<int64_t>(i), 0, false, types[i]});
    std::vector<float> hidden;
    ASSERT_TRUE(m.encode(batch, kv, &hidden).ok());
    const std::vector<float> logits = m.classify(hidden.data());
    const auto pooled = ref["pooler"][s].get<std::vector<double>>();
    for (int r = 0; r < 3; ++r) {
      double want = head[24 + r];
      for (int d = 0; d < 8; ++d) want += head[r * 8 + d] * pooled[d];
      worst = std::max(worst, std::fabs(logits[r] - want));
    }
  }
  EXPECT_LT(worst, 1e-5);
}

// Every key of every hf-tiny config replaced by hostile values: an error or
// a model, never a crash or an exception (run under the sanitizers too).
TEST(HfTinyBadConfig, HostileValuesOfEveryKey) {
  SLM_REQUIRE_DATA(test::shared_data("models/hf-tiny/bert"));
  const json hostile[] = {nullptr, -1, 1e300, "x", json::object(), 1 << 30};
  int opened = 0, refused = 0;
  for (const char* model : {"qwen2", "mistral", "smollm2", "phi3", "gemma", "distilgpt2", "bert", "distilbert"}) {
    const json base = load_json(test::shared_data(std::string("models/hf-tiny/") + model + "/config.json"));
    const EditedConfig e(model, [](json*) {});
    for (auto it = base.begin(); it != base.end(); ++it) {
      for (const json& v : hostile) {
        json c = base;
        c[it.key()] = v;
        std::ofstream(e.dir() + "/config.json") << c.dump();
        auto src = ModelSource::open(e.dir());
        if (src.ok()) {
          ++opened;
          EXPECT_TRUE((*src)->config().validate().ok()) << model << " " << it.key() << " = " << v.dump();
        } else {
          ++refused;
          EXPECT_FALSE(src.status().message().empty());
        }
      }
    }
  }
  std::printf("[ fuzz ] %d configs opened, %d refused\n", opened, refused);
  EXPECT_GT(refused, 50);
}

// The same for GGUF metadata: each key of each converted hf-tiny model set
// to values of hostile sizes and types.
TEST(HfTinyBadConfig, HostileGgufMetadata) {
  SLM_REQUIRE_DATA(test::shared_data("models/hf-tiny/bert"));
  const std::string dir = std::filesystem::temp_directory_path() / fmt::format("slm_gguf_fuzz_{}", ::getpid());
  std::filesystem::create_directories(dir);
  auto value = [](io::GgufType t, uint64_t u, double f, const char* str) {
    io::GgufValue v;
    v.type = t;
    v.u = u;
    v.i = static_cast<int64_t>(u);
    v.f = f;
    v.s = str;
    return v;
  };
  const io::GgufValue hostile[] = {value(io::GgufType::kUint32, 0, 0, ""), value(io::GgufType::kUint64, uint64_t{1} << 40, 0, ""),
                                   value(io::GgufType::kFloat32, 0, NAN, ""), value(io::GgufType::kString, 0, 0, "x")};
  int refused = 0;
  for (const char* model : {"phi3", "gemma", "distilgpt2", "bert", "distilbert"}) {
    auto src = ModelSource::open(test::shared_data(std::string("models/hf-tiny/") + model));
    ASSERT_TRUE(src.ok());
    const std::string base = dir + "/base.gguf";
    ASSERT_TRUE(convert_to_gguf(**src, base).ok());
    auto g = io::GgufFile::open(base);
    ASSERT_TRUE(g.ok());
    for (const std::string& key : (*g)->key_order()) {
      for (const io::GgufValue& v : hostile) {
        io::GgufWriter w;
        for (const std::string& k : (*g)->key_order()) w.set(k, k == key ? v : *(*g)->find(k));
        for (const auto& t : (*g)->tensors()) {
          auto view = (*g)->tensor(t.name);
          ASSERT_TRUE(view.ok());
          const auto* b = static_cast<const uint8_t*>(view->data);
          w.add_tensor(t.name, t.ggml_type, t.shape, std::vector<uint8_t>(b, b + view->nbytes));
        }
        const std::string path = dir + "/m.gguf";
        ASSERT_TRUE(w.write(path).ok());
        auto m = ModelSource::open(path);
        if (!m.ok()) ++refused;
        else EXPECT_TRUE((*m)->config().validate().ok()) << model << " " << key;
      }
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_GT(refused, 20);
}

// Bad configs for the new architectures get an error naming the key or tensor.
TEST(HfTinyBadConfig, NamesWhatIsWrong) {
  SLM_REQUIRE_DATA(test::shared_data("models/hf-tiny/bert"));
  struct Case {
    const char* model;
    std::function<void(json*)> edit;
    Status::Code code;
    const char* needle;
  };
  const Case cases[] = {
      {"phi3", [](json* c) { (*c)["rope_scaling"] = longrope(1, 1, 2); }, Status::Code::kInvalidArgument,
       "longrope short_factor and long_factor have 2 and 2 values, expected 3"},
      {"phi3", [](json* c) { (*c)["rope_scaling"] = {{"type", "longrope"}}; }, Status::Code::kInvalidArgument,
       "no 'short_factor' list"},
      {"phi3", [](json* c) { (*c)["partial_rotary_factor"] = 0.4; }, Status::Code::kInvalidArgument, "rotary dims is 3"},
      {"phi3", [](json* c) { (*c)["num_key_value_heads"] = 4; }, Status::Code::kInvalidArgument,
       "'blk.0.attn_qkv.weight' has shape [64, 32], but the config implies [96, 32]"},
      {"phi3", [](json* c) { (*c)["intermediate_size"] = 48; }, Status::Code::kInvalidArgument, "ffn_up.weight"},
      {"gemma", [](json* c) { (*c)["head_dim"] = 4; }, Status::Code::kInvalidArgument, "attn_q.weight"},
      // Left out, a key takes Hugging Face's default: MistralConfig has 8 KV heads.
      {"mistral", [](json* c) { c->erase("num_key_value_heads"); }, Status::Code::kInvalidArgument,
       "KV head count is 8, expected a divisor of the head count"},
      {"gemma", [](json* c) { (*c)["hidden_activation"] = "relu"; }, Status::Code::kUnsupported, "activation 'relu'"},
      {"gemma", [](json* c) { (*c)["hidden_activation"] = 5; }, Status::Code::kInvalidArgument,
       "'hidden_activation' is 5, expected a name"},
      {"distilgpt2", [](json* c) { (*c)["n_positions"] = 32; }, Status::Code::kInvalidArgument, "position_embd.weight"},
      {"distilgpt2", [](json* c) { c->erase("n_head"); }, Status::Code::kInvalidArgument, "required key 'n_head'"},
      {"bert", [](json* c) { (*c)["position_embedding_type"] = "relative_key"; }, Status::Code::kUnsupported,
       "position_embedding_type 'relative_key'"},
      {"bert", [](json* c) { (*c)["type_vocab_size"] = 3; }, Status::Code::kInvalidArgument, "token_types.weight"},
      {"distilbert", [](json* c) { (*c)["model_type"] = "roberta"; }, Status::Code::kUnsupported, "'roberta'"},
  };
  for (const Case& k : cases) {
    EditedConfig e(k.model, k.edit);
    auto src = ModelSource::open(e.dir());
    ASSERT_FALSE(src.ok()) << k.model << " " << k.needle;
    EXPECT_EQ(src.status().code(), k.code) << src.status().to_string();
    EXPECT_NE(src.status().message().find(k.needle), std::string::npos) << src.status().message();
  }
}

}  // namespace
}  // namespace slm::model
