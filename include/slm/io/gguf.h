// GGUF reader and writer (versions 2 and 3).
//
// File layout (little-endian), see docs/formats/gguf.md:
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32) | tensor data
// A string is u64 length + bytes; an array is u32 elem_type + u64 count + elems.
//
// GgufFile maps the file; tensor views point into the map (no copy). Every
// count, length and offset is checked against the file size before use.
// Immutable after open: safe to read from many threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "slm/core/mapped_file.h"
#include "slm/core/status.h"
#include "slm/core/tensor.h"

namespace slm::io {

enum class GgufType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars use one of i/u/f/b/s by type; arrays keep their
// element type and the elements in arr (strings, numbers or nested arrays).
struct GgufValue {
  GgufType type = GgufType::kUint32;
  GgufType elem_type = GgufType::kUint32;  // arrays only
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  std::vector<GgufValue> arr;

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::kFloat32 || type == GgufType::kFloat64; }
  int64_t as_int() const;   // any integer or bool type
  double as_float() const;  // any number
  std::string to_string(size_t max_elems = 8) const;  // for `slm info`
};

// GGML tensor type ids as written in GGUF files.
enum GgmlType : uint32_t {
  kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ4_1 = 3, kGgmlQ5_0 = 6, kGgmlQ5_1 = 7,
  kGgmlQ8_0 = 8, kGgmlQ8_1 = 9, kGgmlQ2_K = 10, kGgmlQ3_K = 11, kGgmlQ4_K = 12, kGgmlQ5_K = 13,
  kGgmlQ6_K = 14, kGgmlQ8_K = 15, kGgmlI32 = 26, kGgmlBF16 = 30,
};
const char* ggml_type_name(uint32_t t);  // "Q4_K", or "unknown"

class GgufFile {
 public:
  static Result<std::unique_ptr<GgufFile>> open(const std::string& path);
  // Parses an in-memory image (the bytes must outlive the object); for tests and fuzzing.
  static Result<std::unique_ptr<GgufFile>> parse(const uint8_t* data, size_t size, const std::string& name);

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::string& path() const { return name_; }

  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<std::string>& key_order() const { return key_order_; }
  const GgufValue* find(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;

  // Tensors in file order. Views of supported types carry a DType; a tensor
  // of a type we cannot use yet is listed with its GGML type name, and
  // tensor() refuses it with a message naming the type.
  struct TensorInfo {
    std::string name;
    uint32_t ggml_type;
    std::vector<int64_t> shape;  // outermost first (GGUF's ne reversed)
    uint64_t offset;             // from the start of the data section
    uint64_t nbytes;
  };
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  Result<TensorView> tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  Status parse_all();

  std::unique_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file in memory; write() stores it atomically.
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue v);
  void set_string(const std::string& key, const std::string& v);
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string_array(const std::string& key, const std::vector<std::string>& v);
  void set_f32_array(const std::string& key, const std::vector<float>& v);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // shape outermost first; bytes must hold the tensor in ggml_type's layout.
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape,
                  std::vector<uint8_t> bytes);
  // The same with bytes made only when they are written: fill writes exactly
  // nbytes to dst. write() then holds one such tensor in memory at a time
  // (converters of large models); fill must outlive the writer's use.
  using TensorFill = std::function<void(uint8_t* dst)>;
  void add_tensor(const std::string& name, uint32_t ggml_type, const std::vector<int64_t>& shape, size_t nbytes,
                  TensorFill fill);
  // The whole file. A general.alignment key set on the writer overrides the
  // alignment argument (readers go by the key).
  std::vector<uint8_t> serialize(size_t alignment = 32) const;
  // Header and tensor infos, padded to the alignment; the data follows.
  std::vector<uint8_t> serialize_header(size_t alignment = 32) const;
  Status write(const std::string& path) const;

 private:
  size_t layout_alignment(size_t requested) const;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  struct T {
    std::string name;
    uint32_t type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
    size_t nbytes;
    TensorFill fill;  // set: bytes is empty and made on write
  };
  // The bytes of t: its own, or made by its fill into scratch.
  static const std::vector<uint8_t>& bytes_of(const T& t, std::vector<uint8_t>* scratch);
  std::vector<T> tensors_;
};

// Maps GGML type ids to our DType; nullopt for types we do not read yet.
std::optional<DType> dtype_from_ggml(uint32_t t);
uint32_t ggml_from_dtype(DType t);

}  // namespace slm::io
