#include "slm/compress/awq.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "rewrite.h"
#include "slm/compress/obs.h"

namespace slm::compress {

namespace {

// The weights that read each site, by the site's suffix.
const std::map<std::string, std::vector<std::string>>& readers() {
  static const std::map<std::string, std::vector<std::string>> kReaders = {
      {"attn_in", {"attn_q", "attn_k", "attn_v"}}, {"ffn_in", {"ffn_gate", "ffn_up"}}, {"ffn_down", {"ffn_down"}},
      {"output", {"output"}}};
  return kReaders;
}

}  // namespace

Result<std::map<std::string, AwqSite>> awq_search(const io::GgufFile& in, const Calibration& cal, const QuantFormat& f) {
  const auto arch = in.get_string("general.architecture");
  if (!arch || (*arch != "llama" && *arch != "mistral" && *arch != "qwen2"))
    return Status::Unsupported(fmt::format("[awq] folds scales into RMSNorm weights of Llama-family models, not {}",
                                           arch ? *arch : "an unnamed architecture"));
  const int64_t qk = f.block();
  std::map<std::string, AwqSite> out;
  for (const auto& [site, stats] : cal.sites) {
    const std::string suffix = site.substr(site.rfind('.') + 1), prefix = site.substr(0, site.rfind('.') + 1);
    auto rd = readers().find(suffix);
    if (rd == readers().end() || stats.n_tok == 0) continue;
    if (suffix == "output" && in.find_tensor("output.weight") == nullptr) continue;  // tied to the embedding
    struct W {
      std::vector<float> w;
      int64_t rows;
    };
    std::vector<W> ws;
    for (const std::string& r : rd->second) {
      auto v = in.tensor(prefix + r + ".weight");
      if (!v.ok()) return v.status();
      if (v->cols() != stats.n) return Status::Internal(fmt::format("[awq] {}{} reads {} inputs, calibration saw {}", prefix, r, v->cols(), stats.n));
      SLM_ASSIGN_OR_RETURN(auto w, float_weights(prefix + r + ".weight", *v));
      ws.push_back({std::move(w), v->rows()});
    }
    const int64_t n = stats.n;
    if (n % qk != 0) continue;
    std::vector<double> rms(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
      rms[j] = std::max(1e-8, std::sqrt(stats.xtx[static_cast<size_t>(j * n + j)] / static_cast<double>(stats.n_tok)));
    AwqSite best;
    double best_err = -1;
    for (int g = 0; g < 20; ++g) {
      const double alpha = g / 20.0;
      std::vector<float> s(static_cast<size_t>(n));
      double lo = INFINITY, hi = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double v = std::pow(rms[j], alpha);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        s[j] = static_cast<float>(v);
      }
      for (float& e : s) e = static_cast<float>(e / std::sqrt(lo * hi));
      double err = 0;
      for (const W& w : ws) {
        std::vector<float> x(w.w.size()), y(w.w.size());
        for (int64_t r = 0; r < w.rows; ++r)
          for (int64_t j = 0; j < n; ++j) x[r * n + j] = w.w[r * n + j] * s[j];
        for (int64_t r = 0; r < w.rows; ++r) rtn_roundtrip(f, &x[r * n], &y[r * n], n);
        for (int64_t r = 0; r < w.rows; ++r)
          for (int64_t j = 0; j < n; ++j) y[r * n + j] /= s[j];
        err += output_error(w.w, y, w.rows, n, stats.xtx);
      }
      if (best_err < 0 || err < best_err) {
        best_err = err;
        best.scale = std::move(s);
        best.alpha = alpha;
      }
    }
    out[site] = std::move(best);
  }
  return out;
}

void awq_clip(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h, const QuantFormat& f) {
  if (!has_groups(f)) return;
  const int64_t gs = f.group_size(cols);
  constexpr int kRatios = 10;  // 1 - i / 20: down to 0.55, as the reference's max_shrink 0.5 grid of 20
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> orig, c, y;
    for (int64_t g0 = 0; g0 < cols; g0 += gs) {
      const int64_t len = std::min(gs, cols - g0);
      float* x = &w[static_cast<size_t>(r * cols + g0)];
      orig.assign(x, x + len);
      c.resize(static_cast<size_t>(len));
      y.resize(static_cast<size_t>(len));
      float amax = 0;
      for (float v : orig) amax = std::max(amax, std::fabs(v));
      if (amax == 0) continue;
      double best = -1;
      float best_lim = amax;
      for (int i = 0; i < kRatios; ++i) {
        const float lim = amax * (1 - static_cast<float>(i) / 20);
        for (int64_t j = 0; j < len; ++j) c[j] = std::clamp(orig[j], -lim, lim);
        rtn_roundtrip(f, c.data(), y.data(), len);
        double err = 0;
        for (int64_t a = 0; a < len; ++a) {
          const double da = static_cast<double>(orig[a]) - y[a];
          if (da == 0) continue;
          const double* ha = &h[static_cast<size_t>((g0 + a) * cols + g0)];
          double s = 0;
          for (int64_t b = 0; b < len; ++b) s += ha[b] * (static_cast<double>(orig[b]) - y[b]);
          err += da * s;
        }
        if (best < 0 || err < best) best = err, best_lim = lim;
      }
      for (int64_t j = 0; j < len; ++j) x[j] = std::clamp(orig[j], -best_lim, best_lim);
    }
  }
}

}  // namespace slm::compress
