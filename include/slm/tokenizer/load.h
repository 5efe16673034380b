// Loaders: build a Tokenizer from the files slm reads. Every loader validates
// what it reads (types, lengths, ids in range) and returns a clear Status on a
// malformed file; none crashes. See docs/formats/ for each format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "slm/core/status.h"
#include "slm/io/gguf.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::tokenizer {

// From GGUF metadata: tokenizer.ggml.model = llama | gpt2 | bert.
Result<std::unique_ptr<Tokenizer>> load_from_gguf(const io::GgufFile& f);

// Dispatches by file name and content: *.gguf, tokenizer.json (Hugging Face),
// *.model (SentencePiece), encoder.json / vocab.bpe (GPT-2, both in one folder),
// *.tiktoken, llama2.c tokenizer *.bin (vocab size from llama2c_vocab_size, or
// counted from the file when 0).
Result<std::unique_ptr<Tokenizer>> load_tokenizer_file(const std::string& path, int32_t llama2c_vocab_size = 0);

// Per-format loaders (load_tokenizer_file calls these).
Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer_json(const std::string& json_text);
Result<std::unique_ptr<Tokenizer>> load_sentencepiece_model(const std::string& bytes);
Result<std::unique_ptr<Tokenizer>> load_gpt2_bpe(const std::string& encoder_json, const std::string& vocab_bpe);
// name: "cl100k_base", "o200k_base", "p50k_base", "r50k_base" (picks the split
// pattern and special tokens); empty -> guessed from the number of ranks.
Result<std::unique_ptr<Tokenizer>> load_tiktoken(const std::string& text, const std::string& name);
// vocab_size 0: count the records in the file.
Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer(const std::string& path, int32_t vocab_size);
Result<std::unique_ptr<Tokenizer>> load_llama2c_tokenizer_bytes(const std::string& bytes, int32_t vocab_size);

}  // namespace slm::tokenizer
