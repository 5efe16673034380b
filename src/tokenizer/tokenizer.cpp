#include "slm/tokenizer/tokenizer.h"

#include <algorithm>

#include "slm/tokenizer/byte_level.h"
#include "utf8.h"

namespace slm::tokenizer {

Tokenizer::~Tokenizer() = default;

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string kEmpty;
  return is_valid(id) ? tokens_[id] : kEmpty;
}

TokenAttr Tokenizer::token_attr(int32_t id) const { return is_valid(id) ? attrs_[id] : TokenAttr::kUnused; }

float Tokenizer::token_score(int32_t id) const {
  return (is_valid(id) && static_cast<size_t>(id) < scores_.size()) ? scores_[id] : 0.0f;
}

int32_t Tokenizer::token_to_id(std::string_view text) const {
  auto it = index_.find(std::string(text));
  return it == index_.end() ? -1 : it->second;
}

bool Tokenizer::is_control(int32_t id) const {
  TokenAttr a = token_attr(id);
  return a == TokenAttr::kControl || a == TokenAttr::kUnknown;
}

Status Tokenizer::finish_vocab() {
  if (tokens_.empty()) return Status::Corruption("[tokenizer] empty vocabulary");
  if (attrs_.size() != tokens_.size()) attrs_.resize(tokens_.size(), TokenAttr::kNormal);
  index_.clear();
  index_.reserve(tokens_.size() * 2);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].empty()) continue;
    index_.emplace(tokens_[i], static_cast<int32_t>(i));  // first id wins on duplicates
  }
  std::fill(std::begin(byte_tokens_), std::end(byte_tokens_), -1);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& t = tokens_[i];
    if (attrs_[i] == TokenAttr::kByte || (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>')) {
      if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') continue;
      int v = 0;
      bool ok = true;
      for (int k = 3; k < 5; ++k) {
        char c = t[k];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0) ok = false;
        v = v * 16 + d;
      }
      if (ok && byte_tokens_[v] < 0) byte_tokens_[v] = static_cast<int32_t>(i);
    }
  }
  special_matchable_.clear();
  for (size_t i = 0; i < tokens_.size(); ++i) {
    TokenAttr a = attrs_[i];
    if ((a == TokenAttr::kControl || a == TokenAttr::kUserDefined) && !tokens_[i].empty() &&
        !utf8_first_invalid(tokens_[i]).has_value()) {
      special_matchable_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(special_matchable_.begin(), special_matchable_.end(),
                   [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });
  special_by_byte_.assign(256, {});
  for (int32_t id : special_matchable_) special_by_byte_[static_cast<uint8_t>(tokens_[id][0])].push_back(id);
  if (!custom_post_) {
    prefix_ids_.clear();
    suffix_ids_.clear();
    if (add_bos_ && bos_ >= 0) prefix_ids_.push_back(bos_);
    if (add_eos_ && eos_ >= 0) suffix_ids_.push_back(eos_);
  }
  // End of generation: eos plus the chat-turn terminators models use.
  if (eos_ >= 0) eog_.insert(eos_);
  static const char* const kEogNames[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                          "<|end_of_text|>", "<EOT>", "<|eom_id|>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};
  for (const char* name : kEogNames) {
    int32_t id = token_to_id(name);
    if (id >= 0 && (attrs_[id] == TokenAttr::kControl || attrs_[id] == TokenAttr::kUserDefined)) eog_.insert(id);
  }
  return Status::Ok();
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  if (auto bad = utf8_first_invalid(text)) {
    return Status::InvalidArgument("[tokenizer] invalid UTF-8 in input text at byte offset " + std::to_string(*bad) +
                                   " (byte 0x" + fmt::format("{:02X}", static_cast<uint8_t>(text[*bad])) + ")");
  }
  std::vector<int32_t> out;
  if (add_special) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());

  size_t frag_start = 0, pos = 0;
  bool after_special = false;
  auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  auto flush = [&](size_t end) -> Status {
    if (end > frag_start) {
      Fragment f{text.substr(frag_start, end - frag_start), frag_start == 0, after_special};
      return encode_fragment(f, &out);
    }
    return Status::Ok();
  };
  while (pos < text.size()) {
    int32_t hit = -1;
    if (!special_by_byte_.empty()) {
      for (int32_t id : special_by_byte_[static_cast<uint8_t>(text[pos])]) {
        bool allowed = parse_special || (match_user_defined_always_ && attrs_[id] == TokenAttr::kUserDefined);
        if (allowed && text.compare(pos, tokens_[id].size(), tokens_[id]) == 0) {
          hit = id;
          break;
        }
      }
    }
    if (hit < 0) {
      pos += utf8_seq_len(static_cast<uint8_t>(text[pos]));
      continue;
    }
    size_t frag_end = pos;
    if (lstrip_ids_.count(hit)) {
      while (frag_end > frag_start && is_ws(text[frag_end - 1])) --frag_end;
    }
    SLM_RETURN_IF_ERROR(flush(frag_end));
    out.push_back(hit);
    pos += tokens_[hit].size();
    if (rstrip_ids_.count(hit)) {
      while (pos < text.size() && is_ws(text[pos])) ++pos;
    }
    frag_start = pos;
    after_special = true;
  }
  SLM_RETURN_IF_ERROR(flush(text.size()));
  if (add_special) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

std::string Tokenizer::piece(int32_t id, bool at_start, bool render_special) const {
  if (!is_valid(id)) return {};
  const std::string& t = tokens_[id];
  TokenAttr a = attrs_[id];
  if (a == TokenAttr::kControl) return render_special ? t : std::string();
  if (a == TokenAttr::kUnknown) return render_special ? t : unk_surface_;
  if (a == TokenAttr::kUserDefined) return t;
  if (a == TokenAttr::kByte) {
    for (int b = 0; b < 256; ++b) {
      if (byte_tokens_[b] == id) return std::string(1, static_cast<char>(b));
    }
    return t;
  }
  std::string out;
  switch (decode_style_) {
    case DecodeStyle::kSpm: {
      if (space_symbol_.empty() || space_symbol_ == " ") {
        out = t;
      } else {
        out.reserve(t.size());
        size_t i = 0;
        while (i < t.size()) {
          if (t.compare(i, space_symbol_.size(), space_symbol_) == 0) {
            out.push_back(' ');
            i += space_symbol_.size();
          } else {
            out.push_back(t[i++]);
          }
        }
      }
      break;
    }
    case DecodeStyle::kByteLevel:
      out = byte_level_decode(t);
      break;
    case DecodeStyle::kWordPiece: {
      bool word_start;
      std::string body;
      if (!wp_word_prefix_.empty()) {
        word_start = t.compare(0, wp_word_prefix_.size(), wp_word_prefix_) == 0;
        body = word_start ? t.substr(wp_word_prefix_.size()) : t;
      } else {
        word_start = !(t.compare(0, wp_cont_prefix_.size(), wp_cont_prefix_) == 0 && !wp_cont_prefix_.empty());
        body = word_start ? t : t.substr(wp_cont_prefix_.size());
      }
      out = word_start ? " " + body : body;
      if (wp_cleanup_) {
        static const std::pair<const char*, const char*> kCleanup[] = {
            {" .", "."},     {" ?", "?"},         {" !", "!"},       {" ,", ","},     {" ' ", "'"},  {" n't", "n't"},
            {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"}};
        for (auto [from, to] : kCleanup) {
          std::string f(from), r(to);
          size_t p = 0;
          while ((p = out.find(f, p)) != std::string::npos) {
            out.replace(p, f.size(), r);
            p += r.size();
          }
        }
      }
      break;
    }
  }
  if (at_start && strip_leading_space_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string Tokenizer::token_to_bytes(int32_t id, bool render_special) const { return piece(id, false, render_special); }

std::string Tokenizer::token_to_bytes_at_start(int32_t id, bool render_special) const {
  return piece(id, true, render_special);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  bool at_start = true;
  for (int32_t id : ids) {
    if (!is_valid(id)) continue;
    std::string p = piece(id, at_start, render_special);
    TokenAttr a = attrs_[id];
    bool skipped = p.empty() && (a == TokenAttr::kControl || a == TokenAttr::kUnknown || a == TokenAttr::kUnused);
    if (!skipped) at_start = false;
    out += p;
  }
  return utf8_sanitize(out);
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool at_text_start, bool render_special)
    : tok_(tok), at_start_(at_text_start), render_special_(render_special) {}

std::string StreamDecoder::feed(int32_t id) {
  if (!tok_.is_valid(id)) return {};
  std::string p = at_start_ ? tok_.token_to_bytes_at_start(id, render_special_) : tok_.token_to_bytes(id, render_special_);
  TokenAttr a = tok_.token_attr(id);
  if (!(p.empty() && (a == TokenAttr::kControl || a == TokenAttr::kUnknown || a == TokenAttr::kUnused))) at_start_ = false;
  pending_ += p;
  size_t keep = utf8_incomplete_tail(pending_);
  std::string ready = utf8_sanitize(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return ready;
}

std::string StreamDecoder::flush() {
  std::string out = utf8_sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace slm::tokenizer
