// safetensors reader and writer (Hugging Face).
//
// Layout: u64 little-endian header length N | N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// | data (offsets are relative to the byte after the header).
// See docs/formats/safetensors.md. The file is memory-mapped; views point into it.
// Immutable after open: safe to read from many threads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slm/core/mapped_file.h"
#include "slm/core/status.h"
#include "slm/core/tensor.h"

namespace slm::io {

class SafetensorsFile {
 public:
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  static Result<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, size_t size, const std::string& name);

  struct TensorInfo {
    std::string name;
    std::string dtype;  // as written: "F32", "BF16", "I64", ...
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  // A view of a F32/F16/BF16 tensor; other dtypes are refused by name.
  Result<TensorView> tensor(const std::string& name) const;
  const std::string& path() const { return name_; }

 private:
  SafetensorsFile() = default;
  Status parse_all();

  std::unique_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t data_offset_ = 0;
  std::string name_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (F32/F16/BF16 views) and metadata as one safetensors file, atomically.
Status write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace slm::io
