// load_tokenizer_file: picks the loader by file name and content.
#include "slm/tokenizer/load.h"

#include <nlohmann/json.hpp>

#include "slm/core/mapped_file.h"

namespace slm::tokenizer {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string dir_of(const std::string& path) {
  size_t p = path.find_last_of('/');
  return p == std::string::npos ? std::string(".") : path.substr(0, p);
}

std::string base_of(const std::string& path) {
  size_t p = path.find_last_of('/');
  return p == std::string::npos ? path : path.substr(p + 1);
}

// True if the JSON text has a "model": { member (a tokenizer.json), without parsing it.
bool has_model_object(const std::string& data) {
  size_t p = 0;
  while ((p = data.find("\"model\"", p)) != std::string::npos) {
    bool escaped = p > 0 && data[p - 1] == '\\';
    size_t q = p + 7;
    while (q < data.size() && (data[q] == ' ' || data[q] == '\n' || data[q] == '\r' || data[q] == '\t')) ++q;
    if (!escaped && q < data.size() && data[q] == ':') {
      ++q;
      while (q < data.size() && (data[q] == ' ' || data[q] == '\n' || data[q] == '\r' || data[q] == '\t')) ++q;
      if (q < data.size() && data[q] == '{') return true;
    }
    p += 7;
  }
  return false;
}

Result<std::unique_ptr<Tokenizer>> load_gpt2_pair(const std::string& encoder_path, const std::string& bpe_path) {
  if (!file_exists(encoder_path)) return Status::NotFound("[gpt2 bpe] missing " + encoder_path + " (needed beside vocab.bpe)");
  if (!file_exists(bpe_path)) return Status::NotFound("[gpt2 bpe] missing " + bpe_path + " (needed beside encoder.json)");
  SLM_ASSIGN_OR_RETURN(std::string enc, read_file(encoder_path));
  SLM_ASSIGN_OR_RETURN(std::string bpe, read_file(bpe_path));
  return load_gpt2_bpe(enc, bpe);
}

Result<std::unique_ptr<Tokenizer>> dispatch(const std::string& path, int32_t llama2c_vocab_size) {
  const std::string base = base_of(path);
  if (!file_exists(path)) return Status::NotFound("[tokenizer] no such file: " + path);
  if (ends_with(base, ".gguf")) {
    SLM_ASSIGN_OR_RETURN(auto gguf, io::GgufFile::open(path));
    return load_from_gguf(*gguf);
  }
  if (base == "vocab.bpe" || ends_with(base, ".bpe")) return load_gpt2_pair(dir_of(path) + "/encoder.json", path);
  if (ends_with(base, ".bin")) return load_llama2c_tokenizer(path, llama2c_vocab_size);
  SLM_ASSIGN_OR_RETURN(std::string data, read_file(path));
  if (data.size() >= 4 && data.compare(0, 4, "GGUF") == 0) {
    SLM_ASSIGN_OR_RETURN(auto gguf, io::GgufFile::open(path));
    return load_from_gguf(*gguf);
  }
  if (ends_with(base, ".tiktoken")) return load_tiktoken(data, base);
  if (ends_with(base, ".model")) return load_sentencepiece_model(data);
  if (ends_with(base, ".json") || (!data.empty() && data[0] == '{')) {
    // tokenizer.json has a "model" object; GPT-2's encoder.json is a flat token -> id map.
    bool is_hf = has_model_object(data);
    if (!is_hf && (base == "encoder.json" || data.find("\"<|endoftext|>\"") != std::string::npos)) {
      return load_gpt2_pair(path, dir_of(path) + "/vocab.bpe");
    }
    return load_hf_tokenizer_json(data);
  }
  if (!data.empty() && data[0] == 0x0A) return load_sentencepiece_model(data);
  return Status::Unsupported("[tokenizer] cannot tell the tokenizer format of '" + base +
                             "' (expected .gguf, tokenizer.json, .model, encoder.json/vocab.bpe, .tiktoken or a llama2.c .bin)");
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tokenizer_file(const std::string& path, int32_t llama2c_vocab_size) {
  auto r = dispatch(path, llama2c_vocab_size);
  if (!r.ok()) {
    const std::string& m = r.status().message();
    if (m.find(path) == std::string::npos) return r.status().with_context(path);
  }
  return r;
}

}  // namespace slm::tokenizer
