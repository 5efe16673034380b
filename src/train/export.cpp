#include "slm/train/export.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "slm/core/mapped_file.h"
#include "slm/io/gguf.h"
#include "slm/model/model_source.h"
#include "slm/tokenizer/byte_level.h"

namespace slm::train {

namespace {

std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

// A byte-level BPE vocabulary (tokenizer.json, model.type BPE) as GGUF gpt2 keys.
Status tokenizer_json_keys(const std::string& path, const tokenizer::Tokenizer& tok, io::GgufWriter* w) {
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("model") || !j["model"].contains("merges") ||
      j["model"].value("type", "") != "BPE")
    return Status::Unsupported(fmt::format("[export] {}: only byte-level BPE tokenizer.json files export to GGUF", path));
  std::vector<std::string> merges;
  for (const auto& m : j["model"]["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return Status::Corruption(fmt::format("[export] {}: a merge is neither \"a b\" nor [\"a\", \"b\"]", path));
    }
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    tokens.push_back(tok.token_text(id));
    types.push_back(static_cast<int32_t>(tok.token_attr(id)));
  }
  w->set_string("tokenizer.ggml.model", "gpt2");
  w->set_string("tokenizer.ggml.pre", "gpt-2");
  w->set_string_array("tokenizer.ggml.tokens", tokens);
  w->set_i32_array("tokenizer.ggml.token_type", types);
  w->set_string_array("tokenizer.ggml.merges", merges);
  if (tok.eos() >= 0) w->set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(tok.eos()));
  if (tok.bos() >= 0) w->set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(tok.bos()));
  return Status::Ok();
}

Status tokenizer_keys(const TrainTokenizer& tok, io::GgufWriter* w) {
  if (tok.is_byte()) {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(tokenizer::byte_level_encode(std::string(1, static_cast<char>(b))));
    w->set_string("tokenizer.ggml.model", "gpt2");
    w->set_string("tokenizer.ggml.pre", "default");
    w->set_string_array("tokenizer.ggml.tokens", tokens);
    w->set_i32_array("tokenizer.ggml.token_type", std::vector<int32_t>(256, 1));
    w->set_string_array("tokenizer.ggml.merges", {});
    return Status::Ok();
  }
  if (model::is_gguf_file(tok.spec())) {
    SLM_ASSIGN_OR_RETURN(auto src, io::GgufFile::open(tok.spec()));
    for (const std::string& key : src->key_order())
      if (key.rfind("tokenizer.", 0) == 0) w->set(key, src->metadata().at(key));
    return Status::Ok();
  }
  return tokenizer_json_keys(tok.spec(), *tok.tokenizer(), w);
}

}  // namespace

Status export_gguf(const Transformer<float>& model, const TrainTokenizer& tok, const std::string& path,
                   const std::string& name) {
  const model::ModelConfig& c = model.config();
  io::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", name);
  w.set_u32("llama.context_length", static_cast<uint32_t>(c.n_ctx_train));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(c.n_embd));
  w.set_u32("llama.block_count", static_cast<uint32_t>(c.n_layer));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(c.n_ff));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(c.n_head));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(c.n_rot));
  w.set_f32("llama.rope.freq_base", c.rope_theta);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_u32("llama.vocab_size", static_cast<uint32_t>(c.n_vocab));
  SLM_RETURN_IF_ERROR(tokenizer_keys(tok, &w));
  for (const auto& [pname, p] : model.params()) w.add_tensor(pname, io::kGgmlF32, p->shape, bytes_of(p->value));
  return w.write(path);
}

}  // namespace slm::train
