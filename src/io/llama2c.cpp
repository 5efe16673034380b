#include "slm/io/llama2c.h"

#include <climits>
#include <cstring>

namespace slm::io {

namespace {
constexpr uint32_t kMagic = 0x616b3432;  // "ak42"
}

Result<std::unique_ptr<Llama2cFile>> Llama2cFile::open(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  std::unique_ptr<Llama2cFile> f(new Llama2cFile());
  f->data_ = file->data();
  f->size_ = file->size();
  f->name_ = path;
  f->file_ = std::move(file);
  SLM_RETURN_IF_ERROR(f->parse_all().with_context(path));
  return f;
}

Result<std::unique_ptr<Llama2cFile>> Llama2cFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<Llama2cFile> f(new Llama2cFile());
  f->data_ = data;
  f->size_ = size;
  f->name_ = name;
  SLM_RETURN_IF_ERROR(f->parse_all().with_context(name));
  return f;
}

Status Llama2cFile::parse_all() {
  if (size_ < 28) return Status::Corruption(fmt::format("file is {} bytes, too short for a llama2.c header", size_));
  Llama2cHeader& h = header_;
  size_t offset = 0;
  uint32_t magic = 0;
  std::memcpy(&magic, data_, 4);
  if (magic == kMagic) {
    if (size_ < 256) return Status::Corruption("llama2.c version-1 header is truncated (needs 256 bytes)");
    std::memcpy(&h.version, data_ + 4, 4);
    if (h.version != 1)
      return Status::Unsupported(fmt::format("llama2.c checkpoint version {} (only versions 0 and 1, float32, are read; "
                                             "convert int8 version-2 files to GGUF)", h.version));
    int32_t v[7];
    std::memcpy(v, data_ + 8, sizeof v);
    h.dim = v[0]; h.hidden_dim = v[1]; h.n_layers = v[2]; h.n_heads = v[3]; h.n_kv_heads = v[4];
    h.vocab_size = v[5]; h.seq_len = v[6];
    uint8_t shared = data_[36];
    if (shared > 1) return Status::Corruption(fmt::format("shared_classifier flag is {}, expected 0 or 1", shared));
    h.shared_classifier = shared == 1;
    offset = 256;
  } else {
    int32_t v[7];
    std::memcpy(v, data_, sizeof v);
    h.version = 0;
    h.dim = v[0]; h.hidden_dim = v[1]; h.n_layers = v[2]; h.n_heads = v[3]; h.n_kv_heads = v[4];
    h.shared_classifier = v[5] > 0;
    // -INT32_MIN overflows: map it to 0, which the range check below refuses.
    h.vocab_size = v[5] == INT32_MIN ? 0 : v[5] < 0 ? -v[5] : v[5];
    h.seq_len = v[6];
    offset = 28;
  }
  auto bad = [&](const char* what, int64_t val, const char* want) {
    return Status::Corruption(fmt::format("header {} is {}, expected {} (is this a llama2.c checkpoint?)", what, val, want));
  };
  if (h.dim <= 0 || h.dim > 65536) return bad("dim", h.dim, "1..65536");
  if (h.hidden_dim <= 0 || h.hidden_dim > 262144) return bad("hidden_dim", h.hidden_dim, "1..262144");
  if (h.n_layers <= 0 || h.n_layers > 1024) return bad("n_layers", h.n_layers, "1..1024");
  if (h.n_heads <= 0 || h.dim % h.n_heads != 0) return bad("n_heads", h.n_heads, "a divisor of dim");
  if (h.n_kv_heads <= 0 || h.n_heads % h.n_kv_heads != 0) return bad("n_kv_heads", h.n_kv_heads, "a divisor of n_heads");
  if (h.vocab_size <= 0 || h.vocab_size > (1 << 24)) return bad("vocab_size", h.vocab_size, "1..16M");
  if (h.seq_len <= 0 || h.seq_len > (1 << 24)) return bad("seq_len", h.seq_len, "1..16M");
  const int64_t head = h.dim / h.n_heads;
  if (head % 2 != 0) return bad("head size", head, "an even number");
  const int64_t kv_dim = head * h.n_kv_heads;
  const int64_t L = h.n_layers, D = h.dim, F = h.hidden_dim, V = h.vocab_size;

  // Every array in file order, with its shape; per-layer arrays are split below.
  struct Arr { const char* name; std::vector<int64_t> shape; bool per_layer; };
  std::vector<Arr> order;
  const Arr emb{"token_embd.weight", {V, D}, false};
  const Arr att{"attn_norm.weight", {D}, true}, ffn{"ffn_norm.weight", {D}, true};
  const Arr fin{"output_norm.weight", {D}, false};
  const Arr wq{"attn_q.weight", {D, D}, true}, wk{"attn_k.weight", {kv_dim, D}, true};
  const Arr wv{"attn_v.weight", {kv_dim, D}, true}, wo{"attn_output.weight", {D, D}, true};
  const Arr w1{"ffn_gate.weight", {F, D}, true}, w2{"ffn_down.weight", {D, F}, true}, w3{"ffn_up.weight", {F, D}, true};
  const Arr freq{"", {h.seq_len, head}, false};  // freq_cis real+imag, skipped
  if (h.version == 0) order = {emb, att, wq, wk, wv, wo, ffn, w1, w2, w3, fin, freq};
  else order = {att, ffn, fin, emb, wq, wk, wv, wo, w1, w2, w3};
  if (!h.shared_classifier) order.push_back({"output.weight", {V, D}, false});

  uint64_t pos = offset;
  for (const Arr& a : order) {
    int64_t n = 1;
    for (int64_t d : a.shape) n *= d;
    const int64_t copies = a.per_layer ? L : 1;
    const uint64_t bytes = static_cast<uint64_t>(n) * 4;
    if (pos + bytes * copies > size_)
      return Status::Corruption(fmt::format("file is {} bytes but the header's shapes need at least {} (truncated, or "
                                            "the header is wrong)", size_, pos + bytes * copies));
    for (int64_t l = 0; a.name[0] && l < copies; ++l) {
      TensorView t;
      t.name = a.per_layer ? fmt::format("blk.{}.{}", l, a.name) : a.name;
      t.dtype = DType::kF32;
      t.shape = a.shape;
      t.data = data_ + pos + bytes * l;
      t.nbytes = bytes;
      tensors_.push_back(std::move(t));
    }
    pos += bytes * copies;
  }
  if (pos != size_)
    return Status::Corruption(fmt::format("file is {} bytes but the header's shapes account for {}: not a llama2.c "
                                          "checkpoint of this shape", size_, pos));
  return Status::Ok();
}

}  // namespace slm::io
