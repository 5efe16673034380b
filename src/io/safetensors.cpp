#include "slm/io/safetensors.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace slm::io {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // as the reference implementation caps it

// Element size of a safetensors dtype name; 0 if unknown.
size_t element_size(const std::string& d) {
  if (d == "F64" || d == "I64" || d == "U64") return 8;
  if (d == "F32" || d == "I32" || d == "U32") return 4;
  if (d == "F16" || d == "BF16" || d == "I16" || d == "U16") return 2;
  if (d == "I8" || d == "U8" || d == "BOOL" || d == "F8_E4M3" || d == "F8_E5M2") return 1;
  return 0;
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  SLM_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  std::unique_ptr<SafetensorsFile> s(new SafetensorsFile());
  s->data_ = file->data();
  s->size_ = file->size();
  s->name_ = path;
  s->file_ = std::move(file);
  SLM_RETURN_IF_ERROR(s->parse_all().with_context(path));
  return s;
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(const uint8_t* data, size_t size,
                                                                const std::string& name) {
  std::unique_ptr<SafetensorsFile> s(new SafetensorsFile());
  s->data_ = data;
  s->size_ = size;
  s->name_ = name;
  SLM_RETURN_IF_ERROR(s->parse_all().with_context(name));
  return s;
}

Status SafetensorsFile::parse_all() {
  if (size_ < 8) return Status::Corruption(fmt::format("file is {} bytes, too short for the 8-byte header length", size_));
  uint64_t n = 0;
  std::memcpy(&n, data_, 8);
  if (n > kMaxHeader) return Status::Corruption(fmt::format("header length {} exceeds the {} byte limit", n, kMaxHeader));
  if (n > size_ - 8)
    return Status::Corruption(fmt::format("header length {} runs past the end of the {}-byte file", n, size_));
  data_offset_ = 8 + static_cast<size_t>(n);
  const uint64_t data_size = size_ - data_offset_;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(data_ + 8, data_ + data_offset_);
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(fmt::format("header is not valid JSON: {}", e.what()));
  }
  if (!header.is_object()) return Status::Corruption("header is not a JSON object");
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return Status::Corruption("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return Status::Corruption(fmt::format("__metadata__ value '{}' is not a string", m.key()));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      return Status::Corruption(fmt::format("tensor '{}': entry needs dtype, shape and data_offsets", name));
    const auto& jd = v["dtype"];
    const auto& js = v["shape"];
    const auto& jo = v["data_offsets"];
    if (!jd.is_string()) return Status::Corruption(fmt::format("tensor '{}': dtype is not a string", name));
    if (!js.is_array() || js.size() > 8) return Status::Corruption(fmt::format("tensor '{}': shape is not an array of at most 8 dims", name));
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      return Status::Corruption(fmt::format("tensor '{}': data_offsets is not [begin, end]", name));
    TensorInfo ti;
    ti.name = name;
    ti.dtype = jd.get<std::string>();
    size_t es = element_size(ti.dtype);
    if (es == 0) return Status::Corruption(fmt::format("tensor '{}': unknown dtype '{}'", name, ti.dtype));
    uint64_t numel = 1;
    for (const auto& d : js) {
      if (!d.is_number_unsigned()) return Status::Corruption(fmt::format("tensor '{}': shape has a non-integer dimension", name));
      uint64_t x = d.get<uint64_t>();
      if (x > (1ull << 40) || (x != 0 && numel > (1ull << 50) / x))
        return Status::Corruption(fmt::format("tensor '{}': absurd dimension {}", name, x));
      numel *= x;
      ti.shape.push_back(static_cast<int64_t>(x));
    }
    ti.begin = jo[0].get<uint64_t>();
    ti.end = jo[1].get<uint64_t>();
    if (ti.begin > ti.end || ti.end > data_size)
      return Status::Corruption(fmt::format("tensor '{}': data_offsets [{}, {}] outside the {}-byte data section "
                                            "(file truncated?)", name, ti.begin, ti.end, data_size));
    if (ti.end - ti.begin != numel * es)
      return Status::Corruption(fmt::format("tensor '{}': {} {} elements need {} bytes but data_offsets span {}", name,
                                            numel, ti.dtype, numel * es, ti.end - ti.begin));
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(ti));
  }
  return Status::Ok();
}

const SafetensorsFile::TensorInfo* SafetensorsFile::find_tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<TensorView> SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* ti = find_tensor(name);
  if (ti == nullptr) return Status::NotFound(fmt::format("{}: no tensor named '{}'", name_, name));
  TensorView v;
  if (ti->dtype == "F32") v.dtype = DType::kF32;
  else if (ti->dtype == "F16") v.dtype = DType::kF16;
  else if (ti->dtype == "BF16") v.dtype = DType::kBF16;
  else
    return Status::Unsupported(fmt::format("{}: tensor '{}' has dtype {} (weights must be F32, F16 or BF16)", name_,
                                           name, ti->dtype));
  v.name = name;
  v.shape = ti->shape;
  v.data = data_ + data_offset_ + ti->begin;
  v.nbytes = ti->end - ti->begin;
  // Kernels read elements in place: an odd address would be undefined behaviour.
  const size_t es = v.dtype == DType::kF32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(v.data) % es != 0)
    return Status::Unsupported(fmt::format("{}: tensor '{}' ({}) starts at file offset {}, not a multiple of its "
                                           "{}-byte element size", name_, name, ti->dtype, data_offset_ + ti->begin, es));
  return v;
}

Status write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16)
      return Status::InvalidArgument(fmt::format("[write_safetensors] tensor '{}' is {}, expected F32, F16 or BF16",
                                                 t.name, dtype_name(t.dtype)));
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  h.resize((h.size() + 7) / 8 * 8, ' ');  // keep the data 8-byte aligned
  std::vector<uint8_t> out(8 + h.size());
  uint64_t n = h.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, h.data(), h.size());
  for (const auto& t : tensors) {
    const auto* p = static_cast<const uint8_t*>(t.data);
    out.insert(out.end(), p, p + t.nbytes);
  }
  return write_file_atomic(path, out.data(), out.size());
}

}  // namespace slm::io
