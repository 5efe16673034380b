#include "slm/model/synthetic.h"

#include <cmath>
#include <cstring>
#include <random>

#include "slm/core/half.h"
#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"

namespace slm::model {

Result<SyntheticSpec> synthetic_preset(const std::string& name) {
  SyntheticSpec s;
  if (name == "15m") {
    s.n_embd = 288; s.n_layer = 6; s.n_head = 6; s.n_head_kv = 6; s.n_ff = 768; s.n_vocab = 32000;
  } else if (name == "110m") {
    s.n_embd = 768; s.n_layer = 12; s.n_head = 12; s.n_head_kv = 12; s.n_ff = 2048; s.n_vocab = 32000;
  } else if (name == "tinyllama-1.1b") {
    s.n_embd = 2048; s.n_layer = 22; s.n_head = 32; s.n_head_kv = 4; s.n_ff = 5632; s.n_vocab = 32000;
  } else {
    return Status::NotFound(fmt::format("no preset '{}' (presets: 15m, 110m, tinyllama-1.1b)", name));
  }
  return s;
}

Status finish_spec(SyntheticSpec* s) {
  if (s->n_head_kv == 0) s->n_head_kv = s->n_head;
  if (s->n_ff == 0) {  // llama2.c: 2/3 of 4*dim, rounded up to a multiple of 32
    s->n_ff = (2 * 4 * s->n_embd / 3 + 31) / 32 * 32;
  }
  auto bad = [](const char* what, int64_t v, const char* want) {
    return Status::InvalidArgument(fmt::format("[gen-model] {} is {}, expected {}", what, v, want));
  };
  if (s->n_embd <= 0 || s->n_embd > 65536) return bad("dim", s->n_embd, "1..65536");
  if (s->n_layer <= 0 || s->n_layer > 1024) return bad("layers", s->n_layer, "1..1024");
  if (s->n_head <= 0 || s->n_embd % s->n_head != 0) return bad("heads", s->n_head, "a divisor of dim");
  if ((s->n_embd / s->n_head) % 2 != 0) return bad("head dim", s->n_embd / s->n_head, "even");
  if (s->n_head_kv <= 0 || s->n_head % s->n_head_kv != 0) return bad("kv heads", s->n_head_kv, "a divisor of heads");
  if (s->n_ff <= 0 || s->n_ff > (1 << 20)) return bad("ffn", s->n_ff, "1..1M");
  if (s->n_vocab <= 0 || s->n_vocab > (1 << 24)) return bad("vocab", s->n_vocab, "1..16M");
  const int block = dtype_info(s->type).block_size;
  if (s->n_embd % block != 0 || s->n_ff % block != 0)
    return Status::InvalidArgument(fmt::format("[gen-model] type {} needs dim and ffn to be multiples of {}",
                                               dtype_name(s->type), block));
  if (s->type != DType::kF32 && s->type != DType::kF16 && s->type != DType::kBF16 && s->type != DType::kQ8_0 &&
      s->type != DType::kQ4_0 && s->type != DType::kQ4_K && s->type != DType::kQ5_K && s->type != DType::kQ6_K)
    return Status::Unsupported(fmt::format("[gen-model] type {} (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, "
                                           "Q6_K)", dtype_name(s->type)));
  return Status::Ok();
}

namespace {

// k-quants: random quants and scales with small super-scales. Any bytes are
// valid blocks, and speed does not depend on the values (slm has no k-quant
// quantizer yet).
void random_k_blocks(std::mt19937_64& rng, DType t, uint8_t* dst, int64_t cols) {
  const DTypeInfo& info = dtype_info(t);
  const int64_t nb = cols / info.block_size;
  for (int64_t i = 0; i < nb * info.block_bytes; ++i) dst[i] = static_cast<uint8_t>(rng());
  const float scale = 0.01f / std::sqrt(static_cast<float>(cols));
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = dst + b * info.block_bytes;
    const uint16_t d = f32_to_f16(scale), dmin = f32_to_f16(scale * 8);
    if (t == DType::kQ6_K) {
      std::memcpy(blk + info.block_bytes - 2, &d, 2);  // d last
    } else {                                          // Q4_K / Q5_K: d, dmin first
      std::memcpy(blk, &d, 2);
      std::memcpy(blk + 2, &dmin, 2);
    }
  }
}

// A rows x cols matrix of N(0, 1/sqrt(cols)) values in the given type.
std::vector<uint8_t> random_matrix(std::mt19937_64& rng, int64_t rows, int64_t cols, DType t) {
  std::normal_distribution<float> dist(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
  std::vector<float> row(static_cast<size_t>(cols));
  const size_t rb = row_bytes(t, cols);
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& x : row) x = dist(rng);
    uint8_t* dst = out.data() + rb * static_cast<size_t>(r);
    switch (t) {
      case DType::kF32: std::memcpy(dst, row.data(), rb); break;
      case DType::kF16:
        for (int64_t i = 0; i < cols; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_f16(row[i]);
        break;
      case DType::kBF16:
        for (int64_t i = 0; i < cols; ++i) reinterpret_cast<uint16_t*>(dst)[i] = f32_to_bf16(row[i]);
        break;
      case DType::kQ8_0: kernels::quantize_row_q8_0_ref(row.data(), reinterpret_cast<kernels::BlockQ8_0*>(dst), cols); break;
      case DType::kQ4_0: kernels::quantize_row_q4_0_ref(row.data(), reinterpret_cast<kernels::BlockQ4_0*>(dst), cols); break;
      case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
        random_k_blocks(rng, t, dst, cols);
        break;
      default: break;
    }
  }
  return out;
}

std::vector<uint8_t> ones(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n), 1.0f);
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace

Status write_synthetic_gguf(const SyntheticSpec& spec_in, const std::string& path) {
  SyntheticSpec s = spec_in;
  SLM_RETURN_IF_ERROR(finish_spec(&s));
  std::mt19937_64 rng(s.seed);
  const int64_t D = s.n_embd, hd = s.n_embd / s.n_head, KV = s.n_head_kv * hd, F = s.n_ff, V = s.n_vocab;
  const uint32_t gt = io::ggml_from_dtype(s.type);
  io::GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", "slm synthetic");
  w.set_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
  w.set_u32("llama.embedding_length", static_cast<uint32_t>(D));
  w.set_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
  w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(F));
  w.set_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
  w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(hd));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.set_u32("tokenizer.ggml.bos_token_id", 1);
  w.set_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_tensor("token_embd.weight", gt, {V, D}, random_matrix(rng, V, D, s.type));
  for (int64_t l = 0; l < s.n_layer; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    w.add_tensor(p + "attn_norm.weight", io::kGgmlF32, {D}, ones(D));
    w.add_tensor(p + "attn_q.weight", gt, {D, D}, random_matrix(rng, D, D, s.type));
    w.add_tensor(p + "attn_k.weight", gt, {KV, D}, random_matrix(rng, KV, D, s.type));
    w.add_tensor(p + "attn_v.weight", gt, {KV, D}, random_matrix(rng, KV, D, s.type));
    w.add_tensor(p + "attn_output.weight", gt, {D, D}, random_matrix(rng, D, D, s.type));
    w.add_tensor(p + "ffn_norm.weight", io::kGgmlF32, {D}, ones(D));
    w.add_tensor(p + "ffn_gate.weight", gt, {F, D}, random_matrix(rng, F, D, s.type));
    w.add_tensor(p + "ffn_up.weight", gt, {F, D}, random_matrix(rng, F, D, s.type));
    w.add_tensor(p + "ffn_down.weight", gt, {D, F}, random_matrix(rng, D, F, s.type));
  }
  w.add_tensor("output_norm.weight", io::kGgmlF32, {D}, ones(D));
  w.add_tensor("output.weight", gt, {V, D}, random_matrix(rng, V, D, s.type));
  return w.write(path);
}

}  // namespace slm::model
