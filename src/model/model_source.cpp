#include "slm/model/model_source.h"

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "slm/kernels/dispatch.h"

namespace slm::model {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Hugging Face's tensor name for a GGUF-style name.
std::string hf_name(const std::string& g) {
  static const std::pair<const char*, const char*> kGlobal[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  for (const auto& [a, b] : kGlobal)
    if (g == a) return b;
  static const std::pair<const char*, const char*> kLayer[] = {
      {"attn_norm.weight", "input_layernorm.weight"},   {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},     {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},         {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},         {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},          {"ffn_down.weight", "mlp.down_proj.weight"},
  };
  if (g.rfind("blk.", 0) == 0) {
    size_t dot = g.find('.', 4);
    if (dot != std::string::npos) {
      std::string layer = g.substr(4, dot - 4), rest = g.substr(dot + 1);
      for (const auto& [a, b] : kLayer)
        if (rest == a) return "model.layers." + layer + "." + b;
    }
  }
  return g;
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
  if (arch == "gemma" || arch == "gemma2" || arch == "gemma3")
    return "Gemma's (1 + weight) RMSNorm, GeGLU feed-forward and scaled embeddings";
  if (arch == "phi3")
    return "Phi-3's fused qkv and gate/up projections, partial rotary dims and LongRoPE";
  if (arch == "gpt2") return "GPT-2's learned positions, LayerNorm and GELU MLP";
  if (arch == "bert" || arch == "distilbert") return "encoder (bidirectional) models";
  return nullptr;
}

Status refuse_arch(const std::string& arch) {
  if (const char* what = missing_features(arch))
    return Status::Unsupported(fmt::format("architecture '{}' needs {}, which slm does not implement yet", arch, what));
  return Status::Unsupported(fmt::format("unknown architecture '{}' (slm runs llama, mistral, qwen2 and their "
                                         "relatives: TinyLlama, SmolLM, Llama 2/3)", arch));
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
  c.arch = *arch;
  if (c.arch == "qwen2") {
    c.attn_qkv_bias = true;
  } else if (c.arch != "llama" && c.arch != "mistral") {
    return refuse_arch(c.arch);
  }
  // Qwen2's GGUF keeps Hugging Face's rotate-half pairing (llama.cpp's NEOX rope).
  c.rope_interleaved = c.arch != "qwen2";
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
  c.n_rot = g.get_int(a + "rope.dimension_count").value_or(c.head_dim);
  c.rms_eps = static_cast<float>(g.get_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5));
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
  if (auto t = g.find_tensor("token_embd.weight"); t && t->shape.size() == 2) c.n_vocab = t->shape[0];
  if (auto v = g.find("tokenizer.ggml.tokens"); v && c.n_vocab == 0) c.n_vocab = static_cast<int64_t>(v->arr.size());
  c.tied_output = g.find_tensor("output.weight") == nullptr;
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
  c.arch = get_str("model_type");
  if (c.arch.empty()) return Status::InvalidArgument(fmt::format("{} has no model_type", cfg_path));
  if (c.arch != "llama" && c.arch != "mistral" && c.arch != "qwen2") return refuse_arch(c.arch);
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
  // Defaults are Hugging Face's for each model_type.
  c.n_embd = get_int("hidden_size", 0, true);
  c.n_ff = get_int("intermediate_size", 0, true);
  c.n_layer = get_int("num_hidden_layers", 0, true);
  c.n_head = get_int("num_attention_heads", 0, true);
  c.n_vocab = get_int("vocab_size", 32000, false);
  c.n_head_kv = get_int("num_key_value_heads", c.n_head, false);
  c.head_dim = get_int("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0, false);
  c.n_rot = c.head_dim;
  c.n_ctx_train = get_int("max_position_embeddings", 2048, false);
  c.rms_eps = static_cast<float>(get_float("rms_norm_eps", 1e-6));
  c.rope_theta = static_cast<float>(get_float("rope_theta", 10000.0));
  c.tied_output = get_bool("tie_word_embeddings", false);
  c.bos_id = static_cast<int32_t>(get_int("bos_token_id", -1, false));
  c.eos_id = static_cast<int32_t>(j.contains("eos_token_id") && j["eos_token_id"].is_array() ? -1 : get_int("eos_token_id", -1, false));
  c.rope_interleaved = false;  // HF checkpoints use rotate_half pairing
  if (c.arch == "mistral") {
    // An explicit null means no window (Mistral v0.2 and later); absent means HF's default 4096.
    const bool null_window = j.contains("sliding_window") && j["sliding_window"].is_null();
    c.sliding_window = null_window ? 0 : get_int("sliding_window", 4096, false);
  } else if (c.arch == "qwen2") {
    c.attn_qkv_bias = true;
    if (get_bool("use_sliding_window", false)) c.sliding_window = get_int("sliding_window", 4096, false);
  } else {
    c.attn_qkv_bias = get_bool("attention_bias", false);
  }
  if (get_bool("mlp_bias", false)) return Status::Unsupported(fmt::format("{}: mlp_bias (feed-forward biases)", cfg_path));
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
    } else if (type != "default") {
      return Status::Unsupported(fmt::format("{}: rope_scaling type '{}' (slm supports linear and llama3)", cfg_path, type));
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
  if (!c.tied_output && !has("output.weight")) c.tied_output = true;
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
  c.rms_eps = 1e-5f;
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
  const std::string h = hf_name(name);
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
  const std::string h = hf_name(name);
  for (const auto& s : shards_)
    if (s->find_tensor(h)) return s->tensor(h);
  return Status::NotFound(fmt::format("no tensor '{}' (looked for '{}')", name, h));
}

Status ModelSource::bind_weights() {
  const ModelConfig& c = config_;
  auto get = [&](const std::string& name, std::vector<int64_t> shape, TensorView* out, bool plain) -> Status {
    SLM_ASSIGN_OR_RETURN(*out, find(name));
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
  const int64_t D = c.n_embd, Q = c.n_head * c.head_dim, KV = c.n_head_kv * c.head_dim, F = c.n_ff, V = c.n_vocab;
  Weights& w = weights_;
  SLM_RETURN_IF_ERROR(get("token_embd.weight", {V, D}, &w.token_embd, false));
  SLM_RETURN_IF_ERROR(get("output_norm.weight", {D}, &w.output_norm, true));
  if (c.tied_output) w.output = w.token_embd;
  else SLM_RETURN_IF_ERROR(get("output.weight", {V, D}, &w.output, false));
  if (has("rope_freqs.weight")) SLM_RETURN_IF_ERROR(get("rope_freqs.weight", {c.n_rot / 2}, &w.rope_freqs, true));
  w.layers.resize(static_cast<size_t>(c.n_layer));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const std::string p = fmt::format("blk.{}.", l);
    SLM_RETURN_IF_ERROR(get(p + "attn_norm.weight", {D}, &L.attn_norm, true));
    SLM_RETURN_IF_ERROR(get(p + "attn_q.weight", {Q, D}, &L.wq, false));
    SLM_RETURN_IF_ERROR(get(p + "attn_k.weight", {KV, D}, &L.wk, false));
    SLM_RETURN_IF_ERROR(get(p + "attn_v.weight", {KV, D}, &L.wv, false));
    SLM_RETURN_IF_ERROR(get(p + "attn_output.weight", {D, Q}, &L.wo, false));
    if (c.attn_qkv_bias) {
      SLM_RETURN_IF_ERROR(get(p + "attn_q.bias", {Q}, &L.bq, true));
      SLM_RETURN_IF_ERROR(get(p + "attn_k.bias", {KV}, &L.bk, true));
      SLM_RETURN_IF_ERROR(get(p + "attn_v.bias", {KV}, &L.bv, true));
    }
    SLM_RETURN_IF_ERROR(get(p + "ffn_norm.weight", {D}, &L.ffn_norm, true));
    SLM_RETURN_IF_ERROR(get(p + "ffn_gate.weight", {F, D}, &L.ffn_gate, false));
    SLM_RETURN_IF_ERROR(get(p + "ffn_up.weight", {F, D}, &L.ffn_up, false));
    SLM_RETURN_IF_ERROR(get(p + "ffn_down.weight", {D, F}, &L.ffn_down, false));
  }
  return Status::Ok();
}

}  // namespace slm::model
