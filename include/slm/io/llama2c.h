// llama2.c checkpoints (.bin): Karpathy's format for small Llama models.
//
// Legacy (version 0): 7 x i32 header {dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size (negative: separate classifier), seq_len}, then F32
// arrays: token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim),
// wk (L, kv_dim, dim), wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim),
// w1 (L, hidden, dim), w2 (L, dim, hidden), w3 (L, hidden, dim), rms_final (dim),
// freq_cis_real/imag (seq_len, head_size/2) [ignored], wcls (vocab, dim) if unshared.
// Version 1: magic "ak42", i32 version, the 7 header ints, u8 shared_classifier,
// padded to 256 bytes, then F32 rms_att, rms_ffn, rms_final, embedding, wq, wk,
// wv, wo, w1, w2, w3, [wcls]. Version 2 (int8) is refused with a clear error.
// See docs/formats/llama2c.md. Tensors are views into the mapped file, named as
// GGUF names them (token_embd.weight, blk.N.attn_q.weight, ...).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "slm/core/mapped_file.h"
#include "slm/core/status.h"
#include "slm/core/tensor.h"

namespace slm::io {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;
  int32_t version;
};

class Llama2cFile {
 public:
  static Result<std::unique_ptr<Llama2cFile>> open(const std::string& path);
  static Result<std::unique_ptr<Llama2cFile>> parse(const uint8_t* data, size_t size, const std::string& name);
  const Llama2cHeader& header() const { return header_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const std::string& path() const { return name_; }

 private:
  Llama2cFile() = default;
  Status parse_all();
  std::unique_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  Llama2cHeader header_{};
  std::vector<TensorView> tensors_;
};

}  // namespace slm::io
