// load_hf_tokenizer_json: Hugging Face tokenizers' tokenizer.json
// (docs/formats/tokenizer-json.md).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "pipeline.h"
#include "slm/tokenizer/load.h"
#include "utf8.h"

namespace slm::tokenizer {

namespace {

using json = nlohmann::json;

Status json_error(const std::string& msg) { return Status::Corruption("[tokenizer.json] " + msg); }

std::string escape_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

bool get_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->is_boolean() ? it->get<bool>() : def;
}

std::string get_str(const json& j, const char* key, const std::string& def) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return def;
  return it->get<std::string>();
}

// {"String": "..."} or {"Regex": "..."} -> a compiled pattern.
Result<Regex> parse_pattern(const json& p, const char* where) {
  if (!p.is_object()) return json_error(std::string(where) + ".pattern is not an object");
  if (p.contains("String") && p["String"].is_string()) return Regex::compile(escape_regex(p["String"].get<std::string>()));
  if (p.contains("Regex") && p["Regex"].is_string()) return Regex::compile(p["Regex"].get<std::string>());
  return json_error(std::string(where) + ".pattern needs a String or Regex member");
}

Result<SplitBehavior> parse_behavior(const json& j) {
  std::string b = get_str(j, "behavior", "Isolated");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return json_error("unknown split behavior '" + b + "'");
}

Status add_normalizer(const json& j, PipelineTokenizer* t) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return json_error("normalizer without a type");
  std::string type = j["type"];
  using K = NormalizerStep::Kind;
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) return json_error("Sequence normalizer without normalizers");
    for (const json& n : j["normalizers"]) SLM_RETURN_IF_ERROR(add_normalizer(n, t));
    return Status::Ok();
  }
  NormalizerStep s{K::kPrepend};
  if (type == "Prepend") {
    s.str = get_str(j, "prepend", "");
  } else if (type == "Replace") {
    s.kind = K::kReplace;
    if (!j.contains("pattern")) return json_error("Replace normalizer without pattern");
    SLM_ASSIGN_OR_RETURN(Regex re, parse_pattern(j["pattern"], "Replace"));
    s.regex = std::move(re);
    s.str = get_str(j, "content", "");
  } else if (type == "Lowercase") {
    s.kind = K::kLowercase;
  } else if (type == "NFD") {
    s.kind = K::kNfd;
  } else if (type == "NFC") {
    s.kind = K::kNfc;
  } else if (type == "StripAccents") {
    s.kind = K::kStripAccents;
  } else if (type == "Strip") {
    s.kind = K::kStrip;
    s.left = get_bool(j, "strip_left", true);
    s.right = get_bool(j, "strip_right", true);
  } else if (type == "BertNormalizer") {
    s.kind = K::kBert;
    s.clean_text = get_bool(j, "clean_text", true);
    s.chinese_chars = get_bool(j, "handle_chinese_chars", true);
    s.lowercase = get_bool(j, "lowercase", true);
    s.strip_accents = get_bool(j, "strip_accents", s.lowercase);  // null: follows lowercase
  } else {
    return Status::Unsupported("[tokenizer.json] normalizer '" + type + "' is not supported");
  }
  t->normalizers_.push_back(std::move(s));
  return Status::Ok();
}

Status add_split(PipelineTokenizer* t, const std::string& pattern, SplitBehavior beh, bool invert) {
  SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(pattern));
  PreTokStep s{PreTokStep::Kind::kSplit};
  s.regex = std::move(re);
  s.behavior = beh;
  s.invert = invert;
  t->pre_tokenizers_.push_back(std::move(s));
  return Status::Ok();
}

constexpr const char* kPunct = "[\\p{P}!-/:-@\\[-`{-~]";

Status add_pre_tokenizer(const json& j, PipelineTokenizer* t, bool* byte_level) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return json_error("pre_tokenizer without a type");
  std::string type = j["type"];
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return json_error("Sequence pre_tokenizer without pretokenizers");
    }
    for (const json& p : j["pretokenizers"]) SLM_RETURN_IF_ERROR(add_pre_tokenizer(p, t, byte_level));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    PreTokStep s{PreTokStep::Kind::kByteLevel};
    s.add_prefix_space = get_bool(j, "add_prefix_space", false);
    if (get_bool(j, "use_regex", true)) {
      SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(kGpt2Pattern));
      s.regex = std::move(re);
    }
    t->pre_tokenizers_.push_back(std::move(s));
    *byte_level = true;
    return Status::Ok();
  }
  if (type == "Metaspace") {
    PreTokStep s{PreTokStep::Kind::kMetaspace};
    s.replacement = get_str(j, "replacement", "\xE2\x96\x81");
    std::string scheme = get_str(j, "prepend_scheme", get_bool(j, "add_prefix_space", true) ? "always" : "never");
    if (scheme == "always") {
      s.prepend = PreTokStep::Prepend::kAlways;
    } else if (scheme == "first") {
      s.prepend = PreTokStep::Prepend::kFirst;
    } else if (scheme == "never") {
      s.prepend = PreTokStep::Prepend::kNever;
    } else {
      return json_error("unknown Metaspace prepend_scheme '" + scheme + "'");
    }
    s.split = get_bool(j, "split", true);
    t->pre_tokenizers_.push_back(std::move(s));
    return Status::Ok();
  }
  if (type == "Split") {
    if (!j.contains("pattern")) return json_error("Split pre_tokenizer without pattern");
    SLM_ASSIGN_OR_RETURN(Regex re, parse_pattern(j["pattern"], "Split"));
    SLM_ASSIGN_OR_RETURN(SplitBehavior beh, parse_behavior(j));
    PreTokStep s{PreTokStep::Kind::kSplit};
    s.regex = std::move(re);
    s.behavior = beh;
    s.invert = get_bool(j, "invert", false);
    t->pre_tokenizers_.push_back(std::move(s));
    return Status::Ok();
  }
  if (type == "Digits") {
    return add_split(t, get_bool(j, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", SplitBehavior::kIsolated, false);
  }
  if (type == "Punctuation") {
    SLM_ASSIGN_OR_RETURN(SplitBehavior beh, parse_behavior(j));
    if (beh == SplitBehavior::kContiguous) return add_split(t, std::string(kPunct) + "+", SplitBehavior::kIsolated, false);
    return add_split(t, kPunct, beh, false);
  }
  if (type == "Whitespace") return add_split(t, "\\w+|[^\\w\\s]+", SplitBehavior::kRemoved, true);
  if (type == "WhitespaceSplit") return add_split(t, "\\s+", SplitBehavior::kRemoved, false);
  if (type == "BertPreTokenizer") {
    SLM_RETURN_IF_ERROR(add_split(t, "\\s+", SplitBehavior::kRemoved, false));
    return add_split(t, kPunct, SplitBehavior::kIsolated, false);
  }
  return Status::Unsupported("[tokenizer.json] pre_tokenizer '" + type + "' is not supported");
}

Result<int32_t> special_id(const json& special_tokens, const std::string& name, const PipelineTokenizer& t) {
  if (special_tokens.is_object() && special_tokens.contains(name)) {
    const json& e = special_tokens[name];
    if (e.contains("ids") && e["ids"].is_array() && e["ids"].size() == 1 && e["ids"][0].is_number_integer()) {
      return e["ids"][0].get<int32_t>();
    }
  }
  int32_t id = t.token_to_id(name);
  if (id < 0) return json_error("post_processor names special token '" + name + "' that is not in the vocabulary");
  return id;
}

Status add_post_processor(const json& j, PipelineTokenizer* t) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return json_error("post_processor without a type");
  std::string type = j["type"];
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) return json_error("Sequence post_processor without processors");
    for (const json& p : j["processors"]) SLM_RETURN_IF_ERROR(add_post_processor(p, t));
    return Status::Ok();
  }
  if (type == "ByteLevel") return Status::Ok();
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer()) {
        return json_error(type + "." + key + " must be [token, id]");
      }
    }
    t->prefix_ids_ = {j["cls"][1].get<int32_t>()};
    t->suffix_ids_ = {j["sep"][1].get<int32_t>()};
    return Status::Ok();
  }
  if (type == "TemplateProcessing") {
    if (!j.contains("single") || !j["single"].is_array()) return json_error("TemplateProcessing without single template");
    const json special = j.contains("special_tokens") ? j["special_tokens"] : json();
    std::vector<int32_t> pre, post;
    bool seen_seq = false;
    for (const json& item : j["single"]) {
      if (item.contains("Sequence")) {
        seen_seq = true;
      } else if (item.contains("SpecialToken") && item["SpecialToken"].contains("id") &&
                 item["SpecialToken"]["id"].is_string()) {
        SLM_ASSIGN_OR_RETURN(int32_t id, special_id(special, item["SpecialToken"]["id"].get<std::string>(), *t));
        (seen_seq ? post : pre).push_back(id);
      } else {
        return json_error("TemplateProcessing item is neither Sequence nor SpecialToken");
      }
    }
    t->prefix_ids_ = pre;
    t->suffix_ids_ = post;
    return Status::Ok();
  }
  return Status::Unsupported("[tokenizer.json] post_processor '" + type + "' is not supported");
}

// Sets the decode style from the decoder chain.
Status apply_decoder(const json& j, PipelineTokenizer* t) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return json_error("decoder without a type");
  std::string type = j["type"];
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) return json_error("Sequence decoder without decoders");
    for (const json& d : j["decoders"]) SLM_RETURN_IF_ERROR(apply_decoder(d, t));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    t->decode_style_ = DecodeStyle::kByteLevel;
  } else if (type == "Metaspace") {
    t->decode_style_ = DecodeStyle::kSpm;
    t->space_symbol_ = get_str(j, "replacement", "\xE2\x96\x81");
    std::string scheme = get_str(j, "prepend_scheme", get_bool(j, "add_prefix_space", true) ? "always" : "never");
    t->strip_leading_space_ = scheme != "never";
  } else if (type == "Replace") {
    if (!j.contains("pattern") || !j["pattern"].is_object() || !j["pattern"].contains("String")) {
      return Status::Unsupported("[tokenizer.json] Replace decoder with a regex pattern is not supported");
    }
    std::string from = j["pattern"]["String"].is_string() ? j["pattern"]["String"].get<std::string>() : "";
    std::string to = get_str(j, "content", "");
    if (to != " ") return Status::Unsupported("[tokenizer.json] Replace decoder to '" + to + "' is not supported");
    t->decode_style_ = DecodeStyle::kSpm;
    t->space_symbol_ = from;
  } else if (type == "Strip") {
    std::string content = get_str(j, "content", " ");
    int start = j.contains("start") && j["start"].is_number_integer() ? j["start"].get<int>() : 0;
    if (content == " " && start >= 1) t->strip_leading_space_ = true;
  } else if (type == "WordPiece") {
    t->decode_style_ = DecodeStyle::kWordPiece;
    t->wp_cont_prefix_ = get_str(j, "prefix", "##");
    t->wp_cleanup_ = get_bool(j, "cleanup", true);
    t->strip_leading_space_ = true;
  } else if (type == "ByteFallback" || type == "Fuse") {
    // Byte tokens always decode to their byte; pieces are always concatenated.
  } else {
    return Status::Unsupported("[tokenizer.json] decoder '" + type + "' is not supported");
  }
  return Status::Ok();
}

Result<std::unique_ptr<Tokenizer>> load_hf_impl(const json& root) {
  if (!root.is_object()) return json_error("top level is not an object");
  if (!root.contains("model") || !root["model"].is_object()) return json_error("no model object");
  const json& m = root["model"];
  std::string type = get_str(m, "type", "");
  if (type.empty()) {
    if (m.contains("merges")) {
      type = "BPE";
    } else if (m.contains("vocab") && m["vocab"].is_array()) {
      type = "Unigram";
    } else {
      type = "WordPiece";
    }
  }
  auto t = std::make_unique<PipelineTokenizer>();
  if (!m.contains("vocab")) return json_error("model has no vocab");
  const json& vocab = m["vocab"];
  auto set_token = [&](int64_t id, const std::string& text) -> Status {
    if (id < 0 || id >= (1 << 30)) return json_error(fmt::format("token id {} for '{}' out of range", id, text));
    if (static_cast<size_t>(id) >= t->tokens_.size()) {
      t->tokens_.resize(id + 1);
      t->attrs_.resize(id + 1, TokenAttr::kUnused);
      t->scores_.resize(id + 1, 0.0f);
    }
    t->tokens_[id] = text;
    t->attrs_[id] = TokenAttr::kNormal;
    return Status::Ok();
  };
  if (type == "BPE" || type == "WordPiece") {
    if (!vocab.is_object()) return json_error("model.vocab must be an object of token -> id for " + type);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      if (!it.value().is_number_integer()) return json_error("model.vocab['" + it.key() + "'] is not an integer id");
      SLM_RETURN_IF_ERROR(set_token(it.value().get<int64_t>(), it.key()));
    }
  } else if (type == "Unigram") {
    if (!vocab.is_array()) return json_error("model.vocab must be an array of [piece, score] for Unigram");
    for (size_t i = 0; i < vocab.size(); ++i) {
      const json& e = vocab[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number()) {
        return json_error(fmt::format("model.vocab[{}] is not [piece, score]", i));
      }
      SLM_RETURN_IF_ERROR(set_token(static_cast<int64_t>(i), e[0].get<std::string>()));
      t->scores_[i] = e[1].get<float>();
    }
  } else {
    return Status::Unsupported("[tokenizer.json] model type '" + type + "' is not supported");
  }
  if (root.contains("added_tokens") && !root["added_tokens"].is_null()) {
    const json& added = root["added_tokens"];
    if (!added.is_array()) return json_error("added_tokens is not an array");
    for (size_t i = 0; i < added.size(); ++i) {
      const json& a = added[i];
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string()) {
        return json_error(fmt::format("added_tokens[{}] needs an integer id and a string content", i));
      }
      int64_t id = a["id"].get<int64_t>();
      SLM_RETURN_IF_ERROR(set_token(id, a["content"].get<std::string>()));
      t->attrs_[id] = get_bool(a, "special", false) ? TokenAttr::kControl : TokenAttr::kUserDefined;
      if (get_bool(a, "lstrip", false)) t->lstrip_ids_.insert(static_cast<int32_t>(id));
      if (get_bool(a, "rstrip", false)) t->rstrip_ids_.insert(static_cast<int32_t>(id));
    }
  }
  if (t->tokens_.empty()) return json_error("empty vocabulary");
  for (size_t i = 0; i < t->tokens_.size(); ++i) {
    if (auto bad = utf8_first_invalid(t->tokens_[i])) return json_error(fmt::format("token {} is not valid UTF-8", i));
  }

  bool byte_level = false;
  if (root.contains("normalizer")) SLM_RETURN_IF_ERROR(add_normalizer(root["normalizer"], t.get()));
  if (root.contains("pre_tokenizer")) SLM_RETURN_IF_ERROR(add_pre_tokenizer(root["pre_tokenizer"], t.get(), &byte_level));

  // Model options.
  std::string unk_token;
  if (type == "BPE") {
    t->model_ = ModelKind::kBpeMerges;
    t->byte_fallback_ = get_bool(m, "byte_fallback", false);
    t->fuse_unk_ = get_bool(m, "fuse_unk", false);
    t->ignore_merges_ = get_bool(m, "ignore_merges", false);
    unk_token = get_str(m, "unk_token", "");
    if (!get_str(m, "continuing_subword_prefix", "").empty() || !get_str(m, "end_of_word_suffix", "").empty()) {
      return Status::Unsupported("[tokenizer.json] BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    }
    t->kind_ = "bpe";
  } else if (type == "Unigram") {
    t->model_ = ModelKind::kUnigram;
    t->byte_fallback_ = get_bool(m, "byte_fallback", false);
    t->fuse_unk_ = true;
    if (m.contains("unk_id") && m["unk_id"].is_number_integer()) {
      int64_t u = m["unk_id"].get<int64_t>();
      if (u < 0 || u >= static_cast<int64_t>(t->tokens_.size())) return json_error(fmt::format("unk_id {} out of range", u));
      t->unk_ = static_cast<int32_t>(u);
    }
    t->kind_ = "unigram";
  } else {
    t->model_ = ModelKind::kWordPiece;
    unk_token = get_str(m, "unk_token", "[UNK]");
    t->wp_cont_prefix_ = get_str(m, "continuing_subword_prefix", "##");
    if (m.contains("max_input_chars_per_word") && m["max_input_chars_per_word"].is_number_integer()) {
      t->wp_max_chars_ = m["max_input_chars_per_word"].get<int32_t>();
    }
    t->kind_ = "wordpiece";
  }
  if (t->byte_fallback_) {
    // <0xAB> pieces stand for their byte (HF's ByteFallback decoder).
    for (size_t i = 0; i < t->tokens_.size(); ++i) {
      const std::string& s = t->tokens_[i];
      if (t->attrs_[i] == TokenAttr::kNormal && s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>') {
        t->attrs_[i] = TokenAttr::kByte;
      }
    }
  }
  SLM_RETURN_IF_ERROR(t->finish());  // builds the index used below
  if (!unk_token.empty()) {
    t->unk_ = t->token_to_id(unk_token);
    if (t->unk_ < 0) return json_error("unk_token '" + unk_token + "' is not in the vocabulary");
  }
  // Default decoding by model; the decoder section refines it.
  if (t->model_ == ModelKind::kWordPiece) {
    t->decode_style_ = DecodeStyle::kWordPiece;
    t->strip_leading_space_ = true;
  } else if (byte_level) {
    t->decode_style_ = DecodeStyle::kByteLevel;
    t->strip_leading_space_ = false;
  } else {
    t->decode_style_ = DecodeStyle::kSpm;
    t->space_symbol_ = "\xE2\x96\x81";
    t->strip_leading_space_ = false;
  }
  if (root.contains("decoder")) SLM_RETURN_IF_ERROR(apply_decoder(root["decoder"], t.get()));
  t->custom_post_ = true;
  if (root.contains("post_processor")) SLM_RETURN_IF_ERROR(add_post_processor(root["post_processor"], t.get()));
  // BOS/EOS by the names models use (tokenizer.json does not say which is which).
  for (const char* name : {"<s>", "<|begin_of_text|>", "<bos>", "[CLS]", "<|startoftext|>"}) {
    int32_t id = t->token_to_id(name);
    if (id >= 0 && t->bos_ < 0) t->bos_ = id;
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "[SEP]", "<|im_end|>"}) {
    int32_t id = t->token_to_id(name);
    if (id >= 0 && t->eos_ < 0) t->eos_ = id;
  }
  for (const char* name : {"<pad>", "[PAD]", "<|padding|>"}) {
    int32_t id = t->token_to_id(name);
    if (id >= 0 && t->pad_ < 0) t->pad_ = id;
  }
  t->cls_ = t->token_to_id("[CLS]");
  t->sep_ = t->token_to_id("[SEP]");
  t->mask_ = t->token_to_id("[MASK]");
  if (!t->prefix_ids_.empty() && t->prefix_ids_[0] == t->bos_) t->add_bos_ = true;
  if (!t->suffix_ids_.empty() && t->suffix_ids_.back() == t->eos_) t->add_eos_ = true;
  SLM_RETURN_IF_ERROR(t->finish());  // re-validates the special ids and post-processor ids

  if (type == "BPE") {
    if (!m.contains("merges") || !m["merges"].is_array()) return json_error("BPE model has no merges array");
    const json& merges = m["merges"];
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& e = merges[i];
      std::string a, b;
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        size_t sp = s.find(' ', 1);
        if (sp == std::string::npos) return json_error(fmt::format("merges[{}] = '{}' has no space", i, s));
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        return json_error(fmt::format("merges[{}] is neither \"a b\" nor [a, b]", i));
      }
      if (!t->add_merge(a, b, static_cast<int32_t>(i))) {
        return json_error(fmt::format("merges[{}] = ('{}', '{}') names a piece not in the vocabulary", i, a, b));
      }
    }
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_hf_tokenizer_json(const std::string& json_text) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const std::exception& e) {
    return json_error(std::string("not valid JSON: ") + e.what());
  }
  try {
    return load_hf_impl(root);
  } catch (const std::exception& e) {
    return json_error(std::string("unexpected value: ") + e.what());
  }
}

}  // namespace slm::tokenizer
