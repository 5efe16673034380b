// ModelSource: opens a model from any file slm reads (GGUF; a Hugging Face
// folder or .safetensors with config.json beside it; a llama2.c .bin), and
// yields its config, its weights (views into memory-mapped files, never
// copies, except GPT-2's Conv1D weights from Hugging Face files, which are
// transposed once) and where its tokenizer is. Every tensor is checked for presence,
// dtype and shape against the config; a file that means an architecture or
// feature slm does not implement is refused with a message naming it.
// Immutable after open: safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "slm/core/status.h"
#include "slm/io/gguf.h"
#include "slm/io/llama2c.h"
#include "slm/io/safetensors.h"
#include "slm/model/config.h"
#include "slm/model/weights.h"

namespace slm::model {

enum class FileFormat { kGguf, kSafetensors, kLlama2c };

// True when path is a regular file that starts with GGUF's magic.
bool is_gguf_file(const std::string& path);

class ModelSource {
 public:
  static Result<std::unique_ptr<ModelSource>> open(const std::string& path);
  ModelSource(const ModelSource&) = delete;
  ModelSource& operator=(const ModelSource&) = delete;

  FileFormat format() const { return format_; }
  const char* format_name() const;
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  // The GGUF file when the model came from one (its vocab is the tokenizer).
  const io::GgufFile* gguf() const { return gguf_.get(); }
  // A tokenizer file beside the model (tokenizer.json, tokenizer.model, a
  // llama2.c tokenizer .bin), or "" when there is none or the GGUF holds one.
  const std::string& tokenizer_path() const { return tokenizer_path_; }
  // Every tensor in the files, in order, for `slm info` (type name, shape).
  struct TensorEntry { std::string name, type; std::vector<int64_t> shape; };
  const std::vector<TensorEntry>& tensor_list() const { return tensor_list_; }
  // The tensors the file holds that slm maps, by their GGUF-style names, and
  // each as stored: Hugging Face layout for safetensors (fused projections
  // whole; GPT-2's Conv1D weights (in, out), stored_transposed says which).
  // For converters (model/convert.h).
  std::vector<std::string> stored_tensor_names() const;
  Result<TensorView> stored_tensor(const std::string& gguf_name) const { return find(gguf_name); }
  bool stored_transposed(const std::string& gguf_name) const;
  // Metadata as printable key/value pairs, for `slm info`.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

 private:
  ModelSource() = default;
  Status open_gguf();
  Status open_safetensors();
  Status open_llama2c();
  Status bind_weights();  // looks up and checks every tensor the config needs

  FileFormat format_ = FileFormat::kGguf;
  std::string path_;
  ModelConfig config_;
  Weights weights_;
  std::unique_ptr<io::GgufFile> gguf_;
  std::vector<std::unique_ptr<io::SafetensorsFile>> shards_;
  std::unique_ptr<io::Llama2cFile> l2c_;
  std::vector<std::vector<uint8_t>> owned_;  // transposed copies (see load)
  std::string tokenizer_path_;
  std::vector<TensorEntry> tensor_list_;
  std::vector<std::pair<std::string, std::string>> metadata_;

  // Finds a tensor by its GGUF-style name in whichever file holds it.
  Result<TensorView> find(const std::string& gguf_name) const;
  // find, then bring a Hugging Face layout to slm's (GPT-2's Conv1D weights
  // are transposed into owned_: the one case where loading copies).
  Result<TensorView> load(const std::string& gguf_name);
  bool has(const std::string& gguf_name) const;
};

}  // namespace slm::model
