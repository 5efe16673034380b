// Pre-tokenizer split patterns by name: GGUF tokenizer.ggml.pre values (as
// llama.cpp's converter writes them) and tiktoken encodings. Each name maps to
// one or more PCRE2 patterns applied in order (each splits the pieces of the
// previous one, keeping the text between matches as pieces).
#pragma once

#include <string>
#include <vector>

#include "slm/core/status.h"

namespace slm::tokenizer {

// Unknown name -> Unsupported naming it. "" and "default" give llama.cpp's default.
Result<std::vector<std::string>> pre_tokenizer_patterns(const std::string& name);
// Whether the vocabulary family ignores merges when a whole piece is a token (llama3).
bool pre_tokenizer_ignores_merges(const std::string& name);

extern const char* const kLlama3Pattern;  // also cl100k_base
extern const char* const kO200kPattern;

}  // namespace slm::tokenizer
