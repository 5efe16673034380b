#include "slm/io/gguf.h"

#include <algorithm>
#include <cstring>

#include "slm/core/assert.h"

namespace slm::io {

namespace {

constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 4;
// The GGUF spec caps keys at 65535 bytes; we hold tensor names to the same.
constexpr uint64_t kMaxNameBytes = 65535;
// A GgufValue takes ~100 bytes, so array counts (checked only against the
// bytes left) could make a big file cost 100x its size in RAM. Real files
// hold well under a million elements (vocab, scores, types, merges).
constexpr uint64_t kMaxArrayElems = uint64_t(1) << 22;

// Bounds-checked little-endian cursor over the file image.
class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

  template <typename T>
  Status read(T* out, const char* what) {
    if (remaining() < sizeof(T))
      return Status::Corruption(fmt::format("truncated at offset {} reading {} ({} bytes needed, {} left)", pos_, what,
                                            sizeof(T), remaining()));
    std::memcpy(out, d_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status read_string(std::string* out, const char* what, uint64_t max_len = UINT64_MAX) {
    uint64_t len = 0;
    size_t at = pos_;
    SLM_RETURN_IF_ERROR(read(&len, what));
    if (len > max_len)
      return Status::Corruption(fmt::format("{} at offset {} claims {} bytes, expected at most {}", what, at, len, max_len));
    if (len > remaining())
      return Status::Corruption(
          fmt::format("{} at offset {} claims {} bytes but only {} remain in the file", what, at, len, remaining()));
    out->assign(reinterpret_cast<const char*>(d_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kBool: return 1;
    case GgufType::kUint16: case GgufType::kInt16: return 2;
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kFloat32: return 4;
    case GgufType::kUint64: case GgufType::kInt64: case GgufType::kFloat64: return 8;
    case GgufType::kString: return 8;  // at least the length prefix
    case GgufType::kArray: return 12;  // at least type + count
  }
  return 0;
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kFloat64); }

Status read_value(Reader& r, GgufType type, GgufValue* v, int depth, const std::string& key, uint64_t* elems_left) {
  v->type = type;
  switch (type) {
    case GgufType::kUint8: { uint8_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "u8")); v->u = x; v->i = x; break; }
    case GgufType::kInt8: { int8_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "i8")); v->i = x; v->u = static_cast<uint64_t>(x); break; }
    case GgufType::kUint16: { uint16_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "u16")); v->u = x; v->i = x; break; }
    case GgufType::kInt16: { int16_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "i16")); v->i = x; v->u = static_cast<uint64_t>(x); break; }
    case GgufType::kUint32: { uint32_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "u32")); v->u = x; v->i = x; break; }
    case GgufType::kInt32: { int32_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "i32")); v->i = x; v->u = static_cast<uint64_t>(x); break; }
    case GgufType::kUint64: { uint64_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "u64")); v->u = x; v->i = static_cast<int64_t>(x); break; }
    case GgufType::kInt64: { int64_t x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "i64")); v->i = x; v->u = static_cast<uint64_t>(x); break; }
    case GgufType::kFloat32: { float x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "f32")); v->f = x; break; }
    case GgufType::kFloat64: { double x = 0; SLM_RETURN_IF_ERROR(r.read(&x, "f64")); v->f = x; break; }
    case GgufType::kBool: {
      uint8_t x;
      size_t at = r.pos();
      SLM_RETURN_IF_ERROR(r.read(&x, "bool"));
      if (x > 1) return Status::Corruption(fmt::format("key '{}': bool at offset {} is {}, expected 0 or 1", key, at, x));
      v->b = x != 0;
      v->i = x;
      v->u = x;
      break;
    }
    case GgufType::kString: SLM_RETURN_IF_ERROR(r.read_string(&v->s, "string")); break;
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth)
        return Status::Corruption(fmt::format("key '{}': arrays nested deeper than {}", key, kMaxArrayDepth));
      uint32_t et = 0;
      size_t at = r.pos();
      SLM_RETURN_IF_ERROR(r.read(&et, "array element type"));
      if (!valid_type(et))
        return Status::Corruption(fmt::format("key '{}': array element type {} at offset {} is not a GGUF type (0..12)", key, et, at));
      uint64_t n = 0;
      SLM_RETURN_IF_ERROR(r.read(&n, "array length"));
      v->elem_type = static_cast<GgufType>(et);
      // Each element takes at least scalar_size bytes: a count past that is a lie.
      if (n > r.remaining() / scalar_size(v->elem_type))
        return Status::Corruption(fmt::format("key '{}': array of {} elements of {} cannot fit in the {} bytes left",
                                              key, n, gguf_type_name(v->elem_type), r.remaining()));
      if (n > *elems_left)
        return Status::Corruption(fmt::format("key '{}': array of {} elements takes the file past the limit of {} "
                                              "metadata array elements", key, n, kMaxArrayElems));
      *elems_left -= n;
      v->arr.resize(static_cast<size_t>(n));
      for (auto& e : v->arr) SLM_RETURN_IF_ERROR(read_value(r, v->elem_type, &e, depth + 1, key, elems_left));
      break;
    }
  }
  return Status::Ok();
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                 "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < 13 ? kNames[i] : "unknown";
}

const char* ggml_type_name(uint32_t t) {
  switch (t) {
    case kGgmlF32: return "F32";
    case kGgmlF16: return "F16";
    case kGgmlQ4_0: return "Q4_0";
    case kGgmlQ4_1: return "Q4_1";
    case kGgmlQ5_0: return "Q5_0";
    case kGgmlQ5_1: return "Q5_1";
    case kGgmlQ8_0: return "Q8_0";
    case kGgmlQ8_1: return "Q8_1";
    case kGgmlQ2_K: return "Q2_K";
    case kGgmlQ3_K: return "Q3_K";
    case kGgmlQ4_K: return "Q4_K";
    case kGgmlQ5_K: return "Q5_K";
    case kGgmlQ6_K: return "Q6_K";
    case kGgmlQ8_K: return "Q8_K";
    case kGgmlI32: return "I32";
    case kGgmlBF16: return "BF16";
    default: return "unknown";
  }
}

std::optional<DType> dtype_from_ggml(uint32_t t) {
  switch (t) {
    case kGgmlF32: return DType::kF32;
    case kGgmlF16: return DType::kF16;
    case kGgmlBF16: return DType::kBF16;
    case kGgmlQ8_0: return DType::kQ8_0;
    case kGgmlQ4_0: return DType::kQ4_0;
    case kGgmlQ4_1: return DType::kQ4_1;
    case kGgmlQ5_0: return DType::kQ5_0;
    case kGgmlQ2_K: return DType::kQ2_K;
    case kGgmlQ3_K: return DType::kQ3_K;
    case kGgmlQ4_K: return DType::kQ4_K;
    case kGgmlQ5_K: return DType::kQ5_K;
    case kGgmlQ6_K: return DType::kQ6_K;
    case kGgmlI32: return DType::kI32;
    default: return std::nullopt;
  }
}

uint32_t ggml_from_dtype(DType t) {
  switch (t) {
    case DType::kF32: return kGgmlF32;
    case DType::kF16: return kGgmlF16;
    case DType::kBF16: return kGgmlBF16;
    case DType::kQ8_0: return kGgmlQ8_0;
    case DType::kQ4_0: return kGgmlQ4_0;
    case DType::kQ4_1: return kGgmlQ4_1;
    case DType::kQ5_0: return kGgmlQ5_0;
    case DType::kQ2_K: return kGgmlQ2_K;
    case DType::kQ3_K: return kGgmlQ3_K;
    case DType::kQ4_K: return kGgmlQ4_K;
    case DType::kQ5_K: return kGgmlQ5_K;
    case DType::kQ6_K: return kGgmlQ6_K;
    case DType::kI32: return kGgmlI32;
    case DType::kCount: break;
  }
  return kGgmlF32;
}

// Block sizes and bytes of every GGML type GGUF files commonly hold, so that
// tensor sizes can be checked even for types we cannot compute with yet.
static bool ggml_block(uint32_t t, uint64_t* block, uint64_t* bytes) {
  switch (t) {
    case kGgmlF32: case kGgmlI32: *block = 1; *bytes = 4; return true;
    case kGgmlF16: case kGgmlBF16: *block = 1; *bytes = 2; return true;
    case kGgmlQ4_0: *block = 32; *bytes = 18; return true;
    case kGgmlQ4_1: *block = 32; *bytes = 20; return true;
    case kGgmlQ5_0: *block = 32; *bytes = 22; return true;
    case kGgmlQ5_1: *block = 32; *bytes = 24; return true;
    case kGgmlQ8_0: *block = 32; *bytes = 34; return true;
    case kGgmlQ8_1: *block = 32; *bytes = 36; return true;
    case kGgmlQ2_K: *block = 256; *bytes = 84; return true;
    case kGgmlQ3_K: *block = 256; *bytes = 110; return true;
    case kGgmlQ4_K: *block = 256; *bytes = 144; return true;
    case kGgmlQ5_K: *block = 256; *bytes = 176; return true;
    case kGgmlQ6_K: *block = 256; *bytes = 210; return true;
    case kGgmlQ8_K: *block = 256; *bytes = 292; return true;
    default: return false;
  }
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8: case GgufType::kInt8: case GgufType::kUint16: case GgufType::kInt16:
    case GgufType::kUint32: case GgufType::kInt32: case GgufType::kUint64: case GgufType::kInt64:
      return true;
    default: return false;
  }
}

int64_t GgufValue::as_int() const {
  if (type == GgufType::kFloat32 || type == GgufType::kFloat64) return static_cast<int64_t>(f);
  return i;
}

double GgufValue::as_float() const {
  if (type == GgufType::kFloat32 || type == GgufType::kFloat64) return f;
  if (type == GgufType::kUint64) return static_cast<double>(u);
  return static_cast<double>(i);
}

std::string GgufValue::to_string(size_t max_elems) const {
  switch (type) {
    case GgufType::kString: return s.size() > 80 ? fmt::format("\"{}...\"", s.substr(0, 77)) : fmt::format("\"{}\"", s);
    case GgufType::kBool: return b ? "true" : "false";
    case GgufType::kFloat32: case GgufType::kFloat64: return fmt::format("{:g}", f);
    case GgufType::kUint64: return std::to_string(u);
    case GgufType::kArray: {
      std::string out = fmt::format("[{} x {}: ", arr.size(), gguf_type_name(elem_type));
      for (size_t k = 0; k < arr.size() && k < max_elems; ++k) out += (k ? ", " : "") + arr[k].to_string(max_elems);
      if (arr.size() > max_elems) out += ", ...";
      return out + "]";
    }
    default: return std::to_string(i);
  }
}

Result<std::unique_ptr<GgufFile>> GgufFile::open(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->data_ = file->data();
  g->size_ = file->size();
  g->name_ = path;
  g->file_ = std::move(file);
  SLM_RETURN_IF_ERROR(g->parse_all().with_context(path));
  return g;
}

Result<std::unique_ptr<GgufFile>> GgufFile::parse(const uint8_t* data, size_t size, const std::string& name) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->data_ = data;
  g->size_ = size;
  g->name_ = name;
  SLM_RETURN_IF_ERROR(g->parse_all().with_context(name));
  return g;
}

Status GgufFile::parse_all() {
  Reader r(data_, size_);
  uint32_t magic = 0;
  SLM_RETURN_IF_ERROR(r.read(&magic, "magic"));
  if (magic != 0x46554747u)  // "GGUF"
    return Status::Corruption(fmt::format("not a GGUF file: magic is 0x{:08x}, expected 0x46554747 (\"GGUF\")", magic));
  SLM_RETURN_IF_ERROR(r.read(&version_, "version"));
  if (version_ != 2 && version_ != 3)
    return Status::Unsupported(fmt::format("GGUF version {} (this reader handles versions 2 and 3)", version_));
  uint64_t n_tensors = 0, n_kv = 0;
  SLM_RETURN_IF_ERROR(r.read(&n_tensors, "tensor count"));
  SLM_RETURN_IF_ERROR(r.read(&n_kv, "metadata count"));
  // A key-value takes at least 8+4+1 bytes, a tensor entry at least 8+4+8+4+8.
  if (n_kv > r.remaining() / 13)
    return Status::Corruption(fmt::format("metadata count {} cannot fit in a {}-byte file", n_kv, size_));
  if (n_tensors > r.remaining() / 32)
    return Status::Corruption(fmt::format("tensor count {} cannot fit in a {}-byte file", n_tensors, size_));

  uint64_t elems_left = kMaxArrayElems;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    SLM_RETURN_IF_ERROR(r.read_string(&key, "metadata key", kMaxNameBytes));
    uint32_t t = 0;
    size_t at = r.pos();
    SLM_RETURN_IF_ERROR(r.read(&t, "value type"));
    if (!valid_type(t))
      return Status::Corruption(fmt::format("key '{}': value type {} at offset {} is not a GGUF type (0..12)", key, t, at));
    GgufValue v;
    SLM_RETURN_IF_ERROR(read_value(r, static_cast<GgufType>(t), &v, 0, key, &elems_left));
    if (kv_.count(key)) return Status::Corruption(fmt::format("duplicate metadata key '{}'", key));
    key_order_.push_back(key);
    kv_.emplace(key, std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->as_int() <= 0 || a->as_int() > (1 << 16) || (a->as_int() & (a->as_int() - 1)) != 0)
      return Status::Corruption(fmt::format("general.alignment is {}, expected a power of two", a->to_string()));
    alignment_ = static_cast<size_t>(a->as_int());
  }

  // n_tensors is only bounded by the file size: do not reserve on its word.
  tensors_.reserve(static_cast<size_t>(std::min<uint64_t>(n_tensors, 4096)));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    TensorInfo ti;
    SLM_RETURN_IF_ERROR(r.read_string(&ti.name, "tensor name", kMaxNameBytes));
    uint32_t n_dims = 0;
    SLM_RETURN_IF_ERROR(r.read(&n_dims, "tensor n_dims"));
    if (n_dims == 0 || n_dims > kMaxDims)
      return Status::Corruption(fmt::format("tensor '{}' has {} dimensions, expected 1..{}", ti.name, n_dims, kMaxDims));
    std::vector<int64_t> ne(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t x = 0;
      SLM_RETURN_IF_ERROR(r.read(&x, "tensor dimension"));
      if (x == 0 || x > (uint64_t(1) << 40) || numel > (uint64_t(1) << 50) / x)
        return Status::Corruption(fmt::format("tensor '{}' dimension {} is {}: absurd size", ti.name, d, x));
      ne[d] = static_cast<int64_t>(x);
      numel *= x;
    }
    ti.shape.assign(ne.rbegin(), ne.rend());
    SLM_RETURN_IF_ERROR(r.read(&ti.ggml_type, "tensor type"));
    SLM_RETURN_IF_ERROR(r.read(&ti.offset, "tensor offset"));
    uint64_t block = 0, bytes = 0;
    if (!ggml_block(ti.ggml_type, &block, &bytes))
      return Status::Unsupported(fmt::format("tensor '{}' has GGML type id {} ({}), which this reader does not know",
                                             ti.name, ti.ggml_type, ggml_type_name(ti.ggml_type)));
    if (ne[0] % static_cast<int64_t>(block) != 0)
      return Status::Corruption(fmt::format("tensor '{}' of type {} has a row of {} elements, not a multiple of {}",
                                            ti.name, ggml_type_name(ti.ggml_type), ne[0], block));
    ti.nbytes = numel / block * bytes;
    if (ti.offset % alignment_ != 0)
      return Status::Corruption(fmt::format("tensor '{}' offset {} is not a multiple of the alignment {}", ti.name,
                                            ti.offset, alignment_));
    if (tensor_index_.count(ti.name)) return Status::Corruption(fmt::format("duplicate tensor name '{}'", ti.name));
    tensor_index_.emplace(ti.name, tensors_.size());
    tensors_.push_back(std::move(ti));
  }

  data_offset_ = (r.pos() + alignment_ - 1) / alignment_ * alignment_;
  if (data_offset_ > size_ && !tensors_.empty())
    return Status::Corruption(fmt::format("data section starts at {} past the end of the {}-byte file", data_offset_, size_));
  const uint64_t data_size = size_ > data_offset_ ? size_ - data_offset_ : 0;
  for (const auto& ti : tensors_) {
    if (ti.offset > data_size || ti.nbytes > data_size - ti.offset)
      return Status::Corruption(fmt::format("tensor '{}' spans bytes {}..{} of the data section, which has only {} "
                                            "(file truncated?)", ti.name, ti.offset, ti.offset + ti.nbytes, data_size));
  }
  return Status::Ok();
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::kString) return std::nullopt;
  return v->s;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !(v->is_integer() || v->type == GgufType::kBool)) return std::nullopt;
  return v->as_int();
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->as_float();
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr || v->type != GgufType::kBool) return std::nullopt;
  return v->b;
}

const GgufFile::TensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<TensorView> GgufFile::tensor(const std::string& name) const {
  const TensorInfo* ti = find_tensor(name);
  if (ti == nullptr) return Status::NotFound(fmt::format("{}: no tensor named '{}'", name_, name));
  auto dt = dtype_from_ggml(ti->ggml_type);
  if (!dt)
    return Status::Unsupported(fmt::format("{}: tensor '{}' has type {}, which slm cannot compute with yet "
                                           "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                                           name_, name, ggml_type_name(ti->ggml_type)));
  TensorView v;
  v.name = ti->name;
  v.dtype = *dt;
  v.shape = ti->shape;
  v.data = data_ + data_offset_ + ti->offset;
  v.nbytes = ti->nbytes;
  // Kernels load floats and fp16 scales in place; a small general.alignment
  // can put them at odd addresses, which is undefined behaviour to read.
  const size_t need = (*dt == DType::kF32 || *dt == DType::kI32) ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(v.data) % need != 0)
    return Status::Unsupported(fmt::format("{}: tensor '{}' of type {} starts at file offset {}, which is not {}-byte "
                                           "aligned (general.alignment is {})", name_, name,
                                           ggml_type_name(ti->ggml_type), data_offset_ + ti->offset, need, alignment_));
  return v;
}

// ---- writer ----

void GgufWriter::set(const std::string& key, GgufValue v) {
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::set_string(const std::string& key, const std::string& s) {
  GgufValue v;
  v.type = GgufType::kString;
  v.s = s;
  set(key, std::move(v));
}

void GgufWriter::set_u32(const std::string& key, uint32_t x) {
  GgufValue v;
  v.type = GgufType::kUint32;
  v.u = x;
  v.i = x;
  set(key, std::move(v));
}

void GgufWriter::set_i32(const std::string& key, int32_t x) {
  GgufValue v;
  v.type = GgufType::kInt32;
  v.i = x;
  set(key, std::move(v));
}

void GgufWriter::set_f32(const std::string& key, float x) {
  GgufValue v;
  v.type = GgufType::kFloat32;
  v.f = x;
  set(key, std::move(v));
}

void GgufWriter::set_bool(const std::string& key, bool x) {
  GgufValue v;
  v.type = GgufType::kBool;
  v.b = x;
  set(key, std::move(v));
}

void GgufWriter::set_string_array(const std::string& key, const std::vector<std::string>& xs) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kString;
  for (const auto& x : xs) {
    GgufValue e;
    e.type = GgufType::kString;
    e.s = x;
    v.arr.push_back(std::move(e));
  }
  set(key, std::move(v));
}

void GgufWriter::set_f32_array(const std::string& key, const std::vector<float>& xs) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kFloat32;
  for (float x : xs) {
    GgufValue e;
    e.type = GgufType::kFloat32;
    e.f = x;
    v.arr.push_back(e);
  }
  set(key, std::move(v));
}

void GgufWriter::set_i32_array(const std::string& key, const std::vector<int32_t>& xs) {
  GgufValue v;
  v.type = GgufType::kArray;
  v.elem_type = GgufType::kInt32;
  for (int32_t x : xs) {
    GgufValue e;
    e.type = GgufType::kInt32;
    e.i = x;
    v.arr.push_back(e);
  }
  set(key, std::move(v));
}

void GgufWriter::add_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& shape,
                            std::vector<uint8_t> bytes) {
  const size_t n = bytes.size();
  tensors_.push_back({name, type, shape, std::move(bytes), n, nullptr});
}

void GgufWriter::add_tensor(const std::string& name, uint32_t type, const std::vector<int64_t>& shape, size_t nbytes,
                            TensorFill fill) {
  tensors_.push_back({name, type, shape, {}, nbytes, std::move(fill)});
}

const std::vector<uint8_t>& GgufWriter::bytes_of(const T& t, std::vector<uint8_t>* scratch) {
  if (!t.fill) return t.bytes;
  scratch->assign(t.nbytes, 0);
  t.fill(scratch->data());
  return *scratch;
}

namespace {
template <typename T>
void put(std::vector<uint8_t>& out, T x) {
  const auto* p = reinterpret_cast<const uint8_t*>(&x);
  out.insert(out.end(), p, p + sizeof(T));
}
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::kUint8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case GgufType::kInt8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case GgufType::kUint16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case GgufType::kInt16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case GgufType::kUint32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case GgufType::kInt32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case GgufType::kUint64: put<uint64_t>(out, v.u); break;
    case GgufType::kInt64: put<int64_t>(out, v.i); break;
    case GgufType::kFloat32: put<float>(out, static_cast<float>(v.f)); break;
    case GgufType::kFloat64: put<double>(out, v.f); break;
    case GgufType::kBool: put<uint8_t>(out, v.b ? 1 : 0); break;
    case GgufType::kString: put_string(out, v.s); break;
    case GgufType::kArray:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.arr.size());
      for (const auto& e : v.arr) put_value(out, e);
      break;
  }
}
}  // namespace

// A general.alignment set by the caller (e.g. copied from a source file) is
// what readers will use, so it must also decide the layout.
size_t GgufWriter::layout_alignment(size_t requested) const {
  for (const auto& kv : kv_)
    if (kv.first == "general.alignment" && kv.second.is_integer()) requested = static_cast<size_t>(kv.second.as_int());
  SLM_ASSERT(requested > 0 && (requested & (requested - 1)) == 0);
  return requested;
}

std::vector<uint8_t> GgufWriter::serialize_header(size_t alignment) const {
  alignment = layout_alignment(alignment);
  std::vector<uint8_t> out;
  put<uint32_t>(out, 0x46554747u);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  bool has_align = false;
  for (const auto& kv : kv_) has_align |= kv.first == "general.alignment";
  put<uint64_t>(out, kv_.size() + (has_align || alignment == 32 ? 0 : 1));
  for (const auto& [k, v] : kv_) {
    put_string(out, k);
    put<uint32_t>(out, static_cast<uint32_t>(v.type));
    put_value(out, v);
  }
  if (!has_align && alignment != 32) {
    put_string(out, "general.alignment");
    put<uint32_t>(out, static_cast<uint32_t>(GgufType::kUint32));
    put<uint32_t>(out, static_cast<uint32_t>(alignment));
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(out, static_cast<uint64_t>(*it));
    put<uint32_t>(out, t.type);
    put<uint64_t>(out, offset);
    offset += (t.nbytes + alignment - 1) / alignment * alignment;
  }
  out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
  return out;
}

std::vector<uint8_t> GgufWriter::serialize(size_t alignment) const {
  alignment = layout_alignment(alignment);
  std::vector<uint8_t> out = serialize_header(alignment);
  std::vector<uint8_t> scratch;
  for (const auto& t : tensors_) {
    const std::vector<uint8_t>& b = bytes_of(t, &scratch);
    out.insert(out.end(), b.begin(), b.end());
    out.resize((out.size() + alignment - 1) / alignment * alignment, 0);
  }
  return out;
}

// Streams header and tensors to the file, so no second copy of the data is made.
Status GgufWriter::write(const std::string& path) const {
  const size_t align = layout_alignment(32);
  SLM_ASSIGN_OR_RETURN(auto f, AtomicFileWriter::open(path));
  std::vector<uint8_t> header = serialize_header(align);
  SLM_RETURN_IF_ERROR(f->append(header.data(), header.size()));
  const std::vector<uint8_t> zeros(align, 0);
  std::vector<uint8_t> scratch;
  for (const auto& t : tensors_) {
    const std::vector<uint8_t>& b = bytes_of(t, &scratch);
    SLM_RETURN_IF_ERROR(f->append(b.data(), b.size()));
    const size_t pad = (align - b.size() % align) % align;
    SLM_RETURN_IF_ERROR(f->append(zeros.data(), pad));
  }
  return f->commit();
}

}  // namespace slm::io
