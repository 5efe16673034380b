#include "slm/compress/prune.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <optional>

#include <fmt/format.h>

#include "rewrite.h"
#include "slm/model/model_source.h"

namespace slm::compress {

Result<std::pair<int, int>> parse_nm_pattern(const std::string& s) {
  const size_t colon = s.find(':');
  char* end = nullptr;
  const long n = colon == std::string::npos ? 0 : std::strtol(s.c_str(), &end, 10);
  const bool n_ok = colon != std::string::npos && end == s.c_str() + colon;
  const long m = n_ok ? std::strtol(s.c_str() + colon + 1, &end, 10) : 0;
  if (!n_ok || *end != '\0' || colon + 1 == s.size() || n <= 0 || m <= n || m > 64)
    return Status::InvalidArgument(fmt::format("--pattern '{}': expected N:M with 0 < N < M <= 64, e.g. 2:4", s));
  return std::pair<int, int>{static_cast<int>(n), static_cast<int>(m)};
}

Result<QuantizeReport> prune_gguf(const std::string& in_path, const std::string& out_path, const PruneOptions& opt,
                                  const QuantizeCallback& cb) {
  if (opt.method != "magnitude" && opt.method != "wanda" && opt.method != "sparsegpt")
    return Status::InvalidArgument(fmt::format("[prune] --method '{}' is unknown (magnitude, wanda, sparsegpt)", opt.method));
  int n_of = 0, m = 0;
  if (!opt.pattern.empty()) {
    SLM_ASSIGN_OR_RETURN(auto nm, parse_nm_pattern(opt.pattern));
    std::tie(n_of, m) = nm;
  } else if (!(opt.sparsity >= 0 && opt.sparsity < 1)) {
    return Status::InvalidArgument(fmt::format("[prune] --sparsity {} is outside [0, 1)", opt.sparsity));
  }
  if (opt.method != "magnitude" && opt.calib.empty())
    return Status::InvalidArgument(fmt::format("[prune] {} needs a calibration text (--calib FILE)", opt.method));
  if (out_path.empty()) return Status::InvalidArgument("[prune] no output path (--out)");
  if (file_exists(in_path) && !model::is_gguf_file(in_path))
    return Status::Unsupported(fmt::format("[prune] {} is not a GGUF file: prune reads GGUF models (F32, F16 or BF16 "
                                           "weights)", in_path));
  SLM_ASSIGN_OR_RETURN(auto in, io::GgufFile::open(in_path));
  Calibration cal;
  if (!opt.calib.empty()) {
    SLM_ASSIGN_OR_RETURN(cal, calibrate_file(in_path, opt.calib, opt.calib_opt, opt.calib_cb));
  }

  auto fn = [&](const std::string& name, const TensorView& v, TensorPlan& p) -> Result<std::optional<NewTensor>> {
    if (input_site(name).empty() || v.shape.size() != 2) return std::optional<NewTensor>{};
    const int64_t rows = v.rows(), cols = v.cols();
    if (m > 0 && cols % m != 0)
      return Status::InvalidArgument(fmt::format("[prune] {}: rows of {} inputs are not whole groups of {} ({})", name,
                                                 cols, m, opt.pattern));
    SLM_ASSIGN_OR_RETURN(auto w, float_weights(name, v));
    const InputStats* s = cal.for_weight(name);
    if (!opt.calib.empty() && s == nullptr)
      return Status::Internal(fmt::format("[prune] calibration saw no input of {}", name));
    std::vector<float> out = w;
    if (opt.method == "sparsegpt") {
      SLM_RETURN_IF_ERROR(sparsegpt(out, rows, cols, s->xtx, opt.sparsity, n_of, m, opt.obs).status());
    } else {
      const auto mask = prune_mask(w, rows, cols, opt.method == "wanda" ? s->norms() : std::vector<float>{},
                                   opt.sparsity, n_of, m);
      for (size_t i = 0; i < out.size(); ++i)
        if (mask[i]) out[i] = 0;
    }
    int64_t zeros = 0;
    double err2 = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      zeros += out[i] == 0;
      err2 += (static_cast<double>(w[i]) - out[i]) * (static_cast<double>(w[i]) - out[i]);
    }
    p.zeros = static_cast<double>(zeros) / static_cast<double>(out.size());
    p.rmse = std::sqrt(err2 / static_cast<double>(out.size()));
    if (s != nullptr) p.err = output_error(w, out, rows, cols, s->xtx);
    NewTensor nt{io::ggml_from_dtype(DType::kF32), std::vector<uint8_t>(out.size() * sizeof(float))};
    std::memcpy(nt.bytes.data(), out.data(), nt.bytes.size());
    return std::optional<NewTensor>(std::move(nt));
  };
  return rewrite_gguf(*in, out_path, {}, fn, cb);
}

}  // namespace slm::compress
