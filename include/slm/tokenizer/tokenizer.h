// Tokenizer: text <-> token ids for every vocabulary kind slm reads
// (SentencePiece BPE and unigram, byte-level BPE, tiktoken, WordPiece).
//
// A Tokenizer is built by a loader (load.h) and is immutable afterwards:
// encode, decode and token_to_bytes are safe to call from many threads.
//
// Invariants: every id in [0, n_vocab()) has a text (possibly empty for holes
// in a sparse vocabulary) and an attribute; bos()/eos()/unk() are -1 or a valid
// id. encode() never returns an id outside [0, n_vocab()).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "slm/core/status.h"

namespace slm::tokenizer {

// What a token is, with the numbering GGUF and SentencePiece use.
enum class TokenAttr : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // <s>, </s>, <|endoftext|>: never produced from plain text
  kUserDefined = 4,  // added tokens matched literally in the text
  kUnused = 5,
  kByte = 6,         // <0xAB> byte-fallback pieces
};

// How token pieces turn back into bytes.
enum class DecodeStyle : uint8_t {
  kSpm,        // U+2581 (or the space symbol) -> ' ', <0xAB> -> byte
  kByteLevel,  // GPT-2 byte-to-unicode map reversed
  kWordPiece,  // "##" continuations glued, other pieces joined with ' '
};

class Tokenizer {
 public:
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // UTF-8 text -> ids. add_special adds BOS/EOS (or CLS/SEP) as the vocabulary's
  // metadata says. Special tokens written in the text are matched only when
  // parse_special is true (user-defined added tokens always are). Invalid UTF-8
  // -> InvalidArgument naming the byte offset.
  virtual Result<std::vector<int32_t>> encode(std::string_view text, bool add_special,
                                              bool parse_special = false) const;

  // The raw bytes the token stands for in output, as a token in the middle of a
  // text (control tokens -> "" unless render_special). May be part of a UTF-8
  // sequence (byte tokens).
  virtual std::string token_to_bytes(int32_t id, bool render_special = false) const;
  // The same for the first token of a text: drops the one leading space the SPM
  // dummy prefix (or a WordPiece joiner) put there.
  std::string token_to_bytes_at_start(int32_t id, bool render_special = false) const;

  // Decodes ids to UTF-8 text (invalid sequences become U+FFFD). Strips the one
  // leading space the dummy prefix added when the first token starts the text.
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  int32_t n_vocab() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos() const { return bos_; }
  int32_t eos() const { return eos_; }
  int32_t unk() const { return unk_; }
  int32_t pad() const { return pad_; }
  int32_t sep() const { return sep_; }
  int32_t cls() const { return cls_; }
  int32_t mask() const { return mask_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // eos, eot, <|im_end|>, <|eot_id|> ... from the metadata.
  bool is_end_of_generation(int32_t id) const { return eog_.count(id) != 0; }
  const std::unordered_set<int32_t>& end_of_generation_ids() const { return eog_; }

  // The vocabulary string as stored (empty string for ids out of range).
  const std::string& token_text(int32_t id) const;
  TokenAttr token_attr(int32_t id) const;
  float token_score(int32_t id) const;
  // Id of a vocabulary string, or -1.
  int32_t token_to_id(std::string_view text) const;
  bool is_valid(int32_t id) const { return id >= 0 && id < n_vocab(); }
  // True for control and unknown tokens (what decode drops by default).
  bool is_control(int32_t id) const;

  // "spm", "unigram", "bpe", "tiktoken", "wordpiece".
  std::string kind() const { return kind_; }
  DecodeStyle decode_style() const { return decode_style_; }

 protected:
  Tokenizer() = default;

  // Where a piece of text between special tokens sits.
  struct Fragment {
    std::string_view text;
    bool at_text_start;   // starts at byte 0 of the input
    bool after_special;   // follows a special token matched in the text
  };
  // Encodes one fragment of plain text (no special tokens inside).
  virtual Status encode_fragment(const Fragment& frag, std::vector<int32_t>* out) const = 0;
  // Bytes of a token; at_start: first token of the output.
  virtual std::string piece(int32_t id, bool at_start, bool render_special) const;

  // Builds the string->id index, the special-token matcher and the byte-token
  // table from tokens_/attrs_; loaders call it once at the end.
  Status finish_vocab();

  // Vocabulary: one entry per id.
  std::vector<std::string> tokens_;
  std::vector<TokenAttr> attrs_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> index_;
  int32_t byte_tokens_[256];  // id of <0xAB> per byte, -1 if absent

  int32_t bos_ = -1, eos_ = -1, unk_ = -1, pad_ = -1, sep_ = -1, cls_ = -1, mask_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // post-processor; default {bos}/{eos} from add_bos_/add_eos_
  bool custom_post_ = false;                     // prefix_ids_/suffix_ids_ set by the loader
  std::unordered_set<int32_t> eog_;
  std::string kind_;

  // Decoding.
  DecodeStyle decode_style_ = DecodeStyle::kSpm;
  std::string space_symbol_ = "\xE2\x96\x81";  // U+2581
  bool strip_leading_space_ = true;             // at text start (dummy prefix)
  std::string unk_surface_;                     // what an unknown token decodes to
  std::string wp_cont_prefix_ = "##";           // WordPiece continuation marker
  std::string wp_word_prefix_;                  // or a word-start marker (GGUF: U+2581)
  bool wp_cleanup_ = true;

  // Special tokens matched in the text: ids of control/user-defined tokens.
  std::vector<int32_t> special_matchable_;  // sorted by length, longest first
  std::vector<std::vector<int32_t>> special_by_byte_;  // special_matchable_ bucketed by first byte
  std::unordered_set<int32_t> lstrip_ids_, rstrip_ids_;
  // parse_special=false still matches these (user-defined added tokens).
  bool match_user_defined_always_ = true;

};

// Streaming detokenizer: feed ids one at a time, get back only complete UTF-8.
// Holds partial multi-byte sequences across tokens; flush() returns what is
// left, invalid bytes replaced with U+FFFD. Not thread-safe (one per stream).
class StreamDecoder {
 public:
  StreamDecoder(const Tokenizer& tok, bool at_text_start, bool render_special = false);
  std::string feed(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  bool at_start_;
  bool render_special_;
  std::string pending_;
};

}  // namespace slm::tokenizer
