#include "slm/tokenizer/gguf_export.h"

#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "pre_patterns.h"
#include "slm/core/mapped_file.h"
#include "slm/tokenizer/load.h"

namespace slm::tokenizer {

namespace {

bool starts_with_gguf_magic(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  char magic[4] = {};
  return f && std::fread(magic, 1, 4, f.get()) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

Status refuse(const std::string& path, const std::string& why) {
  return Status::Unsupported(fmt::format("[tokenizer export] {}: {}; keep the tokenizer file beside the model instead",
                                         path, why));
}

// The GGUF pre-tokenizer name whose split patterns a tokenizer.json's pre_tokenizer uses.
Result<std::string> pre_name(const nlohmann::json& pre, const std::string& path) {
  std::vector<std::string> patterns;
  if (pre.is_object() && pre.value("type", "") == "ByteLevel" && pre.value("use_regex", true)) return std::string("gpt-2");
  if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
    for (const auto& p : pre["pretokenizers"]) {
      const std::string type = p.value("type", "");
      if (type == "Split" && p.contains("pattern") && p["pattern"].contains("Regex") &&
          p.value("behavior", "") == "Isolated" && !p.value("invert", false)) {
        patterns.push_back(p["pattern"]["Regex"].get<std::string>());
      } else if (type == "ByteLevel" && !p.value("use_regex", true)) {
      } else {
        return refuse(path, fmt::format("pre-tokenizer step '{}' has no GGUF equivalent", type));
      }
    }
  }
  for (const char* name : {"gpt-2", "llama3", "qwen2", "deepseek-llm", "deepseek-coder", "deepseek-v3", "falcon",
                           "starcoder", "tekken", "chameleon", "default"}) {
    auto known = pre_tokenizer_patterns(name);
    if (known.ok() && !patterns.empty() && *known == patterns) return std::string(name);
  }
  return refuse(path, "its pre-tokenizer matches no GGUF pre-tokenizer name");
}

Status bpe_keys(const Tokenizer& tok, const std::string& path, io::GgufWriter* w) {
  SLM_ASSIGN_OR_RETURN(std::string text, read_file(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("model") || !j["model"].is_object())
    return refuse(path, "byte-level BPE exports from a tokenizer.json only");
  if (!j.value("normalizer", nlohmann::json()).is_null()) return refuse(path, "it has a normalizer");
  SLM_ASSIGN_OR_RETURN(std::string pre, pre_name(j.value("pre_tokenizer", nlohmann::json()), path));
  std::vector<std::string> merges;
  for (const auto& m : j["model"].value("merges", nlohmann::json::array())) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return Status::Corruption(fmt::format("[tokenizer export] {}: a merge is neither \"a b\" nor [\"a\", \"b\"]", path));
    }
  }
  w->set_string("tokenizer.ggml.model", "gpt2");
  w->set_string("tokenizer.ggml.pre", pre);
  w->set_string_array("tokenizer.ggml.merges", merges);
  return Status::Ok();
}

// A SentencePiece piece as GGUF stores it: spaces as U+2581 (llama2.c's
// vocabularies hold plain spaces) and control tokens without the newlines
// llama2.c wraps them in ("\n<s>\n").
std::string spm_piece(const std::string& text, TokenAttr attr) {
  if (attr == TokenAttr::kControl) {
    const size_t b = text.find_first_not_of('\n'), e = text.find_last_not_of('\n');
    return b == std::string::npos ? text : text.substr(b, e - b + 1);
  }
  std::string out;
  for (char c : text) out += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  return out;
}

// The keys of a tokenizer loaded from a file other than a GGUF.
Status write_keys(const Tokenizer& tok, const std::string& path, io::GgufWriter* w) {
  if (tok.kind() == "spm") {
    w->set_string("tokenizer.ggml.model", "llama");
    std::vector<float> scores;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) scores.push_back(tok.token_score(id));
    w->set_f32_array("tokenizer.ggml.scores", scores);
  } else if (tok.kind() == "bpe" && tok.decode_style() == DecodeStyle::kByteLevel) {
    SLM_RETURN_IF_ERROR(bpe_keys(tok, path, w));
  } else {
    return refuse(path, fmt::format("a {} vocabulary has no GGUF export yet", tok.kind()));
  }
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    std::string text = tok.token_text(id);
    if (tok.kind() == "spm") text = spm_piece(text, tok.token_attr(id));
    tokens.push_back(std::move(text));
    types.push_back(static_cast<int32_t>(tok.token_attr(id)));
  }
  w->set_string_array("tokenizer.ggml.tokens", tokens);
  w->set_i32_array("tokenizer.ggml.token_type", types);
  const std::pair<const char*, int32_t> ids[] = {{"bos", tok.bos()}, {"eos", tok.eos()}, {"unknown", tok.unk()},
                                                 {"padding", tok.pad()}, {"seperator", tok.sep()}};
  for (const auto& [name, id] : ids)
    if (id >= 0) w->set_u32(fmt::format("tokenizer.ggml.{}_token_id", name), static_cast<uint32_t>(id));
  w->set_bool("tokenizer.ggml.add_bos_token", tok.add_bos());
  w->set_bool("tokenizer.ggml.add_eos_token", tok.add_eos());
  return Status::Ok();
}

}  // namespace

Status add_tokenizer_to_gguf(const Tokenizer& tok, const std::string& source_path, io::GgufWriter* w) {
  io::GgufWriter probe;
  probe.set_string("general.architecture", "llama");
  if (starts_with_gguf_magic(source_path)) {
    SLM_ASSIGN_OR_RETURN(auto src, io::GgufFile::open(source_path));
    for (const std::string& key : src->key_order())
      if (key.rfind("tokenizer.", 0) == 0) probe.set(key, *src->find(key));
  } else {
    SLM_RETURN_IF_ERROR(write_keys(tok, source_path, &probe));
  }
  // Read the keys back as any GGUF reader would, and compare encodings.
  const std::vector<uint8_t> bytes = probe.serialize();
  SLM_ASSIGN_OR_RETURN(auto file, io::GgufFile::parse(bytes.data(), bytes.size(), "tokenizer export"));
  SLM_ASSIGN_OR_RETURN(auto back, load_from_gguf(*file));
  const char* probes[] = {"Hello world! It's 2024, and   spaces\tand\nnewlines matter.",
                          " leading space, ünïcödé, 日本語, emoji 🙂 and <s> text",
                          "once upon a time there was a little dog named Spot."};
  for (const char* text : probes)
    for (bool special : {false, true}) {
      auto a = tok.encode(text, special), b = back->encode(text, special);
      if (!a.ok() || !b.ok() || *a != *b)
        return refuse(source_path, fmt::format("its GGUF form would encode \"{}\" differently", text));
    }
  for (const std::string& key : file->key_order())
    if (key.rfind("tokenizer.", 0) == 0) w->set(key, *file->find(key));
  return Status::Ok();
}

}  // namespace slm::tokenizer
