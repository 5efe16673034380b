// load_tiktoken: OpenAI tiktoken rank files (docs/formats/tiktoken.md).
#include <fmt/format.h>

#include <unordered_set>

#include "slm/tokenizer/byte_level.h"
#include "pipeline.h"
#include "pre_patterns.h"
#include "slm/tokenizer/load.h"

namespace slm::tokenizer {

namespace {

Status tk_error(const std::string& msg) { return Status::Corruption("[tiktoken] " + msg); }

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Strict standard base64 (padding optional); false on any bad character or length.
bool b64_decode(std::string_view s, std::string* out) {
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  if (s.size() % 4 == 1) return false;
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = b64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return true;
}

struct Encoding {
  const char* name;
  const char* pattern;
  size_t n_ranks;
  std::vector<std::pair<const char*, int32_t>> specials;
};

const std::vector<Encoding>& encodings() {
  static const std::vector<Encoding> e = {
      {"r50k_base", kGpt2Pattern, 50256, {{"<|endoftext|>", 50256}}},
      {"p50k_base", kGpt2Pattern, 50280, {{"<|endoftext|>", 50256}}},
      {"cl100k_base",
       kLlama3Pattern,
       100256,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {"o200k_base", kO200kPattern, 199998, {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
  };
  return e;
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tiktoken(const std::string& text, const std::string& name) {
  std::vector<std::pair<std::string, int64_t>> ranks;
  size_t pos = 0, line_no = 0;
  std::string bytes;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return tk_error(fmt::format("line {}: expected '<base64> <rank>'", line_no));
    if (!b64_decode(line.substr(0, sp), &bytes) || bytes.empty()) {
      return tk_error(fmt::format("line {}: bad base64 '{}'", line_no, line.substr(0, sp)));
    }
    std::string_view r = line.substr(sp + 1);
    if (r.empty() || r.size() > 9) return tk_error(fmt::format("line {}: bad rank '{}'", line_no, r));
    int64_t rank = 0;
    for (char c : r) {
      if (c < '0' || c > '9') return tk_error(fmt::format("line {}: bad rank '{}'", line_no, r));
      rank = rank * 10 + (c - '0');
    }
    ranks.emplace_back(bytes, rank);
  }
  if (ranks.empty()) return tk_error("no ranks in the file");

  const Encoding* enc = nullptr;
  for (const Encoding& e : encodings()) {
    if (!name.empty() && name.find(e.name) != std::string::npos) enc = &e;
  }
  if (enc == nullptr) {
    for (const Encoding& e : encodings()) {
      if (e.n_ranks == ranks.size()) enc = &e;
    }
  }
  if (enc == nullptr) {
    return Status::Unsupported(fmt::format(
        "[tiktoken] cannot tell the encoding of '{}' ({} ranks): name it cl100k_base, o200k_base, p50k_base or r50k_base",
        name, ranks.size()));
  }
  auto t = std::make_unique<PipelineTokenizer>();
  int64_t max_id = 0;
  for (auto& [b, r] : ranks) max_id = std::max(max_id, r);
  for (auto& [s, id] : enc->specials) max_id = std::max<int64_t>(max_id, id);
  t->tokens_.resize(max_id + 1);
  t->attrs_.assign(max_id + 1, TokenAttr::kUnused);
  std::unordered_set<std::string> seen;
  for (auto& [b, r] : ranks) {
    if (t->attrs_[r] != TokenAttr::kUnused) return tk_error(fmt::format("rank {} appears twice", r));
    if (!seen.insert(b).second) return tk_error(fmt::format("the bytes of rank {} appear twice", r));
    // Stored GPT-2 style (byte-to-unicode) so every token is printable text.
    t->tokens_[r] = byte_level_encode(b);
    t->attrs_[r] = TokenAttr::kNormal;
  }
  for (auto& [s, id] : enc->specials) {
    if (t->attrs_[id] != TokenAttr::kUnused) return tk_error(fmt::format("special token id {} is also a rank", id));
    t->tokens_[id] = s;
    t->attrs_[id] = TokenAttr::kControl;
  }
  PreTokStep split{PreTokStep::Kind::kSplit};
  SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(enc->pattern));
  split.regex = std::move(re);
  t->pre_tokenizers_.push_back(std::move(split));
  t->pre_tokenizers_.push_back(PreTokStep{PreTokStep::Kind::kByteLevel});
  t->model_ = ModelKind::kBpeTokenRank;
  t->ignore_merges_ = true;  // a piece that is a whole token is that token
  t->decode_style_ = DecodeStyle::kByteLevel;
  t->strip_leading_space_ = false;
  t->kind_ = "tiktoken";
  SLM_RETURN_IF_ERROR(t->finish());
  t->eos_ = t->token_to_id("<|endoftext|>");
  SLM_RETURN_IF_ERROR(t->finish());
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm::tokenizer
