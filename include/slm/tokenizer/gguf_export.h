// A loaded tokenizer as GGUF tokenizer.* keys, so a model converted or trained
// by slm carries its vocabulary inside the file (docs/formats/gguf-tokenizer.md).
//   - from a GGUF: its tokenizer.* keys, copied;
//   - SentencePiece-style BPE (tokenizer.model, llama2.c tokenizer .bin):
//     model "llama" with tokens, scores, token types and special ids;
//   - byte-level BPE from a tokenizer.json: model "gpt2" with tokens, token
//     types, the merges and the GGUF name of its pre-tokenizer.
// Other kinds, and pre-tokenizers GGUF has no name for, are refused by name.
// The keys are checked before they are added: the vocabulary read back from
// them must encode probe texts exactly as the tokenizer does.
#pragma once

#include <string>

#include "slm/core/status.h"
#include "slm/io/gguf.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::tokenizer {

// tok was loaded from source_path (its merges and pre-tokenizer are read from there).
Status add_tokenizer_to_gguf(const Tokenizer& tok, const std::string& source_path, io::GgufWriter* w);

}  // namespace slm::tokenizer
