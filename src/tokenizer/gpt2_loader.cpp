// load_gpt2_bpe: OpenAI GPT-2 encoder.json + vocab.bpe (docs/formats/gpt2-bpe.md).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "pipeline.h"
#include "slm/tokenizer/load.h"
#include "utf8.h"

namespace slm::tokenizer {

Result<std::unique_ptr<Tokenizer>> load_gpt2_bpe(const std::string& encoder_json, const std::string& vocab_bpe) {
  nlohmann::json enc;
  try {
    enc = nlohmann::json::parse(encoder_json);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("[gpt2 bpe] encoder.json is not valid JSON: ") + e.what());
  }
  if (!enc.is_object() || enc.empty()) return Status::Corruption("[gpt2 bpe] encoder.json must be a non-empty object token -> id");
  auto t = std::make_unique<PipelineTokenizer>();
  for (auto it = enc.begin(); it != enc.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return Status::Corruption("[gpt2 bpe] encoder.json['" + it.key() + "'] is not an integer id");
    }
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= (1 << 30)) return Status::Corruption(fmt::format("[gpt2 bpe] id {} out of range", id));
    if (static_cast<size_t>(id) >= t->tokens_.size()) {
      t->tokens_.resize(id + 1);
      t->attrs_.resize(id + 1, TokenAttr::kUnused);
    }
    if (!t->tokens_[id].empty()) return Status::Corruption(fmt::format("[gpt2 bpe] id {} used twice", id));
    t->tokens_[id] = it.key();
    t->attrs_[id] = it.key() == "<|endoftext|>" ? TokenAttr::kControl : TokenAttr::kNormal;
  }
  PreTokStep bl{PreTokStep::Kind::kByteLevel};
  SLM_ASSIGN_OR_RETURN(Regex re, Regex::compile(kGpt2Pattern));
  bl.regex = std::move(re);
  t->pre_tokenizers_.push_back(std::move(bl));
  t->model_ = ModelKind::kBpeMerges;
  t->decode_style_ = DecodeStyle::kByteLevel;
  t->strip_leading_space_ = false;
  t->kind_ = "bpe";
  SLM_RETURN_IF_ERROR(t->finish());
  t->bos_ = t->eos_ = t->token_to_id("<|endoftext|>");
  SLM_RETURN_IF_ERROR(t->finish());

  size_t pos = 0, line_no = 0;
  int32_t rank = 0;
  while (pos < vocab_bpe.size()) {
    size_t nl = vocab_bpe.find('\n', pos);
    if (nl == std::string::npos) nl = vocab_bpe.size();
    std::string line = vocab_bpe.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ', 1);
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos) {
      return Status::Corruption(fmt::format("[gpt2 bpe] vocab.bpe line {} is not two pieces separated by one space", line_no));
    }
    if (!t->add_merge(line.substr(0, sp), line.substr(sp + 1), rank++)) {
      return Status::Corruption(fmt::format("[gpt2 bpe] vocab.bpe line {} merges pieces not in encoder.json", line_no));
    }
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace slm::tokenizer
