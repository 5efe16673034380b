// load_from_gguf: the tokenizer.ggml.* metadata keys (docs/formats/gguf-tokenizer.md).
#include <fmt/format.h>

#include "pipeline.h"
#include "pre_patterns.h"
#include "slm/tokenizer/load.h"

namespace slm::tokenizer {

namespace {

using io::GgufType;
using io::GgufValue;

Status gguf_error(const std::string& msg) { return Status::Corruption("[gguf tokenizer] " + msg); }

// Reads an optional token id; absent, -1 and 0xFFFFFFFF mean "none".
Status read_id(const io::GgufFile& f, const char* key, int32_t n_vocab, int32_t* id) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_integer()) {
    return gguf_error(fmt::format("{} has type {}, expected an integer", key, io::gguf_type_name(v->type)));
  }
  int64_t x = v->as_int();
  if (x == -1 || x == 0xFFFFFFFFLL) {
    *id = -1;
    return Status::Ok();
  }
  if (x < 0 || x >= n_vocab) return gguf_error(fmt::format("{} = {} is out of range [0, {})", key, x, n_vocab));
  *id = static_cast<int32_t>(x);
  return Status::Ok();
}

Status read_bool(const io::GgufFile& f, const char* key, bool* out) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return Status::Ok();
  if (v->type != GgufType::kBool && !v->is_integer()) {
    return gguf_error(fmt::format("{} has type {}, expected bool", key, io::gguf_type_name(v->type)));
  }
  *out = v->as_int() != 0;
  return Status::Ok();
}

const GgufValue* find_array(const io::GgufFile& f, const char* key, Status* st) {
  const GgufValue* v = f.find(key);
  if (v == nullptr) return nullptr;
  if (v->type != GgufType::kArray) {
    *st = gguf_error(fmt::format("{} has type {}, expected an array", key, io::gguf_type_name(v->type)));
    return nullptr;
  }
  return v;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_from_gguf(const io::GgufFile& f) {
  const GgufValue* model_v = f.find("tokenizer.ggml.model");
  if (model_v == nullptr) return Status::NotFound("[gguf tokenizer] no tokenizer.ggml.model key: the file has no vocabulary");
  if (model_v->type != GgufType::kString) {
    return gguf_error(fmt::format("tokenizer.ggml.model has type {}, expected string", io::gguf_type_name(model_v->type)));
  }
  const std::string model = model_v->s;
  if (model != "llama" && model != "gpt2" && model != "bert") {
    return Status::Unsupported("[gguf tokenizer] tokenizer.ggml.model '" + model +
                               "' is not supported (supported: llama, gpt2, bert)");
  }
  Status st;
  const GgufValue* toks = find_array(f, "tokenizer.ggml.tokens", &st);
  SLM_RETURN_IF_ERROR(st);
  if (toks == nullptr) return gguf_error("no tokenizer.ggml.tokens array");
  if (toks->elem_type != GgufType::kString) {
    return gguf_error(fmt::format("tokenizer.ggml.tokens holds {}, expected strings", io::gguf_type_name(toks->elem_type)));
  }
  size_t n = toks->arr.size();
  if (n == 0) return gguf_error("tokenizer.ggml.tokens is empty");
  if (n > (1u << 30)) return gguf_error(fmt::format("tokenizer.ggml.tokens has {} entries, too many", n));
  const int32_t n_vocab = static_cast<int32_t>(n);

  auto t = std::make_unique<PipelineTokenizer>();
  t->tokens_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (toks->arr[i].type != GgufType::kString) return gguf_error(fmt::format("tokenizer.ggml.tokens[{}] is not a string", i));
    t->tokens_[i] = toks->arr[i].s;
  }
  t->scores_.assign(n, 0.0f);
  if (const GgufValue* sc = find_array(f, "tokenizer.ggml.scores", &st)) {
    if (sc->arr.size() != n) {
      return gguf_error(fmt::format("tokenizer.ggml.scores has {} entries, tokens has {}", sc->arr.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      if (!sc->arr[i].is_number()) return gguf_error(fmt::format("tokenizer.ggml.scores[{}] is not a number", i));
      t->scores_[i] = static_cast<float>(sc->arr[i].as_float());
    }
  }
  SLM_RETURN_IF_ERROR(st);
  t->attrs_.assign(n, TokenAttr::kNormal);
  if (const GgufValue* ty = find_array(f, "tokenizer.ggml.token_type", &st)) {
    if (ty->arr.size() != n) {
      return gguf_error(fmt::format("tokenizer.ggml.token_type has {} entries, tokens has {}", ty->arr.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      if (!ty->arr[i].is_integer()) return gguf_error(fmt::format("tokenizer.ggml.token_type[{}] is not an integer", i));
      int64_t v = ty->arr[i].as_int();
      if (v < 0 || v > 6) return gguf_error(fmt::format("tokenizer.ggml.token_type[{}] = {}, expected 0..6", i, v));
      t->attrs_[i] = v == 0 ? TokenAttr::kNormal : static_cast<TokenAttr>(v);
    }
  }
  SLM_RETURN_IF_ERROR(st);

  if (model == "llama") {
    // llama.cpp's defaults for SentencePiece vocabularies.
    t->unk_ = 0;
    t->bos_ = n_vocab > 1 ? 1 : -1;
    t->eos_ = n_vocab > 2 ? 2 : -1;
    t->add_bos_ = true;
  }
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.bos_token_id", n_vocab, &t->bos_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.eos_token_id", n_vocab, &t->eos_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.unknown_token_id", n_vocab, &t->unk_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.seperator_token_id", n_vocab, &t->sep_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.padding_token_id", n_vocab, &t->pad_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.cls_token_id", n_vocab, &t->cls_));
  SLM_RETURN_IF_ERROR(read_id(f, "tokenizer.ggml.mask_token_id", n_vocab, &t->mask_));
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int32_t id = -1;
    SLM_RETURN_IF_ERROR(read_id(f, key, n_vocab, &id));
    if (id >= 0) t->eog_.insert(id);
  }
  SLM_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos_));
  SLM_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_eos_token", &t->add_eos_));

  if (model == "llama") {
    bool add_space_prefix = true, remove_extra = false;
    SLM_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.add_space_prefix", &add_space_prefix));
    SLM_RETURN_IF_ERROR(read_bool(f, "tokenizer.ggml.remove_extra_whitespaces", &remove_extra));
    NormalizerStep ws{NormalizerStep::Kind::kSpmWhitespace};
    ws.remove_extra_whitespaces = remove_extra;
    ws.add_dummy_prefix = add_space_prefix;
    t->normalizers_.push_back(std::move(ws));
    t->model_ = ModelKind::kBpeScore;
    t->byte_fallback_ = true;
    t->decode_style_ = DecodeStyle::kSpm;
    t->strip_leading_space_ = add_space_prefix;
    t->unk_surface_ = " \xE2\x81\x87 ";
    t->kind_ = "spm";
    if (t->unk_ >= 0 && t->attrs_[t->unk_] == TokenAttr::kNormal) t->attrs_[t->unk_] = TokenAttr::kUnknown;
  } else if (model == "gpt2") {
    const GgufValue* pre_v = f.find("tokenizer.ggml.pre");
    std::string pre;
    if (pre_v != nullptr) {
      if (pre_v->type != GgufType::kString) return gguf_error("tokenizer.ggml.pre is not a string");
      pre = pre_v->s;
    }
    SLM_ASSIGN_OR_RETURN(std::vector<std::string> patterns, pre_tokenizer_patterns(pre));
    for (const std::string& p : patterns) {
      SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(p));
      PreTokStep s{PreTokStep::Kind::kSplit};
      s.regex = std::move(re);
      t->pre_tokenizers_.push_back(std::move(s));
    }
    t->pre_tokenizers_.push_back(PreTokStep{PreTokStep::Kind::kByteLevel});
    t->model_ = ModelKind::kBpeMerges;
    t->ignore_merges_ = pre_tokenizer_ignores_merges(pre);
    t->decode_style_ = DecodeStyle::kByteLevel;
    t->strip_leading_space_ = false;
    t->kind_ = "bpe";
  } else {  // bert
    NormalizerStep bert{NormalizerStep::Kind::kBert};
    t->normalizers_.push_back(std::move(bert));
    for (auto [pat, beh] : {std::pair<const char*, SplitBehavior>{"\\s+", SplitBehavior::kRemoved},
                            {"[\\p{P}!-/:-@\\[-`{-~]", SplitBehavior::kIsolated}}) {
      SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(pat));
      PreTokStep s{PreTokStep::Kind::kSplit};
      s.regex = std::move(re);
      s.behavior = beh;
      t->pre_tokenizers_.push_back(std::move(s));
    }
    t->model_ = ModelKind::kWordPiece;
    t->decode_style_ = DecodeStyle::kWordPiece;
    bool hash_style = false;
    for (const std::string& tok : t->tokens_) {
      if (tok.size() > 2 && tok.compare(0, 2, "##") == 0) {
        hash_style = true;
        break;
      }
    }
    // llama.cpp's converter stores word starts with a U+2581 prefix and drops "##".
    t->wp_word_prefix_ = hash_style ? "" : "\xE2\x96\x81";
    t->wp_cont_prefix_ = hash_style ? "##" : "";
    t->kind_ = "wordpiece";
    if (t->cls_ < 0 && t->bos_ >= 0) t->cls_ = t->bos_;
    if (t->sep_ < 0 && t->eos_ >= 0) t->sep_ = t->eos_;
    t->custom_post_ = true;
    if (t->cls_ >= 0) t->prefix_ids_ = {t->cls_};
    if (t->sep_ >= 0) t->suffix_ids_ = {t->sep_};
  }
  SLM_RETURN_IF_ERROR(t->finish());
  if (model == "gpt2") {
    const GgufValue* merges = find_array(f, "tokenizer.ggml.merges", &st);
    SLM_RETURN_IF_ERROR(st);
    if (merges == nullptr) return gguf_error("tokenizer.ggml.model is gpt2 but there is no tokenizer.ggml.merges array");
    for (size_t i = 0; i < merges->arr.size(); ++i) {
      const GgufValue& m = merges->arr[i];
      if (m.type != GgufType::kString) return gguf_error(fmt::format("tokenizer.ggml.merges[{}] is not a string", i));
      size_t sp = m.s.find(' ', 1);
      if (sp == std::string::npos) {
        return gguf_error(fmt::format("tokenizer.ggml.merges[{}] = '{}' is not two pieces separated by a space", i, m.s));
      }
      // Merges naming pieces the vocabulary lacks can never apply: skipped, as llama.cpp does.
      t->add_merge(m.s.substr(0, sp), m.s.substr(sp + 1), static_cast<int32_t>(i));
    }
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm::tokenizer
