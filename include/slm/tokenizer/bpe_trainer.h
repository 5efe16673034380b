// Byte-level BPE training: learns a GPT-2-style vocabulary and merge list from
// plain text, and writes it as a Hugging Face tokenizer.json that
// load_tokenizer_file (load.h) reads back.
//
// The algorithm (Sennrich et al. 2016, "Neural Machine Translation of Rare
// Words with Subword Units"; byte-level as in GPT-2; details as in Stanford
// CS336 assignment 1):
//   1. The text is cut at every special token (longest match first); special
//      tokens are never counted and no merge crosses one.
//   2. Each piece between special tokens is pre-tokenized with the split regex
//      (GPT-2's by default); the text between matches, if any, also counts as
//      pre-tokens (Hugging Face's Split "Isolated"). Pre-token counts are summed.
//   3. Starting from single bytes, the most frequent adjacent pair of tokens
//      (counted over all pre-tokens, weighted by frequency) is merged, until the
//      vocabulary has vocab_size tokens or no pair is left. Ties go to the
//      lexicographically greater pair of byte strings (compare the left tokens'
//      bytes, then the right ones'), as CS336's reference does.
//
// Id layout (the CS336 reference's): ids [0, n_special) are the special tokens
// in the order given; the next 256 ids are the single bytes in the order of
// their GPT-2 byte-to-unicode code points ('!' .. '~', then U+00A1 .. U+00FF,
// then the remapped bytes: 0x00 is U+0100), exactly the order of GPT-2's
// encoder.json; after them one id per merge, in merge order. A merge whose
// bytes equal an existing token reuses that token's id (as Hugging Face's
// trainer does), so vocab.size() - 256 - n_special <= merges.size().
//
// Input is read in chunks (BpeTrainOptions::chunk_bytes), so a corpus larger
// than memory trains; only the pre-token counts are held. A chunk ends just
// before a special token, or before a '\n' (else '\r', else ' ') that follows
// a printable ASCII character; for GPT-2-like split patterns (no lookbehind; no
// match runs from a non-space into a following space) this gives exactly the
// counts of the whole text. A text with no such point is read until one comes
// or it ends.
//
// Invalid UTF-8 is not an error: such bytes are trained on as bytes. The split
// regex needs valid UTF-8, so each maximal run of invalid bytes is one
// pre-token of its own. (Encoding invalid UTF-8 with the loaded Tokenizer is
// still rejected by Tokenizer::encode.)
//
// Thread safety: pure functions; train_bpe calls progress on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slm/core/status.h"

namespace slm::tokenizer {

struct BpeTrainOptions {
  // Target number of tokens, special tokens included; must be >= 256 + the
  // number of special tokens. Training stops early when no pair is left.
  int32_t vocab_size = 0;
  // Literal strings (valid UTF-8, non-empty, distinct), e.g. "<|endoftext|>".
  std::vector<std::string> special_tokens;
  // PCRE2 pattern (UTF + UCP); "" means GPT-2's pre-tokenizer regex.
  std::string split_pattern;
  // Bytes read per chunk of input.
  size_t chunk_bytes = size_t(1) << 20;
  // Called now and then with phase "read" (bytes read of total bytes, total -1
  // when unknown) and phase "merge" (merges done of the merges asked for), and
  // once at the end of each phase with done == total (for "read": the bytes read).
  std::function<void(std::string_view phase, int64_t done, int64_t total)> progress;
};

struct BpeModel {
  std::vector<std::string> vocab;                           // id -> token bytes (specials: their text)
  std::vector<std::pair<std::string, std::string>> merges;  // in order, as bytes
  std::vector<std::string> special_tokens;                  // ids 0 .. n-1
  std::string split_pattern;                                // "" = GPT-2's
};

// Trains on the concatenation of the files, read in chunks (each file also
// ends a chunk, so no pre-token spans two files).
Result<BpeModel> train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& opts);
// Trains on everything in `in`, read in chunks.
Result<BpeModel> train_bpe(std::istream& in, const BpeTrainOptions& opts);

// Writes model as a Hugging Face tokenizer.json (BPE model, byte-level
// pre-tokenizer and decoder, special tokens as added tokens), atomically.
// docs/formats/tokenizer-json.md ("What we write").
Status write_hf_tokenizer_json(const BpeModel& model, const std::string& path);
// The same text, for callers that store it elsewhere (e.g. inside a GGUF).
Result<std::string> hf_tokenizer_json(const BpeModel& model);

}  // namespace slm::tokenizer
