// PipelineTokenizer: the one Tokenizer implementation behind every loader.
// Text goes through  normalizers -> pre-tokenizer splits -> model  per fragment
// (the text between special tokens), as in Hugging Face tokenizers; the
// SentencePiece, GPT-2, tiktoken, llama2.c and GGUF loaders express their
// formats as such a pipeline.
//
// Models: BPE by merge rank (HF, GGUF gpt2), BPE by token rank (tiktoken),
// BPE by piece score (SentencePiece, llama2.c), unigram (Viterbi over piece
// scores), WordPiece (greedy longest match).
// Immutable after the loader finishes: encode is safe from many threads.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "regex.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::tokenizer {

struct NormalizerStep {
  enum class Kind { kPrepend, kReplace, kLowercase, kNfd, kNfc, kStripAccents, kStrip, kBert, kSpmWhitespace };
  explicit NormalizerStep(Kind k) : kind(k) {}
  Kind kind;
  std::string str;              // kPrepend: text; kReplace: content
  std::optional<Regex> regex;   // kReplace: pattern
  bool left = true, right = true;  // kStrip
  // kBert
  bool clean_text = true, chinese_chars = true, strip_accents = true, lowercase = true;
  // kSpmWhitespace (SentencePiece normalizer spec)
  bool remove_extra_whitespaces = false, add_dummy_prefix = true, escape_whitespaces = true;
  std::string space_symbol = "\xE2\x96\x81";
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct PreTokStep {
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  explicit PreTokStep(Kind k) : kind(k) {}
  Kind kind;
  std::optional<Regex> regex;  // kSplit; kByteLevel with use_regex
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;  // kByteLevel
  // kMetaspace
  std::string replacement = "\xE2\x96\x81";
  enum class Prepend { kAlways, kFirst, kNever } prepend = Prepend::kAlways;
  bool split = true;
};

enum class ModelKind { kBpeMerges, kBpeTokenRank, kBpeScore, kUnigram, kWordPiece };

class PipelineTokenizer : public Tokenizer {
 public:
  PipelineTokenizer() = default;

  // The loaders fill these, then call finish().
  using Tokenizer::add_bos_;
  using Tokenizer::add_eos_;
  using Tokenizer::attrs_;
  using Tokenizer::bos_;
  using Tokenizer::cls_;
  using Tokenizer::custom_post_;
  using Tokenizer::decode_style_;
  using Tokenizer::eog_;
  using Tokenizer::eos_;
  using Tokenizer::kind_;
  using Tokenizer::lstrip_ids_;
  using Tokenizer::mask_;
  using Tokenizer::match_user_defined_always_;
  using Tokenizer::pad_;
  using Tokenizer::prefix_ids_;
  using Tokenizer::rstrip_ids_;
  using Tokenizer::scores_;
  using Tokenizer::sep_;
  using Tokenizer::space_symbol_;
  using Tokenizer::strip_leading_space_;
  using Tokenizer::suffix_ids_;
  using Tokenizer::tokens_;
  using Tokenizer::unk_;
  using Tokenizer::unk_surface_;
  using Tokenizer::wp_cleanup_;
  using Tokenizer::wp_cont_prefix_;
  using Tokenizer::wp_word_prefix_;

  std::vector<NormalizerStep> normalizers_;
  std::vector<PreTokStep> pre_tokenizers_;
  ModelKind model_ = ModelKind::kBpeMerges;
  // BPE
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left id, right id) -> (rank, merged id)
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  // WordPiece
  int32_t wp_max_chars_ = 100;

  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  // Adds a merge; returns false if a piece or the merged piece is not in the vocabulary.
  bool add_merge(const std::string& a, const std::string& b, int32_t rank);

  // Validates ids, builds indexes. Call after filling the vocabulary.
  Status finish();

 protected:
  Status encode_fragment(const Fragment& frag, std::vector<int32_t>* out) const override;

 private:
  struct Piece {
    std::string text;
    size_t offset;  // in the normalized fragment; 0 = its first piece
  };
  std::string normalize(std::string_view text, const Fragment& frag) const;
  void pre_tokenize(std::string text, const Fragment& frag, std::vector<Piece>* pieces) const;
  void encode_bpe(const std::string& word, std::vector<int32_t>* out) const;
  void encode_unigram(const std::string& word, std::vector<int32_t>* out) const;
  void encode_wordpiece(const std::string& word, std::vector<int32_t>* out) const;
  void emit_unknown(std::string_view bytes, std::vector<int32_t>* out, bool* last_was_unk) const;

  size_t max_piece_len_ = 0;  // bytes, for unigram/wordpiece lookups
  float min_score_ = 0;
};

// The GPT-2 split pattern (also r50k/p50k).
extern const char* const kGpt2Pattern;

}  // namespace slm::tokenizer
