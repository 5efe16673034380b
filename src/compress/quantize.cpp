#include "slm/compress/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "slm/compress/awq.h"
#include "slm/compress/calibrate.h"
#include "slm/compress/kquant.h"
#include "slm/compress/obs.h"
#include "slm/io/gguf.h"
#include "slm/kernels/quant.h"
#include "slm/model/model_source.h"
#include "rewrite.h"

namespace slm::compress {

namespace {

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

uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::kF32: return 0;
    case DType::kF16: return 1;
    case DType::kQ4_0: return 2;
    case DType::kQ4_1: return 3;
    case DType::kQ8_0: return 7;
    case DType::kQ5_0: return 8;
    case DType::kQ2_K: return 10;
    case DType::kQ3_K: return 12;  // Q3_K_M
    case DType::kQ4_K: return 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M, as llama-quantize --pure Q4_K writes
    case DType::kQ5_K: return 17;  // Q5_K_M
    case DType::kQ6_K: return 18;
    case DType::kBF16: return 32;
    default: return 0;
  }
}

NewTensor f32_tensor(const std::vector<float>& x, std::vector<int64_t> shape) {
  NewTensor nt;
  nt.ggml_type = io::ggml_from_dtype(DType::kF32);
  nt.bytes.resize(x.size() * sizeof(float));
  std::memcpy(nt.bytes.data(), x.data(), nt.bytes.size());
  nt.shape = std::move(shape);
  return nt;
}

Result<std::vector<float>> float_weights(const std::string& name, const TensorView& v) {
  if (!is_float_type(v.dtype))
    return Status::InvalidArgument(fmt::format(
        "[compress] {} is already {}: compress an F32, F16 or BF16 model (requantizing loses precision twice)", name,
        dtype_name(v.dtype)));
  std::vector<float> x(static_cast<size_t>(v.numel()));
  kernels::dequantize_row_ref(v.dtype, v.data, x.data(), v.numel());
  return x;
}

Result<QuantizeReport> rewrite_gguf(const io::GgufFile& in, const std::string& out_path,
                                    const std::vector<std::pair<std::string, uint32_t>>& set_u32,
                                    const TensorRewrite& fn, const QuantizeCallback& cb) {
  io::GgufWriter w;
  for (const std::string& key : in.key_order())
    if (std::none_of(set_u32.begin(), set_u32.end(), [&](const auto& kv) { return kv.first == key; }))
      w.set(key, *in.find(key));
  for (const auto& [key, v] : set_u32) w.set_u32(key, v);

  QuantizeReport rep;
  // llama.cpp's loader order (llama-quantize writes tensors so): tensors
  // outside the blocks first, then block by block, by name within each; with
  // the metadata order above, the whole file matches llama-quantize's byte for byte.
  std::vector<const io::GgufFile::TensorInfo*> infos;
  for (const auto& ti : in.tensors()) infos.push_back(&ti);
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
    auto view = in.tensor(ti.name);
    if (!view.ok()) return view.status();
    SLM_ASSIGN_OR_RETURN(auto nt, fn(ti.name, *view, p));
    if (!nt) {
      p.to = p.from;
      p.bytes_out = ti.nbytes;
      const auto* b = static_cast<const uint8_t*>(view->data);
      w.add_tensor(ti.name, ti.ggml_type, ti.shape, std::vector<uint8_t>(b, b + ti.nbytes));
    } else if (nt->drop) {
      p.to = "-";
    } else {
      p.to = io::ggml_type_name(nt->ggml_type);
      p.bytes_out = nt->bytes.size();
      w.add_tensor(nt->name.empty() ? ti.name : nt->name, nt->ggml_type, nt->shape.empty() ? ti.shape : nt->shape,
                   std::move(nt->bytes));
    }
    rep.bytes_in += p.bytes_in;
    rep.bytes_out += p.bytes_out;
    rep.tensors.push_back(std::move(p));
    if (cb) cb(++done, static_cast<int64_t>(infos.size()));
  }
  SLM_RETURN_IF_ERROR(w.write(out_path).with_context("[compress] " + out_path));
  return rep;
}

Result<Calibration> calibrate_sequential(const io::GgufFile& in, const std::string& in_path, const std::string& calib,
                                         const CalibrationOptions& opt, const CalibrationCallback& cb,
                                         const WeightRewrite& one, Sequential* seq) {
  auto compress = [&](int64_t l, const Calibration& cal, model::LayerWeights& L) -> Status {
    const std::pair<TensorView*, const char*> mats[] = {{&L.wq, "attn_q"},         {&L.wk, "attn_k"},
                                                        {&L.wv, "attn_v"},         {&L.wo, "attn_output"},
                                                        {&L.ffn_gate, "ffn_gate"}, {&L.ffn_up, "ffn_up"},
                                                        {&L.ffn_down, "ffn_down"}};
    for (const auto& [view, suffix] : mats) {
      if (view->data == nullptr) continue;
      const std::string name = fmt::format("blk.{}.{}.weight", l, suffix);
      auto v = in.tensor(name);
      if (!v.ok()) return v.status();
      TensorPlan p;
      std::vector<float> values;
      SLM_ASSIGN_OR_RETURN(auto nt, one(name, *v, cal.for_weight(name), p, &values));
      if (!nt) continue;
      if (!values.empty()) {
        if (static_cast<int64_t>(values.size()) != view->numel())
          return Status::Internal(fmt::format("[compress] {}: {} values for {}", name, values.size(), view->shape_string()));
        const std::vector<float>& kept = seq->values[name] = std::move(values);
        view->data = kept.data();
        view->dtype = DType::kF32;
        view->nbytes = kept.size() * sizeof(float);
      }
      seq->done.emplace(name, std::make_pair(std::move(*nt), p));
    }
    return Status::Ok();
  };
  return calibrate_file(in_path, calib, opt, cb, compress);
}

TensorRewrite with_sequential(Sequential& seq, const Calibration& cal, const WeightRewrite& one) {
  return [&seq, &cal, one](const std::string& name, const TensorView& v, TensorPlan& p) -> Result<std::optional<NewTensor>> {
    auto it = seq.done.find(name);
    if (it == seq.done.end()) return one(name, v, cal.for_weight(name), p, nullptr);
    const TensorPlan& q = it->second.second;
    p.rmse = q.rmse, p.err = q.err, p.err_rtn = q.err_rtn, p.zeros = q.zeros;
    return std::optional<NewTensor>(std::move(it->second.first));
  };
}

Result<QuantizeReport> quantize_gguf(const std::string& in_path, const std::string& out_path,
                                     const QuantizeOptions& opt, const QuantizeCallback& cb) {
  const QuantFormat& f = opt.format;
  const bool gptq_method = opt.method == "gptq", awq_method = opt.method == "awq", imatrix = opt.method == "imatrix";
  if (opt.method != "rtn" && !gptq_method && !awq_method && !imatrix)
    return Status::Unsupported(fmt::format("--method '{}' is not implemented (rtn, imatrix, gptq, awq)", opt.method));
  if (gptq_method && !has_groups(f))
    return Status::InvalidArgument(fmt::format(
        "[quantize] gptq writes Q4_0, Q4_1, Q5_0, Q8_0, int4 and int8, not {} (for the k-quants: --method imatrix)",
        f.name()));
  if (imatrix && !is_k_quant(f.type))
    return Status::InvalidArgument(fmt::format(
        "[quantize] imatrix weights the k-quants' scale search (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K), not {}", f.name()));
  if ((gptq_method || awq_method || imatrix) && opt.calib.empty())
    return Status::InvalidArgument(fmt::format("[quantize] {} needs a calibration text (--calib FILE)", opt.method));
  if (out_path.empty()) return Status::InvalidArgument("[quantize] no output path (--out)");
  if (file_exists(in_path) && !model::is_gguf_file(in_path))
    return Status::Unsupported(fmt::format("[quantize] {} is not a GGUF file: quantize reads GGUF models (F32, F16 or "
                                           "BF16 weights)", in_path));
  SLM_ASSIGN_OR_RETURN(auto in, io::GgufFile::open(in_path));
  Calibration cal;
  const int64_t qk = f.block();
  auto is_kept = [&](const std::string& name) {
    return std::any_of(opt.keep.begin(), opt.keep.end(), [&](const std::string& k) { return name.rfind(k, 0) == 0; });
  };
  // A type no matrix can take would write the model back unchanged: refuse it.
  if (std::none_of(in->tensors().begin(), in->tensors().end(), [&](const io::GgufFile::TensorInfo& ti) {
        return ti.shape.size() >= 2 && ti.shape.back() % qk == 0 && !is_kept(ti.name);
      }))
    return Status::InvalidArgument(fmt::format(
        "[quantize] no matrix of {} has rows of whole {}-value blocks (outside --keep): it cannot take {}", in_path, qk,
        f.name()));
  // ggml's GGML_QNT_VERSION is 2.
  const std::vector<std::pair<std::string, uint32_t>> set_keys = {{"general.quantization_version", 2},
                                                                   {"general.file_type", llama_file_type(f.type)}};
  std::map<std::string, AwqSite> awq;
  auto awq_site = [&](const std::string& site) -> const AwqSite* {
    auto it = awq.find(site);
    return it == awq.end() ? nullptr : &it->second;
  };
  auto one = [&](const std::string& name, const TensorView& v, const InputStats* s, TensorPlan& p,
                 std::vector<float>* values) -> Result<std::optional<NewTensor>> {
    const bool kept = is_kept(name);
    // Norms, biases, rows the blocks do not divide and kept tensors stay as they are...
    const bool quantize = v.shape.size() >= 2 && v.cols() % qk == 0 && !kept;
    // ...except where AWQ scales them: a reader's columns by s, its producer's rows by 1 / s.
    const AwqSite* col_s = awq_site(name == "output.weight" ? "output" : input_site(name));
    const AwqSite* row_s = awq_method && name == "output_norm.weight" ? awq_site("output") : nullptr;
    const size_t dot = name.find('.', 4);
    if (awq_method && name.rfind("blk.", 0) == 0 && dot != std::string::npos) {
      const std::string prefix = name.substr(0, dot + 1), rest = name.substr(dot + 1);
      if (rest == "attn_norm.weight") row_s = awq_site(prefix + "attn_in");
      if (rest == "ffn_norm.weight") row_s = awq_site(prefix + "ffn_in");
      if (rest == "ffn_up.weight") row_s = awq_site(prefix + "ffn_down");
    }
    if (!quantize && col_s == nullptr && row_s == nullptr) return std::optional<NewTensor>{};
    if (kept && (col_s != nullptr || row_s != nullptr))
      return Status::InvalidArgument(fmt::format("[quantize] --keep {}: awq scales it, keep only tensors outside the blocks", name));
    SLM_ASSIGN_OR_RETURN(auto x, float_weights(name, v));
    const bool one_d = v.shape.size() == 1;  // a norm: one scale per element
    const int64_t rows = one_d ? v.numel() : v.rows(), cols = one_d ? 1 : v.cols();
    std::vector<float> xs = x;  // scaled
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float& e = xs[static_cast<size_t>(r * cols + c)];
        if (col_s != nullptr) e *= col_s->scale[static_cast<size_t>(c)];
        if (row_s != nullptr) e /= row_s->scale[static_cast<size_t>(r)];
      }
    if (!quantize) return std::optional<NewTensor>(f32_tensor(xs));
    if (awq_method && s != nullptr) {  // AWQ's clipping, on the inputs as the scaled weights see them (x / s)
      std::vector<double> hs = s->xtx;
      if (col_s != nullptr)
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = 0; j < cols; ++j)
            hs[static_cast<size_t>(i * cols + j)] /= static_cast<double>(col_s->scale[i]) * col_s->scale[j];
      awq_clip(xs, rows, cols, hs, f);
    }
    // imatrix: each input channel's mean square on the calibration text.
    std::vector<float> importance;
    if (imatrix && s != nullptr && s->n_tok > 0) {
      importance.resize(static_cast<size_t>(cols));
      for (int64_t j = 0; j < cols; ++j)
        importance[j] = static_cast<float>(s->xtx[static_cast<size_t>(j * cols + j)] / static_cast<double>(s->n_tok));
    }
    const size_t out_row = row_bytes(f.type, cols);
    NewTensor nt;
    nt.ggml_type = io::ggml_from_dtype(f.type);
    nt.bytes.resize(out_row * static_cast<size_t>(rows));
    std::vector<float> y(x.size());
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      uint8_t* dst = nt.bytes.data() + static_cast<size_t>(r) * out_row;
      quantize_row(f, &xs[static_cast<size_t>(r * cols)], dst, cols, importance.empty() ? nullptr : importance.data());
      kernels::dequantize_row_ref(f.type, dst, &y[static_cast<size_t>(r * cols)], cols);
    }
    // y in the original weights' terms, for the errors.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        float& e = y[static_cast<size_t>(r * cols + c)];
        if (col_s != nullptr) e /= col_s->scale[static_cast<size_t>(c)];
        if (row_s != nullptr) e *= row_s->scale[static_cast<size_t>(r)];
      }
    if (s != nullptr) {
      std::vector<float> y_rtn(x.size());
      for (int64_t r = 0; r < rows; ++r) rtn_roundtrip(f, &x[static_cast<size_t>(r * cols)], &y_rtn[static_cast<size_t>(r * cols)], cols);
      p.err_rtn = output_error(x, y_rtn, rows, cols, s->xtx);
      p.err = output_error(x, y, rows, cols, s->xtx);
      if (gptq_method) {
        std::vector<float> g = x;
        SLM_ASSIGN_OR_RETURN(nt.bytes, gptq(g, rows, cols, s->xtx, f, opt.obs));
        y.swap(g);
        p.err = output_error(x, y, rows, cols, s->xtx);
      }
    }
    double err2 = 0;
    for (size_t i = 0; i < x.size(); ++i) err2 += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    p.rmse = std::sqrt(err2 / static_cast<double>(x.size()));
    if (values != nullptr) *values = std::move(y);
    return std::optional<NewTensor>(std::move(nt));
  };
  // GPTQ layer by layer (each from the outputs of the quantized layers before
  // it, as the paper does); AWQ and RTN from the unquantized model.
  Sequential seq;
  if (gptq_method) {
    SLM_ASSIGN_OR_RETURN(cal, calibrate_sequential(*in, in_path, opt.calib, opt.calib_opt, opt.calib_cb, one, &seq));
  } else if (!opt.calib.empty()) {
    SLM_ASSIGN_OR_RETURN(cal, calibrate_file(in_path, opt.calib, opt.calib_opt, opt.calib_cb));
  }
  if (awq_method) {
    SLM_ASSIGN_OR_RETURN(awq, awq_search(*in, cal, f));
    if (is_kept("output.weight")) awq.erase("output");  // a kept output layer takes no scales
  }
  return rewrite_gguf(*in, out_path, set_keys, with_sequential(seq, cal, one), cb);
}

}  // namespace slm::compress
