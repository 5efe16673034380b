#include "slm/compress/quantize.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "slm/model/model_source.h"

namespace slm::compress {

namespace {

// One row of n floats into type t's blocks at dst.
void quantize_row(DType t, const float* x, uint8_t* dst, int64_t n) {
  switch (t) {
    case DType::kQ8_0: kernels::quantize_row_q8_0_ref(x, reinterpret_cast<kernels::BlockQ8_0*>(dst), n); return;
    case DType::kQ4_0: kernels::quantize_row_q4_0_ref(x, reinterpret_cast<kernels::BlockQ4_0*>(dst), n); return;
    case DType::kQ4_1: kernels::quantize_row_q4_1_ref(x, reinterpret_cast<kernels::BlockQ4_1*>(dst), n); return;
    case DType::kQ5_0: kernels::quantize_row_q5_0_ref(x, reinterpret_cast<kernels::BlockQ5_0*>(dst), n); return;
    default: break;
  }
}

// The layer of "blk.N.*", -1 for other names.
int layer_of(const std::string& name) {
  int layer = -1;
  if (name.rfind("blk.", 0) == 0) {
    size_t i = 4;
    int v = 0;
    bool digits = false;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && v < 100000000) {
      v = v * 10 + (name[i++] - '0');
      digits = true;
    }
    if (digits && i < name.size() && name[i] == '.') layer = v;
  }
  return layer;
}

bool is_float_type(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

Result<DType> parse_quant_type(const std::string& name) {
  std::string up = name;
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0})
    if (dtype_name(t) == up) return t;
  return Status::InvalidArgument(fmt::format("--type '{}' cannot be written yet (Q8_0, Q4_0, Q4_1, Q5_0)", name));
}

uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ4_1: return 3;
    case DType::kQ8_0: return 7;
    case DType::kQ5_0: return 8;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

Result<QuantizeReport> quantize_gguf(const std::string& in_path, const std::string& out_path,
                                     const QuantizeOptions& opt, const QuantizeCallback& cb) {
  if (opt.method != "rtn")
    return Status::Unsupported(fmt::format("--method '{}' is not implemented yet (rtn)", opt.method));
  if (opt.type != DType::kQ8_0 && opt.type != DType::kQ4_0 && opt.type != DType::kQ4_1 && opt.type != DType::kQ5_0)
    return Status::InvalidArgument(fmt::format("[quantize] cannot write {} (Q8_0, Q4_0, Q4_1, Q5_0)",
                                               dtype_name(opt.type)));
  if (out_path.empty()) return Status::InvalidArgument("[quantize] no output path (--out)");
  if (file_exists(in_path) && !model::is_gguf_file(in_path))
    return Status::Unsupported(fmt::format("[quantize] {} is not a GGUF file: quantize reads GGUF models (F32, F16 or "
                                           "BF16 weights)", in_path));
  SLM_ASSIGN_OR_RETURN(auto in, io::GgufFile::open(in_path));
  const int64_t qk = dtype_info(opt.type).block_size;

  io::GgufWriter w;
  for (const std::string& key : in->key_order()) {
    if (key == "general.file_type" || key == "general.quantization_version") continue;
    w.set(key, *in->find(key));
  }
  w.set_u32("general.quantization_version", 2);  // ggml's GGML_QNT_VERSION
  w.set_u32("general.file_type", llama_file_type(opt.type));

  QuantizeReport rep;
  // llama.cpp's loader order (llama-quantize writes tensors so): tensors
  // outside the blocks first, then block by block, by name within each; with
  // the metadata order above, the whole file matches llama-quantize's byte for byte.
  std::vector<const io::GgufFile::TensorInfo*> infos;
  for (const auto& ti : in->tensors()) infos.push_back(&ti);
  std::stable_sort(infos.begin(), infos.end(), [](const auto* a, const auto* b) {
    const int la = layer_of(a->name), lb = layer_of(b->name);
    return la != lb ? la < lb : a->name < b->name;
  });
  int64_t done = 0;
  for (const auto* tip : infos) {
    const auto& ti = *tip;
    TensorPlan p;
    p.name = ti.name;
    p.shape = ti.shape;
    p.from = io::ggml_type_name(ti.ggml_type);
    p.bytes_in = ti.nbytes;
    auto view = in->tensor(ti.name);
    if (!view.ok()) return view.status().with_context("[quantize] " + in_path);
    const TensorView& v = *view;
    const bool quantize = v.shape.size() >= 2 && v.cols() % qk == 0;
    if (!quantize) {
      // Norms, biases and rows the blocks do not divide stay as they are.
      p.to = p.from;
      p.bytes_out = ti.nbytes;
      const auto* b = static_cast<const uint8_t*>(v.data);
      w.add_tensor(ti.name, ti.ggml_type, ti.shape, std::vector<uint8_t>(b, b + ti.nbytes));
    } else {
      if (!is_float_type(v.dtype))
        return Status::InvalidArgument(fmt::format(
            "[quantize] {} is already {}: quantize from an F32, F16 or BF16 model (requantizing loses precision twice)",
            ti.name, p.from));
      const int64_t rows = v.rows(), cols = v.cols();
      const size_t out_row = row_bytes(opt.type, cols);
      std::vector<uint8_t> out(out_row * static_cast<size_t>(rows));
      double err2 = 0;
#pragma omp parallel for reduction(+ : err2) schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> x(static_cast<size_t>(cols)), y(static_cast<size_t>(cols));
        kernels::dequantize_row_ref(v.dtype, v.row(r), x.data(), cols);
        uint8_t* dst = out.data() + static_cast<size_t>(r) * out_row;
        quantize_row(opt.type, x.data(), dst, cols);
        kernels::dequantize_row_ref(opt.type, dst, y.data(), cols);
        for (int64_t c = 0; c < cols; ++c) {
          const double d = static_cast<double>(x[static_cast<size_t>(c)]) - y[static_cast<size_t>(c)];
          err2 += d * d;
        }
      }
      p.rmse = std::sqrt(err2 / static_cast<double>(rows * cols));
      p.to = std::string(dtype_name(opt.type));
      p.bytes_out = out.size();
      w.add_tensor(ti.name, io::ggml_from_dtype(opt.type), ti.shape, std::move(out));
    }
    rep.bytes_in += p.bytes_in;
    rep.bytes_out += p.bytes_out;
    rep.tensors.push_back(std::move(p));
    if (cb) cb(++done, static_cast<int64_t>(infos.size()));
  }
  SLM_RETURN_IF_ERROR(w.write(out_path).with_context("[quantize] " + out_path));
  return rep;
}

}  // namespace slm::compress
