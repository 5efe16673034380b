#include "slm/model/model_source.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "slm/kernels/dispatch.h"

namespace slm::model {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// How an architecture's Hugging Face checkpoint names each GGUF-style tensor.
struct HfNames {
  std::vector<const char*> prefixes;  // tried in order: task models nest the base model ("bert.", "transformer.")
  std::vector<std::pair<const char*, const char*>> global;
  const char* layer;                  // "model.layers.{}." and the like
  std::vector<std::pair<const char*, const char*>> in_layer;
};

const HfNames& hf_names(const std::string& arch) {
  static const HfNames kLlama{
      {""},
      {{"token_embd.weight", "model.embed_tokens.weight"},
       {"output_norm.weight", "model.norm.weight"},
       {"output.weight", "lm_head.weight"}},
      "model.layers.{}.",
      {{"attn_norm.weight", "input_layernorm.weight"},      {"attn_q.weight", "self_attn.q_proj.weight"},
       {"attn_k.weight", "self_attn.k_proj.weight"},        {"attn_v.weight", "self_attn.v_proj.weight"},
       {"attn_q.bias", "self_attn.q_proj.bias"},            {"attn_k.bias", "self_attn.k_proj.bias"},
       {"attn_v.bias", "self_attn.v_proj.bias"},            {"attn_output.weight", "self_attn.o_proj.weight"},
       {"attn_output.bias", "self_attn.o_proj.bias"},       {"ffn_norm.weight", "post_attention_layernorm.weight"},
       {"ffn_gate.weight", "mlp.gate_proj.weight"},         {"ffn_up.weight", "mlp.up_proj.weight"},
       {"ffn_down.weight", "mlp.down_proj.weight"},         {"ffn_gate.bias", "mlp.gate_proj.bias"},
       {"ffn_up.bias", "mlp.up_proj.bias"},                 {"ffn_down.bias", "mlp.down_proj.bias"}}};
  static const HfNames kPhi3{
      {""},
      kLlama.global,
      "model.layers.{}.",
      {{"attn_norm.weight", "input_layernorm.weight"},      {"attn_qkv.weight", "self_attn.qkv_proj.weight"},
       {"attn_output.weight", "self_attn.o_proj.weight"},   {"ffn_norm.weight", "post_attention_layernorm.weight"},
       {"ffn_up.weight", "mlp.gate_up_proj.weight"},        {"ffn_down.weight", "mlp.down_proj.weight"}}};
  static const HfNames kGpt2{
      {"transformer.", ""},
      {{"token_embd.weight", "wte.weight"}, {"position_embd.weight", "wpe.weight"},
       {"output_norm.weight", "ln_f.weight"}, {"output_norm.bias", "ln_f.bias"}, {"output.weight", "lm_head.weight"}},
      "h.{}.",
      {{"attn_norm.weight", "ln_1.weight"},        {"attn_norm.bias", "ln_1.bias"},
       {"attn_qkv.weight", "attn.c_attn.weight"},  {"attn_qkv.bias", "attn.c_attn.bias"},
       {"attn_output.weight", "attn.c_proj.weight"}, {"attn_output.bias", "attn.c_proj.bias"},
       {"ffn_norm.weight", "ln_2.weight"},         {"ffn_norm.bias", "ln_2.bias"},
       {"ffn_up.weight", "mlp.c_fc.weight"},       {"ffn_up.bias", "mlp.c_fc.bias"},
       {"ffn_down.weight", "mlp.c_proj.weight"},   {"ffn_down.bias", "mlp.c_proj.bias"}}};
  static const HfNames kBert{
      {"bert.", ""},
      {{"token_embd.weight", "embeddings.word_embeddings.weight"},
       {"position_embd.weight", "embeddings.position_embeddings.weight"},
       {"token_types.weight", "embeddings.token_type_embeddings.weight"},
       {"token_embd_norm.weight", "embeddings.LayerNorm.weight"},
       {"token_embd_norm.bias", "embeddings.LayerNorm.bias"},
       {"cls.weight", "pooler.dense.weight"},
       {"cls.bias", "pooler.dense.bias"},
       {"cls.output.weight", "classifier.weight"},
       {"cls.output.bias", "classifier.bias"}},
      "encoder.layer.{}.",
      {{"attn_q.weight", "attention.self.query.weight"},          {"attn_q.bias", "attention.self.query.bias"},
       {"attn_k.weight", "attention.self.key.weight"},            {"attn_k.bias", "attention.self.key.bias"},
       {"attn_v.weight", "attention.self.value.weight"},          {"attn_v.bias", "attention.self.value.bias"},
       {"attn_output.weight", "attention.output.dense.weight"},   {"attn_output.bias", "attention.output.dense.bias"},
       {"attn_output_norm.weight", "attention.output.LayerNorm.weight"},
       {"attn_output_norm.bias", "attention.output.LayerNorm.bias"},
       {"ffn_up.weight", "intermediate.dense.weight"},            {"ffn_up.bias", "intermediate.dense.bias"},
       {"ffn_down.weight", "output.dense.weight"},                {"ffn_down.bias", "output.dense.bias"},
       {"layer_output_norm.weight", "output.LayerNorm.weight"},   {"layer_output_norm.bias", "output.LayerNorm.bias"}}};
  static const HfNames kDistilBert{
      {"distilbert.", ""},
      {{"token_embd.weight", "embeddings.word_embeddings.weight"},
       {"position_embd.weight", "embeddings.position_embeddings.weight"},
       {"token_embd_norm.weight", "embeddings.LayerNorm.weight"},
       {"token_embd_norm.bias", "embeddings.LayerNorm.bias"},
       {"cls.weight", "pre_classifier.weight"},
       {"cls.bias", "pre_classifier.bias"},
       {"cls.output.weight", "classifier.weight"},
       {"cls.output.bias", "classifier.bias"}},
      "transformer.layer.{}.",
      {{"attn_q.weight", "attention.q_lin.weight"},        {"attn_q.bias", "attention.q_lin.bias"},
       {"attn_k.weight", "attention.k_lin.weight"},        {"attn_k.bias", "attention.k_lin.bias"},
       {"attn_v.weight", "attention.v_lin.weight"},        {"attn_v.bias", "attention.v_lin.bias"},
       {"attn_output.weight", "attention.out_lin.weight"}, {"attn_output.bias", "attention.out_lin.bias"},
       {"attn_output_norm.weight", "sa_layer_norm.weight"}, {"attn_output_norm.bias", "sa_layer_norm.bias"},
       {"ffn_up.weight", "ffn.lin1.weight"},               {"ffn_up.bias", "ffn.lin1.bias"},
       {"ffn_down.weight", "ffn.lin2.weight"},             {"ffn_down.bias", "ffn.lin2.bias"},
       {"layer_output_norm.weight", "output_layer_norm.weight"},
       {"layer_output_norm.bias", "output_layer_norm.bias"}}};
  if (arch == "phi3") return kPhi3;
  if (arch == "gpt2") return kGpt2;
  if (arch == "bert") return kBert;
  if (arch == "distilbert") return kDistilBert;
  return kLlama;
}

// Hugging Face's candidate names for a GGUF-style name, or {} when the architecture has none.
std::vector<std::string> hf_candidates(const std::string& arch, const std::string& g) {
  const HfNames& t = hf_names(arch);
  std::string rest;
  for (const auto& [a, b] : t.global)
    if (g == a) rest = b;
  if (rest.empty() && g.rfind("blk.", 0) == 0) {
    size_t dot = g.find('.', 4);
    if (dot != std::string::npos) {
      const std::string layer = g.substr(4, dot - 4), in = g.substr(dot + 1);
      for (const auto& [a, b] : t.in_layer)
        if (in == a) rest = fmt::format(fmt::runtime(t.layer), layer) + b;
    }
  }
  std::vector<std::string> out;
  if (!rest.empty())
    for (const char* p : t.prefixes) out.push_back(p + rest);
  return out;
}

// GPT-2's Conv1D layers store weights (in, out), the transpose of nn.Linear.
bool hf_transposed(const std::string& arch, const std::string& g) {
  if (arch != "gpt2") return false;
  for (const char* n : {"attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"})
    if (g.size() > std::strlen(n) && g.compare(g.size() - std::strlen(n), std::strlen(n), n) == 0) return true;
  return false;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

// Reads 4 bytes to tell a GGUF file from the rest.
bool is_gguf_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char m[4] = {};
  size_t n = std::fread(m, 1, 4, f);
  std::fclose(f);
  return n == 4 && std::memcmp(m, "GGUF", 4) == 0;
}

namespace {

// Architectures recognised by name, with what slm still lacks for them.
const char* missing_features(const std::string& arch) {
  if (arch == "gemma2" || arch == "gemma3")
    return "Gemma 2/3's logit soft-capping, alternating local/global attention and extra norms";
  if (arch == "phi2" || arch == "phi") return "Phi-2's parallel attention and MLP blocks";
  if (arch == "roberta" || arch == "xlm-roberta") return "RoBERTa's offset position ids";
  return nullptr;
}

Status refuse_arch(const std::string& arch) {
  if (const char* what = missing_features(arch))
    return Status::Unsupported(fmt::format("architecture '{}' needs {}, which slm does not implement yet", arch, what));
  return Status::Unsupported(fmt::format("unknown architecture '{}' (slm runs llama, mistral, qwen2, phi3, gemma, gpt2, "
                                         "bert, distilbert and their relatives: TinyLlama, SmolLM, Llama 2/3)", arch));
}

// The flags an architecture fixes, whatever its file says (the numbers come from the file).
Status set_arch_defaults(const std::string& arch, ModelConfig* c) {
  c->arch = arch;
  if (arch == "llama" || arch == "mistral" || arch == "phi3") return Status::Ok();  // Phi-3's differences are numbers
  if (arch == "qwen2") {
    c->attn_qkv_bias = true;
  } else if (arch == "gemma") {
    c->act = Activation::kGeluTanh;
    c->norm_plus_one = true;
  } else if (arch == "gpt2") {
    c->norm = NormType::kLayerNorm;
    c->act = Activation::kGeluTanh;
    c->ffn_gated = false;
    c->learned_pos = true;
    c->attn_qkv_bias = c->attn_out_bias = c->ffn_bias = true;
    c->tied_output = true;
  } else if (arch == "bert" || arch == "distilbert") {
    c->norm = NormType::kLayerNorm;
    c->act = Activation::kGelu;
    c->ffn_gated = false;
    c->learned_pos = true;
    c->attn_qkv_bias = c->attn_out_bias = c->ffn_bias = true;
    c->embd_norm = true;
    c->post_norm = true;
    c->causal = false;
    c->final_norm = false;
    c->pooling = Pooling::kMean;
    c->pooler_relu = arch == "distilbert";
  } else {
    return refuse_arch(arch);
  }
  return Status::Ok();
}

// Hugging Face activation names.
Result<Activation> parse_activation(const std::string& name) {
  if (name == "silu" || name == "swish") return Activation::kSilu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGelu;
  return Status::Unsupported(fmt::format("activation '{}' (slm supports silu, gelu, gelu_new, gelu_pytorch_tanh)", name));
}

}  // namespace

const char* ModelSource::format_name() const {
  switch (format_) {
    case FileFormat::kGguf: return "GGUF";
    case FileFormat::kSafetensors: return "safetensors";
    case FileFormat::kLlama2c: return "llama2.c";
  }
  return "?";
}

Result<std::unique_ptr<ModelSource>> ModelSource::open(const std::string& path) {
  std::unique_ptr<ModelSource> m(new ModelSource());
  m->path_ = path;
  if (!file_exists(path)) return Status::NotFound(fmt::format("no model at '{}'", path));
  Status st;
  if (is_dir(path) || (path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0)) {
    m->format_ = FileFormat::kSafetensors;
    st = m->open_safetensors();
  } else if (is_gguf_file(path)) {
    m->format_ = FileFormat::kGguf;
    st = m->open_gguf();
  } else {
    m->format_ = FileFormat::kLlama2c;
    st = m->open_llama2c();
  }
  if (st.ok()) st = m->config_.validate();
  if (st.ok()) st = m->bind_weights();
  if (!st.ok()) return st.with_context(path);
  return m;
}

Status ModelSource::open_gguf() {
  SLM_ASSIGN_OR_RETURN(gguf_, io::GgufFile::open(path_));
  const io::GgufFile& g = *gguf_;
  for (const auto& k : g.key_order()) metadata_.emplace_back(k, g.find(k)->to_string());
  for (const auto& t : g.tensors()) tensor_list_.push_back({t.name, io::ggml_type_name(t.ggml_type), t.shape});

  auto arch = g.get_string("general.architecture");
  if (!arch) return Status::InvalidArgument("GGUF has no general.architecture string (is it a vocab-only file?)");
  ModelConfig& c = config_;
  SLM_RETURN_IF_ERROR(set_arch_defaults(*arch, &c));
  // llama.cpp's NEOX rope (Hugging Face's rotate-half) for all but Llama and
  // Mistral, whose q/k rows the converters permute to interleaved pairs.
  c.rope_interleaved = c.arch == "llama" || c.arch == "mistral";
  const std::string a = c.arch + ".";
  auto need_int = [&](const std::string& key, int64_t* out) -> Status {
    auto v = g.get_int(key);
    if (!v) return Status::InvalidArgument(fmt::format("GGUF is missing the integer key '{}'", key));
    *out = *v;
    return Status::Ok();
  };
  SLM_RETURN_IF_ERROR(need_int(a + "embedding_length", &c.n_embd));
  SLM_RETURN_IF_ERROR(need_int(a + "block_count", &c.n_layer));
  SLM_RETURN_IF_ERROR(need_int(a + "feed_forward_length", &c.n_ff));
  SLM_RETURN_IF_ERROR(need_int(a + "attention.head_count", &c.n_head));
  c.n_head_kv = g.get_int(a + "attention.head_count_kv").value_or(c.n_head);
  if (g.get_int(a + "expert_count").value_or(0) > 0)
    return Status::Unsupported(fmt::format("mixture-of-experts models ({}expert_count)", a));
  c.n_ctx_train = g.get_int(a + "context_length").value_or(2048);
  c.head_dim = g.get_int(a + "attention.key_length").value_or(c.n_head > 0 ? c.n_embd / c.n_head : 0);
  c.n_rot = c.learned_pos ? 0 : g.get_int(a + "rope.dimension_count").value_or(c.head_dim);
  c.norm_eps = static_cast<float>(g.get_float(a + (c.norm == NormType::kLayerNorm ? "attention.layer_norm_epsilon"
                                                                                   : "attention.layer_norm_rms_epsilon"))
                                      .value_or(1e-5));
  c.rope_theta = static_cast<float>(g.get_float(a + "rope.freq_base").value_or(10000.0));
  c.sliding_window = g.get_int(a + "attention.sliding_window").value_or(0);
  if (auto st = g.get_string(a + "rope.scaling.type")) {
    if (*st == "linear") {
      c.rope_scaling = RopeScaling::kLinear;
      c.rope_factor = static_cast<float>(g.get_float(a + "rope.scaling.factor").value_or(1.0));
    } else if (*st != "none") {
      return Status::Unsupported(fmt::format("rope scaling '{}' (slm supports none, linear and llama3)", *st));
    }
  }
  // Phi-3 LongRoPE: llama.cpp keeps the factors as tensors.
  if (g.find_tensor("rope_factors_long.weight") != nullptr || g.find_tensor("rope_factors_short.weight") != nullptr) {
    c.rope_scaling = RopeScaling::kLongRope;
    c.rope_orig_ctx = g.get_int(a + "rope.scaling.original_context_length").value_or(c.n_ctx_train);
    for (auto [name, out] : {std::pair{"rope_factors_long.weight", &c.rope_long_factor},
                             std::pair{"rope_factors_short.weight", &c.rope_short_factor}}) {
      SLM_ASSIGN_OR_RETURN(TensorView t, g.tensor(name));
      if (t.dtype != DType::kF32) return Status::Unsupported(fmt::format("tensor '{}' is {}, expected F32", name, dtype_name(t.dtype)));
      const float* f = static_cast<const float*>(t.data);
      out->assign(f, f + t.numel());
    }
  }
  if (c.arch == "gemma") {
    c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
    c.norm_plus_one_stored = true;
  }
  if (c.is_encoder()) {
    const int64_t pooling = g.get_int(a + "pooling_type").value_or(1);  // llama.cpp: 1 mean, 2 cls
    if (pooling != 1 && pooling != 2)
      return Status::Unsupported(fmt::format("{}pooling_type {} (slm pools by mean (1) or CLS (2))", a, pooling));
    c.pooling = pooling == 2 ? Pooling::kCls : Pooling::kMean;
    if (auto t = g.find_tensor("token_types.weight"); t && t->shape.size() == 2) c.n_token_types = t->shape[0];
    c.has_pooler = g.find_tensor("cls.weight") != nullptr;
    c.pooler_relu = g.get_string(a + "pooler.activation").value_or("tanh") == "relu";  // slm's key (DistilBERT)
    if (auto t = g.find_tensor("cls.output.weight"); t && !t->shape.empty()) c.n_labels = t->shape[0];
    if (auto v = g.find(a + "classifier.output_labels")) {
      for (const auto& e : v->arr) c.labels.push_back(e.s);
      if (static_cast<int64_t>(c.labels.size()) != c.n_labels)
        return Status::InvalidArgument(fmt::format("{}classifier.output_labels has {} labels, but cls.output.weight "
                                                   "has {} rows", a, c.labels.size(), c.n_labels));
    }
    for (int64_t i = static_cast<int64_t>(c.labels.size()); i < c.n_labels; ++i) c.labels.push_back(fmt::format("LABEL_{}", i));
  }
  if (auto t = g.find_tensor("token_embd.weight"); t && t->shape.size() == 2) c.n_vocab = t->shape[0];
  if (auto v = g.find("tokenizer.ggml.tokens"); v && c.n_vocab == 0) c.n_vocab = static_cast<int64_t>(v->arr.size());
  c.tied_output = !c.is_encoder() && g.find_tensor("output.weight") == nullptr;
  c.bos_id = static_cast<int32_t>(g.get_int("tokenizer.ggml.bos_token_id").value_or(-1));
  c.eos_id = static_cast<int32_t>(g.get_int("tokenizer.ggml.eos_token_id").value_or(-1));
  return Status::Ok();
}

Status ModelSource::open_safetensors() {
  const std::string dir = is_dir(path_) ? path_ : fs::path(path_).parent_path().string();
  const std::string cfg_path = (fs::path(dir.empty() ? "." : dir) / "config.json").string();
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(cfg_path, 16 << 20));
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    return Status::Corruption(fmt::format("{} is not valid JSON: {}", cfg_path, e.what()));
  }
  if (!j.is_object()) return Status::Corruption(fmt::format("{} is not a JSON object", cfg_path));
  for (auto it = j.begin(); it != j.end(); ++it) metadata_.emplace_back(it.key(), it.value().dump());

  ModelConfig& c = config_;
  auto get_str = [&](const char* k) -> std::string { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : ""; };
  const std::string model_type = get_str("model_type");
  if (model_type.empty()) return Status::InvalidArgument(fmt::format("{} has no model_type", cfg_path));
  SLM_RETURN_IF_ERROR(set_arch_defaults(model_type, &c));
  Status bad;
  auto get_int = [&](const char* k, int64_t def, bool required) -> int64_t {
    if (!j.contains(k) || j[k].is_null()) {
      if (required && bad.ok()) bad = Status::InvalidArgument(fmt::format("{} is missing the required key '{}'", cfg_path, k));
      return def;
    }
    if (!j[k].is_number_integer()) {
      if (bad.ok()) bad = Status::InvalidArgument(fmt::format("{}: '{}' is {}, expected an integer", cfg_path, k, j[k].dump()));
      return def;
    }
    return j[k].get<int64_t>();
  };
  auto get_float = [&](const char* k, double def) -> double {
    if (!j.contains(k) || j[k].is_null()) return def;
    if (!j[k].is_number()) {
      if (bad.ok()) bad = Status::InvalidArgument(fmt::format("{}: '{}' is {}, expected a number", cfg_path, k, j[k].dump()));
      return def;
    }
    return j[k].get<double>();
  };
  auto get_bool = [&](const char* k, bool def) -> bool {
    if (!j.contains(k) || j[k].is_null()) return def;
    if (!j[k].is_boolean()) {
      if (bad.ok()) bad = Status::InvalidArgument(fmt::format("{}: '{}' is {}, expected true or false", cfg_path, k, j[k].dump()));
      return def;
    }
    return j[k].get<bool>();
  };
  auto get_act = [&](const char* k, const char* def) -> Activation {
    if (j.contains(k) && !j[k].is_null() && !j[k].is_string()) {
      if (bad.ok()) bad = Status::InvalidArgument(fmt::format("{}: '{}' is {}, expected a name", cfg_path, k, j[k].dump()));
      return Activation::kSilu;
    }
    auto a = parse_activation(j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : def);
    if (!a.ok()) {
      if (bad.ok()) bad = a.status().with_context(fmt::format("{}: '{}'", cfg_path, k));
      return Activation::kSilu;
    }
    return *a;
  };
  // Key names and defaults are Hugging Face's for each model_type.
  if (c.arch == "gpt2") {
    c.n_embd = get_int("n_embd", 0, true);
    c.n_layer = get_int("n_layer", 0, true);
    c.n_head = c.n_head_kv = get_int("n_head", 0, true);
    c.n_ff = get_int("n_inner", 4 * c.n_embd, false);
    c.n_vocab = get_int("vocab_size", 50257, false);
    c.n_ctx_train = get_int("n_positions", 1024, false);
    c.norm_eps = static_cast<float>(get_float("layer_norm_epsilon", 1e-5));
    c.act = get_act("activation_function", "gelu_new");
    c.tied_output = get_bool("tie_word_embeddings", true);
  } else if (c.arch == "distilbert") {
    c.n_embd = get_int("dim", 0, true);
    c.n_layer = get_int("n_layers", 0, true);
    c.n_head = c.n_head_kv = get_int("n_heads", 0, true);
    c.n_ff = get_int("hidden_dim", 0, true);
    c.n_vocab = get_int("vocab_size", 30522, false);
    c.n_ctx_train = get_int("max_position_embeddings", 512, false);
    c.norm_eps = 1e-12f;  // fixed in DistilBERT's modeling code
    c.act = get_act("activation", "gelu");
  } else {
    // The *Config classes' defaults for what a config.json may leave out.
    struct Defaults {
      const char* arch;
      int64_t vocab, ctx, n_head_kv;  // n_head_kv 0: the head count
      double eps;
    };
    static const Defaults kDefaults[] = {
        {"llama", 32000, 2048, 0, 1e-6},   {"mistral", 32000, 4096 * 32, 8, 1e-6}, {"qwen2", 151936, 32768, 32, 1e-6},
        {"phi3", 32064, 4096, 0, 1e-5},    {"gemma", 256000, 8192, 16, 1e-6},      {"bert", 30522, 512, 0, 1e-12},
    };
    Defaults d = kDefaults[0];
    for (const Defaults& e : kDefaults)
      if (c.arch == e.arch) d = e;
    c.n_embd = get_int("hidden_size", 0, true);
    c.n_ff = get_int("intermediate_size", 0, true);
    c.n_layer = get_int("num_hidden_layers", 0, true);
    c.n_head = get_int("num_attention_heads", 0, true);
    c.n_vocab = get_int("vocab_size", d.vocab, false);
    c.n_ctx_train = get_int("max_position_embeddings", d.ctx, false);
    c.n_head_kv = get_int("num_key_value_heads", d.n_head_kv > 0 ? d.n_head_kv : c.n_head, false);
    c.norm_eps = static_cast<float>(get_float(c.arch == "bert" ? "layer_norm_eps" : "rms_norm_eps", d.eps));
  }
  c.head_dim = get_int("head_dim", c.arch == "gemma" ? 256 : c.n_head > 0 ? c.n_embd / c.n_head : 0, false);
  c.n_rot = c.learned_pos ? 0 : c.head_dim;
  c.rope_theta = static_cast<float>(get_float("rope_theta", 10000.0));
  c.bos_id = static_cast<int32_t>(get_int("bos_token_id", -1, false));
  c.eos_id = static_cast<int32_t>(j.contains("eos_token_id") && j["eos_token_id"].is_array() ? -1 : get_int("eos_token_id", -1, false));
  c.rope_interleaved = false;  // HF checkpoints use rotate_half pairing
  if (c.arch == "bert") {
    c.act = get_act("hidden_act", "gelu");
    c.n_token_types = get_int("type_vocab_size", 2, false);
    const std::string pos = get_str("position_embedding_type");
    if (!pos.empty() && pos != "absolute")
      return Status::Unsupported(fmt::format("{}: position_embedding_type '{}' (slm supports absolute)", cfg_path, pos));
  } else if (!c.is_encoder() && c.arch != "gpt2") {
    c.tied_output = get_bool("tie_word_embeddings", c.arch == "gemma");
  }
  if (c.arch == "mistral") {
    // An explicit null means no window (Mistral v0.2 and later); absent means HF's default 4096.
    const bool null_window = j.contains("sliding_window") && j["sliding_window"].is_null();
    c.sliding_window = null_window ? 0 : get_int("sliding_window", 4096, false);
  } else if (c.arch == "qwen2") {
    if (get_bool("use_sliding_window", false)) c.sliding_window = get_int("sliding_window", 4096, false);
  } else if (c.arch == "phi3") {
    c.sliding_window = get_int("sliding_window", 0, false);
    const double prf = get_float("partial_rotary_factor", 1.0);
    if (!(prf > 0 && prf <= 1))
      return Status::InvalidArgument(fmt::format("{}: partial_rotary_factor is {}, expected (0, 1]", cfg_path, prf));
    c.n_rot = static_cast<int64_t>(static_cast<double>(c.head_dim) * prf);
    c.rope_orig_ctx = get_int("original_max_position_embeddings", 4096, false);
  } else if (c.arch == "gemma") {
    // Gemma's legacy hidden_act "gelu" means the tanh GELU; hidden_activation overrides it.
    c.act = get_act("hidden_activation", "gelu_pytorch_tanh");
    c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
  } else if (c.arch == "llama") {
    c.ffn_bias = get_bool("mlp_bias", false);
  }
  if (c.arch == "llama" || c.arch == "gemma") c.attn_qkv_bias = c.attn_out_bias = get_bool("attention_bias", false);
  if (c.arch == "llama" || c.arch == "mistral" || c.arch == "qwen2" || c.arch == "phi3")
    c.act = get_act("hidden_act", "silu");
  if (get_int("num_local_experts", 0, false) > 0)
    return Status::Unsupported(fmt::format("{}: mixture-of-experts models (num_local_experts)", cfg_path));
  SLM_RETURN_IF_ERROR(bad);
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const auto& rs = j["rope_scaling"];
    // Not rs.value(): it throws when the key holds a non-string.
    std::string type = "default";
    for (const char* k : {"type", "rope_type"})
      if (rs.contains(k) && rs[k].is_string()) type = rs[k].get<std::string>();
    auto num = [&](const char* k, double def) { return rs.contains(k) && rs[k].is_number() ? rs[k].get<double>() : def; };
    if (type == "linear") {
      c.rope_scaling = RopeScaling::kLinear;
      c.rope_factor = static_cast<float>(num("factor", 1.0));
    } else if (type == "llama3") {
      c.rope_scaling = RopeScaling::kLlama3;
      c.rope_factor = static_cast<float>(num("factor", 8.0));
      c.rope_low_freq_factor = static_cast<float>(num("low_freq_factor", 1.0));
      c.rope_high_freq_factor = static_cast<float>(num("high_freq_factor", 4.0));
      c.rope_orig_ctx = static_cast<int64_t>(num("original_max_position_embeddings", 8192));
    } else if (type == "longrope" || type == "su") {
      c.rope_scaling = RopeScaling::kLongRope;
      for (auto [key, out] : {std::pair{"short_factor", &c.rope_short_factor}, std::pair{"long_factor", &c.rope_long_factor}}) {
        if (!rs.contains(key) || !rs[key].is_array())
          return Status::InvalidArgument(fmt::format("{}: rope_scaling '{}' has no '{}' list", cfg_path, type, key));
        for (const auto& v : rs[key]) {
          if (!v.is_number()) return Status::InvalidArgument(fmt::format("{}: rope_scaling.{} holds {}", cfg_path, key, v.dump()));
          out->push_back(v.get<float>());
        }
      }
    } else if (type != "default") {
      return Status::Unsupported(fmt::format("{}: rope_scaling type '{}' (slm supports linear, llama3 and longrope)",
                                             cfg_path, type));
    }
  }
  if (c.is_encoder()) {
    // sentence-transformers names the pooling in 1_Pooling/config.json; without it, mean.
    const std::string pooling_path = (fs::path(dir.empty() ? "." : dir) / "1_Pooling" / "config.json").string();
    if (file_exists(pooling_path)) {
      SLM_ASSIGN_OR_RETURN(std::string ptext, read_file(pooling_path, 1 << 20));
      json pj = json::parse(ptext, nullptr, false);
      if (!pj.is_object()) return Status::Corruption(fmt::format("{} is not a JSON object", pooling_path));
      const auto cls = pj.find("pooling_mode_cls_token");
      if (cls != pj.end() && cls->is_boolean() && cls->get<bool>()) c.pooling = Pooling::kCls;
    }
  }

  // One file, or shards listed by model.safetensors.index.json.
  std::vector<std::string> files;
  if (!is_dir(path_)) {
    files.push_back(path_);
  } else if (file_exists(dir + "/model.safetensors")) {
    files.push_back(dir + "/model.safetensors");
  } else if (file_exists(dir + "/model.safetensors.index.json")) {
    SLM_ASSIGN_OR_RETURN(std::string idx, read_file(dir + "/model.safetensors.index.json", 64 << 20));
    std::set<std::string> names;
    try {
      json ij = json::parse(idx);
      for (auto it = ij.at("weight_map").begin(); it != ij.at("weight_map").end(); ++it) names.insert(it.value().get<std::string>());
    } catch (const json::exception& e) {
      return Status::Corruption(fmt::format("model.safetensors.index.json: {}", e.what()));
    }
    for (const auto& n : names) {
      if (n.find('/') != std::string::npos) return Status::Corruption(fmt::format("index names a shard outside the folder: '{}'", n));
      files.push_back(dir + "/" + n);
    }
  } else {
    return Status::NotFound(fmt::format("no model.safetensors or model.safetensors.index.json in {}", dir));
  }
  for (const auto& f : files) {
    SLM_ASSIGN_OR_RETURN(auto s, io::SafetensorsFile::open(f));
    for (const auto& t : s->tensors()) tensor_list_.push_back({t.name, t.dtype, t.shape});
    shards_.push_back(std::move(s));
  }
  for (const char* tok : {"tokenizer.json", "tokenizer.model"}) {
    std::string p = (fs::path(dir.empty() ? "." : dir) / tok).string();
    if (file_exists(p)) {
      tokenizer_path_ = p;
      break;
    }
  }
  if (!c.is_encoder() && !c.tied_output && !has("output.weight")) c.tied_output = true;
  if (c.is_encoder()) {
    c.has_pooler = has("cls.weight");
    if (auto t = find("cls.output.weight"); t.ok() && !t->shape.empty()) c.n_labels = t->shape[0];
    // id2label: {"0": "NEGATIVE", "1": "POSITIVE"}; Hugging Face's LABEL_i where it is silent.
    const json none = json::object();
    const json& names = j.contains("id2label") && j["id2label"].is_object() ? j["id2label"] : none;
    for (int64_t i = 0; i < c.n_labels; ++i) {
      const auto it = names.find(std::to_string(i));
      c.labels.push_back(it != names.end() && it->is_string() ? it->get<std::string>() : fmt::format("LABEL_{}", i));
    }
  }
  return Status::Ok();
}

Status ModelSource::open_llama2c() {
  SLM_ASSIGN_OR_RETURN(l2c_, io::Llama2cFile::open(path_));
  const io::Llama2cHeader& h = l2c_->header();
  for (const auto& t : l2c_->tensors()) tensor_list_.push_back({t.name, "F32", t.shape});
  metadata_ = {{"llama2c.version", std::to_string(h.version)}, {"llama2c.seq_len", std::to_string(h.seq_len)}};
  ModelConfig& c = config_;
  c.arch = "llama";
  c.n_vocab = h.vocab_size;
  c.n_embd = h.dim;
  c.n_layer = h.n_layers;
  c.n_head = h.n_heads;
  c.n_head_kv = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.n_rot = c.head_dim;
  c.n_ff = h.hidden_dim;
  c.n_ctx_train = h.seq_len;
  c.norm_eps = 1e-5f;
  c.tied_output = h.shared_classifier;
  c.rope_interleaved = true;
  c.bos_id = 1;
  c.eos_id = 2;
  // llama2.c's tokenizer lives beside the checkpoint: tok<vocab>.bin or tokenizer.bin.
  const fs::path dir = fs::path(path_).parent_path();
  for (const std::string& name : {fmt::format("tok{}.bin", h.vocab_size), std::string("tokenizer.bin")}) {
    std::string p = (dir / name).string();
    if (file_exists(p)) {
      tokenizer_path_ = p;
      break;
    }
  }
  return Status::Ok();
}

bool ModelSource::has(const std::string& name) const {
  if (gguf_) return gguf_->find_tensor(name) != nullptr;
  if (l2c_) {
    for (const auto& t : l2c_->tensors())
      if (t.name == name) return true;
    return false;
  }
  for (const std::string& h : hf_candidates(config_.arch, name))
    for (const auto& s : shards_)
      if (s->find_tensor(h)) return true;
  return false;
}

Result<TensorView> ModelSource::find(const std::string& name) const {
  if (gguf_) return gguf_->tensor(name);
  if (l2c_) {
    for (const auto& t : l2c_->tensors())
      if (t.name == name) return t;
    return Status::NotFound(fmt::format("no tensor '{}'", name));
  }
  const std::vector<std::string> hs = hf_candidates(config_.arch, name);
  for (const std::string& h : hs)
    for (const auto& s : shards_)
      if (s->find_tensor(h)) return s->tensor(h);
  if (hs.empty())
    return Status::NotFound(fmt::format("no tensor '{}' (a Hugging Face '{}' checkpoint has no such tensor)", name, config_.arch));
  return Status::NotFound(fmt::format("no tensor '{}' (looked for '{}')", name, fmt::join(hs, "', '")));
}

std::vector<std::string> ModelSource::stored_tensor_names() const {
  std::vector<std::string> names;
  if (gguf_) {
    for (const auto& t : gguf_->tensors()) names.push_back(t.name);
  } else if (l2c_) {
    for (const auto& t : l2c_->tensors()) names.push_back(t.name);
  } else {
    const HfNames& t = hf_names(config_.arch);
    for (const auto& [g, h] : t.global)
      if (has(g)) names.push_back(g);
    for (int64_t l = 0; l < config_.n_layer; ++l)
      for (const auto& [g, h] : t.in_layer)
        if (const std::string n = fmt::format("blk.{}.{}", l, g); has(n)) names.push_back(n);
  }
  return names;
}

bool ModelSource::stored_transposed(const std::string& name) const {
  return format_ == FileFormat::kSafetensors && hf_transposed(config_.arch, name);
}

Result<TensorView> ModelSource::load(const std::string& name) {
  SLM_ASSIGN_OR_RETURN(TensorView t, find(name));
  if (!stored_transposed(name)) return t;
  // The one copy at load: GPT-2's Conv1D weights, transposed to (out, in). slm convert writes them transposed.
  if (t.shape.size() != 2 || (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16))
    return Status::Unsupported(fmt::format("tensor '{}' ({}, {}) cannot be transposed; expected a 2-D F32, F16 or BF16 "
                                           "Conv1D weight", name, dtype_name(t.dtype), t.shape_string()));
  const int64_t rows = t.shape[0], cols = t.shape[1];
  const size_t es = row_bytes(t.dtype, 1);
  std::vector<uint8_t>& buf = owned_.emplace_back(t.nbytes);
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(&buf[static_cast<size_t>(c * rows + r) * es], src + static_cast<size_t>(r * cols + c) * es, es);
  t.data = buf.data();
  t.shape = {cols, rows};
  return t;
}

namespace {
// Rows [r0, r0 + n) of a matrix, or elements [r0, r0 + n) of a vector: a view, no copy.
TensorView slice_rows(const TensorView& t, int64_t r0, int64_t n, const std::string& name) {
  TensorView v = t;
  v.name = name;
  const size_t unit = t.shape.size() == 1 ? row_bytes(t.dtype, 1) : row_bytes(t.dtype, t.cols());
  v.data = static_cast<const uint8_t*>(t.data) + static_cast<size_t>(r0) * unit;
  v.nbytes = static_cast<size_t>(n) * unit;
  v.shape[0] = n;
  return v;
}
}  // namespace

Status ModelSource::bind_weights() {
  const ModelConfig& c = config_;
  auto get = [&](const std::string& name, std::vector<int64_t> shape, TensorView* out, bool plain) -> Status {
    SLM_ASSIGN_OR_RETURN(*out, load(name));
    if (out->shape != shape) {
      TensorView want;
      want.shape = shape;
      return Status::InvalidArgument(fmt::format("tensor '{}' has shape {}, but the config implies {}", name,
                                                 out->shape_string(), want.shape_string()));
    }
    if (plain && out->dtype != DType::kF32 && out->dtype != DType::kF16 && out->dtype != DType::kBF16)
      return Status::Unsupported(fmt::format("tensor '{}' is {}; norms and biases must be F32, F16 or BF16", name,
                                             dtype_name(out->dtype)));
    if (!plain && kernels::kernels().of(out->dtype).vec_dot == nullptr)
      return Status::Unsupported(fmt::format("tensor '{}' is {}, which has no matmul kernel yet", name,
                                             dtype_name(out->dtype)));
    return Status::Ok();
  };
  const bool ln = c.norm == NormType::kLayerNorm;
  // A norm's weight, and its bias for LayerNorm.
  auto get_norm = [&](const std::string& name, TensorView* w, TensorView* b) -> Status {
    SLM_RETURN_IF_ERROR(get(name + ".weight", {c.n_embd}, w, true));
    if (ln) SLM_RETURN_IF_ERROR(get(name + ".bias", {c.n_embd}, b, true));
    return Status::Ok();
  };
  // A fused projection (rows of the parts stacked), split into views.
  auto get_fused = [&](const std::string& name, std::vector<int64_t> parts, std::vector<TensorView*> outs,
                       int64_t cols, bool plain) -> Status {
    int64_t total = 0;
    for (int64_t p : parts) total += p;
    TensorView all;
    SLM_RETURN_IF_ERROR(get(name, cols > 0 ? std::vector<int64_t>{total, cols} : std::vector<int64_t>{total}, &all, plain));
    int64_t r0 = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      *outs[i] = slice_rows(all, r0, parts[i], fmt::format("{}[{}:{}]", name, r0, r0 + parts[i]));
      r0 += parts[i];
    }
    return Status::Ok();
  };
  const int64_t D = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim, F = c.n_ff, V = c.n_vocab;
  Weights& w = weights_;
  SLM_RETURN_IF_ERROR(get("token_embd.weight", {V, D}, &w.token_embd, false));
  if (c.learned_pos) SLM_RETURN_IF_ERROR(get("position_embd.weight", {c.n_ctx_train, D}, &w.position_embd, false));
  if (c.n_token_types > 0) SLM_RETURN_IF_ERROR(get("token_types.weight", {c.n_token_types, D}, &w.token_types, false));
  if (c.embd_norm) SLM_RETURN_IF_ERROR(get_norm("token_embd_norm", &w.embd_norm, &w.embd_norm_b));
  if (c.final_norm) SLM_RETURN_IF_ERROR(get_norm("output_norm", &w.output_norm, &w.output_norm_b));
  if (!c.is_encoder()) {
    if (c.tied_output) w.output = w.token_embd;
    else SLM_RETURN_IF_ERROR(get("output.weight", {V, D}, &w.output, false));
  }
  if (c.has_pooler) {
    SLM_RETURN_IF_ERROR(get("cls.weight", {D, D}, &w.pooler, false));
    SLM_RETURN_IF_ERROR(get("cls.bias", {D}, &w.pooler_b, true));
  }
  if (c.n_labels > 0) {
    SLM_RETURN_IF_ERROR(get("cls.output.weight", {c.n_labels, D}, &w.classifier, false));
    SLM_RETURN_IF_ERROR(get("cls.output.bias", {c.n_labels}, &w.classifier_b, true));
  }
  if (has("rope_freqs.weight")) SLM_RETURN_IF_ERROR(get("rope_freqs.weight", {c.n_rot / 2}, &w.rope_freqs, true));
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const std::string p = fmt::format("blk.{}.", l);
    SLM_RETURN_IF_ERROR(get_norm(p + (c.post_norm ? "attn_output_norm" : "attn_norm"), &L.attn_norm, &L.attn_norm_b));
    SLM_RETURN_IF_ERROR(get_norm(p + (c.post_norm ? "layer_output_norm" : "ffn_norm"), &L.ffn_norm, &L.ffn_norm_b));
    // Phi-3 and GPT-2 fuse q, k and v (llama.cpp's Phi-3 GGUF may split them).
    const bool fused_qkv = has(p + "attn_qkv.weight") || (!has(p + "attn_q.weight") && (c.arch == "phi3" || c.arch == "gpt2"));
    if (fused_qkv) {
      SLM_RETURN_IF_ERROR(get_fused(p + "attn_qkv.weight", {Q, KV, KV}, {&L.wq, &L.wk, &L.wv}, D, false));
      if (c.attn_qkv_bias) SLM_RETURN_IF_ERROR(get_fused(p + "attn_qkv.bias", {Q, KV, KV}, {&L.bq, &L.bk, &L.bv}, 0, true));
    } else {
      SLM_RETURN_IF_ERROR(get(p + "attn_q.weight", {Q, D}, &L.wq, false));
      SLM_RETURN_IF_ERROR(get(p + "attn_k.weight", {KV, D}, &L.wk, false));
      SLM_RETURN_IF_ERROR(get(p + "attn_v.weight", {KV, D}, &L.wv, false));
      if (c.attn_qkv_bias) {
        SLM_RETURN_IF_ERROR(get(p + "attn_q.bias", {Q}, &L.bq, true));
        SLM_RETURN_IF_ERROR(get(p + "attn_k.bias", {KV}, &L.bk, true));
        SLM_RETURN_IF_ERROR(get(p + "attn_v.bias", {KV}, &L.bv, true));
      }
    }
    SLM_RETURN_IF_ERROR(get(p + "attn_output.weight", {D, Q}, &L.wo, false));
    if (c.attn_out_bias) SLM_RETURN_IF_ERROR(get(p + "attn_output.bias", {D}, &L.bo, true));
    if (c.ffn_gated && !has(p + "ffn_gate.weight")) {  // Phi-3: gate and up stacked in ffn_up
      SLM_RETURN_IF_ERROR(get_fused(p + "ffn_up.weight", {F, F}, {&L.ffn_gate, &L.ffn_up}, D, false));
    } else {
      if (c.ffn_gated) SLM_RETURN_IF_ERROR(get(p + "ffn_gate.weight", {F, D}, &L.ffn_gate, false));
      SLM_RETURN_IF_ERROR(get(p + "ffn_up.weight", {F, D}, &L.ffn_up, false));
    }
    SLM_RETURN_IF_ERROR(get(p + "ffn_down.weight", {D, F}, &L.ffn_down, false));
    if (c.ffn_bias) {
      if (c.ffn_gated) SLM_RETURN_IF_ERROR(get(p + "ffn_gate.bias", {F}, &L.ffn_gate_b, true));
      SLM_RETURN_IF_ERROR(get(p + "ffn_up.bias", {F}, &L.ffn_up_b, true));
      SLM_RETURN_IF_ERROR(get(p + "ffn_down.bias", {D}, &L.ffn_down_b, true));
    }
  }
  return Status::Ok();
}

}  // namespace slm::model
