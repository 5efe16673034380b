// load_llama2c_tokenizer: Karpathy's llama2.c tokenizer.bin
// (docs/formats/llama2c-tokenizer.md).
#include <fmt/format.h>

#include <cstring>

#include "pipeline.h"
#include "slm/core/mapped_file.h"
#include "slm/tokenizer/load.h"

namespace slm::tokenizer {

namespace {
Status l2c_error(const std::string& msg) { return Status::Corruption("[llama2.c tokenizer] " + msg); }
}  // namespace

Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer_bytes(const std::string& data, int32_t vocab_size) {
  if (vocab_size < 0) return Status::InvalidArgument(fmt::format("[llama2.c tokenizer] vocab size {} is negative", vocab_size));
  const size_t n = data.size();
  if (n < 4) return l2c_error(fmt::format("file is {} bytes, too short for the max_token_length header", n));
  int32_t max_len;
  std::memcpy(&max_len, data.data(), 4);
  if (max_len <= 0 || max_len > (1 << 16)) return l2c_error(fmt::format("max_token_length = {}, expected 1..65536", max_len));
  auto t = std::make_unique<PipelineTokenizer>();
  size_t pos = 4;
  while (vocab_size == 0 ? pos < n : static_cast<int32_t>(t->tokens_.size()) < vocab_size) {
    size_t i = t->tokens_.size();
    if (n - pos < 8) {
      return l2c_error(fmt::format("token {} at offset {}: needs 8 header bytes, {} remain (expected {} tokens)", i, pos,
                                   n - pos, vocab_size));
    }
    float score;
    int32_t len;
    std::memcpy(&score, data.data() + pos, 4);
    std::memcpy(&len, data.data() + pos + 4, 4);
    pos += 8;
    if (len < 0 || len > max_len) {
      return l2c_error(fmt::format("token {} at offset {}: length {} outside 0..max_token_length {}", i, pos - 4, len, max_len));
    }
    if (n - pos < static_cast<size_t>(len)) {
      return l2c_error(fmt::format("token {} at offset {}: length {} runs past the end of the file", i, pos - 4, len));
    }
    if (!std::isfinite(score)) return l2c_error(fmt::format("token {}: score is not finite", i));
    t->tokens_.emplace_back(data.data() + pos, static_cast<size_t>(len));
    t->scores_.push_back(score);
    pos += len;
  }
  if (pos != n) {
    return l2c_error(fmt::format("{} bytes left after {} tokens: wrong vocab size (file has more tokens?)", n - pos,
                                 t->tokens_.size()));
  }
  if (t->tokens_.size() < 3) return l2c_error(fmt::format("only {} tokens; expected <unk>, <s>, </s> first", t->tokens_.size()));
  // llama2.c vocabularies are SentencePiece exports: 0 <unk>, 1 BOS, 2 EOS,
  // <0xAB> byte pieces, spaces stored as ' ' (not U+2581).
  t->attrs_.assign(t->tokens_.size(), TokenAttr::kNormal);
  t->attrs_[0] = TokenAttr::kUnknown;
  t->attrs_[1] = TokenAttr::kControl;
  t->attrs_[2] = TokenAttr::kControl;
  for (size_t i = 3; i < t->tokens_.size(); ++i) {
    const std::string& s = t->tokens_[i];
    if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>') t->attrs_[i] = TokenAttr::kByte;
  }
  t->unk_ = 0;
  t->bos_ = 1;
  t->eos_ = 2;
  t->add_bos_ = true;
  NormalizerStep ws{NormalizerStep::Kind::kSpmWhitespace};
  ws.add_dummy_prefix = true;
  ws.escape_whitespaces = false;
  ws.space_symbol = " ";
  t->normalizers_.push_back(std::move(ws));
  t->model_ = ModelKind::kBpeScore;
  t->byte_fallback_ = true;
  t->decode_style_ = DecodeStyle::kSpm;
  t->space_symbol_ = " ";
  t->strip_leading_space_ = true;
  t->unk_surface_ = " \xE2\x81\x87 ";
  t->kind_ = "spm";
  SLM_RETURN_IF_ERROR(t->finish());
  return std::unique_ptr<Tokenizer>(std::move(t));
}

Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  SLM_ASSIGN_OR_RETURN(std::string data, read_file(path));
  auto r = load_llama2c_tokenizer_bytes(data, vocab_size);
  if (!r.ok()) return r.status().with_context(path);
  return r;
}

}  // namespace slm::tokenizer
