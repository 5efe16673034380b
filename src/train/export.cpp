#include "slm/train/export.h"

#include <cstring>

#include "slm/io/gguf.h"
#include "slm/tokenizer/byte_level.h"
#include "slm/tokenizer/gguf_export.h"

namespace slm::train {

namespace {

std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(float));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
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
  return tokenizer::add_tokenizer_to_gguf(*tok.tokenizer(), tok.spec(), w);
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
