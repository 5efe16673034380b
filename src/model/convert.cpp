#include "slm/model/convert.h"

#include <cstring>
#include <filesystem>

#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "slm/tokenizer/gguf_export.h"
#include "slm/tokenizer/load.h"

namespace slm::model {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// GGUF metadata as llama.cpp's convert_hf_to_gguf.py names it.
void write_metadata(const ModelSource& src, const std::string& arch, io::GgufWriter* w) {
  const ModelConfig& c = src.config();
  const std::string a = arch + ".";
  w->set_string("general.architecture", arch);
  w->set_string("general.name", std::filesystem::path(src.path()).filename().string());
  w->set_u32(a + "context_length", static_cast<uint32_t>(c.n_ctx_train));
  w->set_u32(a + "embedding_length", static_cast<uint32_t>(c.n_embd));
  w->set_u32(a + "block_count", static_cast<uint32_t>(c.n_layer));
  w->set_u32(a + "feed_forward_length", static_cast<uint32_t>(c.n_ff));
  w->set_u32(a + "attention.head_count", static_cast<uint32_t>(c.n_head));
  w->set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
  if (c.head_dim * c.n_head != c.n_embd) {
    w->set_u32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
    w->set_u32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  }
  w->set_f32(a + (c.norm == NormType::kLayerNorm ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon"),
             c.norm_eps);
  if (c.n_rot > 0) {
    w->set_u32(a + "rope.dimension_count", static_cast<uint32_t>(c.n_rot));
    w->set_f32(a + "rope.freq_base", c.rope_theta);
  }
  if (c.rope_scaling == RopeScaling::kLinear) {
    w->set_string(a + "rope.scaling.type", "linear");
    w->set_f32(a + "rope.scaling.factor", c.rope_factor);
  } else if (c.rope_scaling == RopeScaling::kLongRope) {
    w->set_u32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(c.rope_orig_ctx));
    w->set_f32(a + "rope.scaling.attn_factor", c.rope_attn_factor());
  }
  if (c.sliding_window > 0) w->set_u32(a + "attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
  if (c.is_encoder()) {
    w->set_bool(a + "attention.causal", false);
    w->set_u32(a + "pooling_type", c.pooling == Pooling::kCls ? 2 : 1);  // llama.cpp's LLAMA_POOLING_TYPE_*
    if (c.n_labels > 0) w->set_string_array(a + "classifier.output_labels", c.labels);
    if (c.has_pooler && c.pooler_relu) w->set_string(a + "pooler.activation", "relu");  // slm's key: DistilBERT
  }
  if (const io::GgufFile* g = src.gguf()) {  // a GGUF's own vocabulary goes along
    for (const std::string& key : g->key_order())
      if (key.rfind("tokenizer.", 0) == 0) w->set(key, *g->find(key));
    return;
  }
  if (c.bos_id >= 0) w->set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_id));
  if (c.eos_id >= 0) w->set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_id));
}

// The tokenizer file beside the model (tokenizer.json, tokenizer.model, a
// llama2.c tokenizer), when there is one, goes into the GGUF.
Status write_tokenizer(const ModelSource& src, io::GgufWriter* w) {
  if (src.gguf() != nullptr || src.tokenizer_path().empty()) return Status::Ok();
  SLM_ASSIGN_OR_RETURN(auto tok, tokenizer::load_tokenizer_file(src.tokenizer_path(),
                                                                static_cast<int32_t>(src.config().n_vocab)));
  return tokenizer::add_tokenizer_to_gguf(*tok, src.tokenizer_path(), w);
}

}  // namespace

Result<ConvertReport> convert_to_gguf(const ModelSource& src, const std::string& out_path) {
  if (out_path.empty()) return Status::InvalidArgument("[convert] no output path (--out)");
  const ModelConfig& c = src.config();
  const bool hf = src.format() == FileFormat::kSafetensors;
  // llama.cpp has no DistilBERT: it is a BERT without token types.
  const std::string arch = c.arch == "distilbert" ? "bert" : c.arch;
  io::GgufWriter w;
  write_metadata(src, arch, &w);
  ConvertReport rep;
  if (Status st = write_tokenizer(src, &w); !st.ok()) {
    if (st.code() != Status::Code::kUnsupported) return st;
    rep.tokenizer_skipped = st.message();
  }
  rep.tokenizer_path = src.tokenizer_path();
  // Tensors of the model are made as the file is written, one at a time: a
  // converter of a 7B model must not hold it twice in memory.
  auto add = [&](const std::string& name, DType t, const std::vector<int64_t>& shape, size_t nbytes,
                 io::GgufWriter::TensorFill fill) {
    rep.n_tensors++;
    rep.bytes += static_cast<int64_t>(nbytes);
    w.add_tensor(name, io::ggml_from_dtype(t), shape, nbytes, std::move(fill));
  };
  auto add_f32 = [&](const std::string& name, const std::vector<float>& v) {
    const size_t n = v.size() * sizeof(float);
    add(name, DType::kF32, {static_cast<int64_t>(v.size())}, n, [v, n](uint8_t* dst) { std::memcpy(dst, v.data(), n); });
  };
  // Hugging Face's rotate-half q/k rows, reordered so that GGUF's interleaved pairs (2i, 2i+1) hold them.
  const bool permute_qk = hf && (c.arch == "llama" || c.arch == "mistral");
  const bool plus_one = c.norm_plus_one && !c.norm_plus_one_stored;  // Gemma's GGUF stores 1 + w
  for (const std::string& name : src.stored_tensor_names()) {
    if (c.tied_output && name == "output.weight") continue;  // a tied lm_head is the embedding
    SLM_ASSIGN_OR_RETURN(TensorView t, src.stored_tensor(name));
    const auto* data = static_cast<const uint8_t*>(t.data);
    if (t.shape.size() == 1 && (ends_with(name, "norm.weight") || ends_with(name, "norm.bias"))) {
      const bool add_one = plus_one && ends_with(name, "norm.weight");
      add(name, DType::kF32, t.shape, static_cast<size_t>(t.numel()) * sizeof(float), [t, add_one](uint8_t* dst) {
        auto* f = reinterpret_cast<float*>(dst);
        kernels::dequantize_row_ref(t.dtype, t.data, f, t.numel());
        if (add_one)
          for (int64_t i = 0; i < t.numel(); ++i) f[i] += 1.0f;
      });
    } else if (src.stored_transposed(name)) {
      const int64_t rows = t.shape[0], cols = t.shape[1];
      add(name, t.dtype, {cols, rows}, t.nbytes, [=](uint8_t* dst) {
        const size_t es = row_bytes(t.dtype, 1);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t col = 0; col < cols; ++col)
            std::memcpy(dst + static_cast<size_t>(col * rows + r) * es, data + static_cast<size_t>(r * cols + col) * es, es);
      });
    } else if (permute_qk && (ends_with(name, "attn_q.weight") || ends_with(name, "attn_k.weight") ||
                              ends_with(name, "attn_q.bias") || ends_with(name, "attn_k.bias"))) {
      const int64_t hd = c.head_dim, half = c.n_rot / 2;
      add(name, t.dtype, t.shape, t.nbytes, [=](uint8_t* dst) {
        const size_t rb = t.shape.size() == 1 ? row_bytes(t.dtype, 1) : row_bytes(t.dtype, t.cols());
        for (int64_t r = 0; r < t.shape[0]; ++r) {
          const int64_t h = r / hd, i = r % hd;
          // GGUF row h*hd + 2j (+1) is Hugging Face row h*hd + j (+ half); dims past n_rot stay.
          const int64_t from = i < 2 * half ? h * hd + (i % 2 == 0 ? i / 2 : i / 2 + half) : r;
          std::memcpy(dst + static_cast<size_t>(r) * rb, data + static_cast<size_t>(from) * rb, rb);
        }
      });
    } else {
      add(name, t.dtype, t.shape, t.nbytes, [data, n = t.nbytes](uint8_t* dst) { std::memcpy(dst, data, n); });
    }
  }
  if (c.rope_scaling == RopeScaling::kLlama3 && hf) {
    // llama.cpp keeps Llama 3's scaling as per-pair frequency divisors.
    ModelConfig plain = c;
    plain.rope_scaling = RopeScaling::kNone;
    const std::vector<float> base = plain.rope_freqs(), scaled = c.rope_freqs();
    std::vector<float> div(base.size());
    for (size_t i = 0; i < div.size(); ++i) div[i] = base[i] / scaled[i];
    add_f32("rope_freqs.weight", div);
  }
  if (c.rope_scaling == RopeScaling::kLongRope && hf) {
    add_f32("rope_factors_long.weight", c.rope_long_factor);
    add_f32("rope_factors_short.weight", c.rope_short_factor);
  }
  SLM_RETURN_IF_ERROR(w.write(out_path).with_context("[convert] " + out_path));
  return rep;
}

}  // namespace slm::model
