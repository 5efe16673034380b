// Training data: text files turned into one stream of token ids.
//
// TrainTokenizer is what turns text into ids for training: raw bytes (vocab
// 256, nothing to train), a tokenizer.json (e.g. from `slm tokenizer train`),
// or the tokenizer inside a GGUF model. TokenData tokenizes the files in
// order, streaming (1 MiB pieces cut after a newline, so memory stays bounded
// for any corpus size), into a binary file of uint32 ids that it then maps.
// Rejects empty corpora and binary files (NUL bytes, invalid UTF-8) by name.
// Immutable after build: safe to read from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slm/core/mapped_file.h"
#include "slm/core/status.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::train {

class TrainTokenizer {
 public:
  // "byte", a tokenizer.json, or a .gguf model.
  static Result<TrainTokenizer> open(const std::string& spec);
  const std::string& spec() const { return spec_; }
  bool is_byte() const { return tok_ == nullptr; }
  int32_t n_vocab() const;
  // The loaded tokenizer (nullptr for bytes).
  const tokenizer::Tokenizer* tokenizer() const { return tok_.get(); }
  Status encode(std::string_view text, std::vector<int32_t>* out) const;
  std::string decode(const std::vector<int32_t>& ids) const;

 private:
  std::string spec_;
  std::shared_ptr<tokenizer::Tokenizer> tok_;
};

class TokenData {
 public:
  // Tokenizes files (in order, concatenated) into cache_path and maps it.
  static Result<TokenData> build(const std::vector<std::string>& files, const TrainTokenizer& tok,
                                 const std::string& cache_path);
  int64_t size() const { return n_; }
  const uint32_t* data() const { return ids_; }

 private:
  std::shared_ptr<MappedFile> file_;
  const uint32_t* ids_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace slm::train
