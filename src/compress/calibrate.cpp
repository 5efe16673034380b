#include "slm/compress/calibrate.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "slm/compress/eval.h"
#include "slm/engine/session.h"
#include "slm/model/kv_cache.h"
#include "slm/model/model_source.h"

namespace slm::compress {

std::vector<float> InputStats::norms() const {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) v[static_cast<size_t>(j)] = static_cast<float>(std::sqrt(xtx[static_cast<size_t>(j * n + j)]));
  return v;
}

std::string input_site(const std::string& tensor) {
  static const std::pair<const char*, const char*> kSite[] = {
      {"attn_q", "attn_in"},  {"attn_k", "attn_in"}, {"attn_v", "attn_in"},    {"attn_output", "attn_output"},
      {"ffn_gate", "ffn_in"}, {"ffn_up", "ffn_in"},  {"ffn_down", "ffn_down"}};
  const size_t dot = tensor.find('.', 4);
  if (tensor.rfind("blk.", 0) != 0 || dot == std::string::npos) return "";
  const std::string rest = tensor.substr(dot + 1);
  for (const auto& [weight, site] : kSite)
    if (rest == std::string(weight) + ".weight") return tensor.substr(0, dot + 1) + site;
  return "";
}

const InputStats* Calibration::for_weight(const std::string& tensor) const {
  auto it = sites.find(tensor == "output.weight" ? std::string("output") : input_site(tensor));
  return it == sites.end() ? nullptr : &it->second;
}

Result<Calibration> calibrate(model::Model& m, const std::vector<int32_t>& tokens, int32_t bos,
                              const CalibrationOptions& opt, const CalibrationCallback& cb,
                              const std::function<Status(int64_t layer, const Calibration& cal)>& compress) {
  const int64_t n_ctx = opt.n_ctx, n_tok = static_cast<int64_t>(tokens.size());
  if (n_ctx < 2) return Status::InvalidArgument(fmt::format("[calibrate] window of {} tokens (at least 2)", n_ctx));
  if (n_tok < n_ctx)
    return Status::InvalidArgument(fmt::format(
        "[calibrate] the calibration text has {} tokens, fewer than one window of {}: give a longer --calib file",
        n_tok, n_ctx));
  for (int64_t i = 0; i < n_tok; ++i)
    if (tokens[static_cast<size_t>(i)] < 0 || tokens[static_cast<size_t>(i)] >= m.config().n_vocab)
      return Status::InvalidArgument(fmt::format("[calibrate] token {} at {} is outside the vocabulary of {}",
                                                 tokens[static_cast<size_t>(i)], i, m.config().n_vocab));
  const int64_t n_windows = std::max<int64_t>(1, std::min(n_tok, opt.max_tokens) / n_ctx);
  const int64_t n_layer = m.config().n_layer, D = m.config().n_embd;

  Calibration cal;
  bool observing = true;  // off while a compressed layer computes the next one's inputs
  m.set_observer([&](int64_t layer, const char* which, const float* x, int64_t rows, int64_t n) {
    if (!observing) return;
    InputStats& s = cal.sites[std::string(which) == "output" ? std::string("output") : fmt::format("blk.{}.{}", layer, which)];
    if (s.n == 0) {
      s.n = n;
      s.xtx.assign(static_cast<size_t>(n * n), 0.0);
    }
    s.n_tok += rows;
    // Lower triangle here, mirrored after the layer's pass: H is symmetric.
#pragma omp parallel for schedule(dynamic, 16) if (n * n * rows > (int64_t{1} << 20))
    for (int64_t i = 0; i < n; ++i) {
      double* hi = &s.xtx[static_cast<size_t>(i * n)];
      for (int64_t t = 0; t < rows; ++t) {
        const float* xt = x + t * n;
        const double xi = xt[i];
        if (xi == 0) continue;
        for (int64_t j = 0; j <= i; ++j) hi[j] += xi * xt[j];
      }
    }
  });
  struct Clear {
    model::Model& m;
    ~Clear() { m.set_observer({}); }
  } clear{m};

  // Layer by layer over all windows (their hidden states kept), so that a
  // layer can be compressed before the next one sees its outputs.
  SLM_ASSIGN_OR_RETURN(auto kv, model::KvCache::create(m.config(), 0, n_layer, 1, n_ctx, DType::kF32));
  std::vector<std::vector<model::BatchToken>> batches(static_cast<size_t>(n_windows));
  std::vector<std::vector<float>> hidden(static_cast<size_t>(n_windows));
  for (int64_t w = 0; w < n_windows; ++w) {
    auto& batch = batches[static_cast<size_t>(w)];
    batch.resize(static_cast<size_t>(n_ctx));
    for (int64_t j = 0; j < n_ctx; ++j) {
      batch[static_cast<size_t>(j)].token = (j == 0 && bos >= 0) ? bos : tokens[static_cast<size_t>(w * n_ctx + j)];
      batch[static_cast<size_t>(j)].pos = j;
    }
    hidden[static_cast<size_t>(w)].resize(static_cast<size_t>(n_ctx * D));
    SLM_RETURN_IF_ERROR(m.embed(batch, hidden[static_cast<size_t>(w)].data()));
  }
  auto run = [&](int64_t l, int64_t w, float* h) {
    kv->set_length(0, 0);
    return m.forward_layers(batches[static_cast<size_t>(w)], l, l + 1, h, *kv)
        .with_context(fmt::format("[calibrate] layer {}, window {}", l, w));
  };
  cal.layer_influence.assign(static_cast<size_t>(n_layer), 0.0);
  std::vector<float> out;
  for (int64_t l = 0; l < n_layer; ++l) {
    for (int64_t w = 0; w < n_windows; ++w) {
      std::vector<float>& h = hidden[static_cast<size_t>(w)];
      out = h;
      SLM_RETURN_IF_ERROR(run(l, w, out.data()));
      for (int64_t t = 0; t < n_ctx; ++t) {
        double ab = 0, aa = 0, bb = 0;
        for (int64_t d = 0; d < D; ++d) {
          const double a = h[static_cast<size_t>(t * D + d)], b = out[static_cast<size_t>(t * D + d)];
          ab += a * b, aa += a * a, bb += b * b;
        }
        cal.layer_influence[static_cast<size_t>(l)] +=
            (1 - ab / std::sqrt(std::max(aa * bb, 1e-30))) / static_cast<double>(n_windows * n_ctx);
      }
      if (!compress) h.swap(out);
    }
    cal.n_tokens = n_windows * n_ctx;
    for (const char* which : {"attn_in", "attn_output", "ffn_in", "ffn_down"}) {
      auto it = cal.sites.find(fmt::format("blk.{}.{}", l, which));
      if (it == cal.sites.end()) continue;
      InputStats& s = it->second;
      for (int64_t i = 0; i < s.n; ++i)
        for (int64_t j = i + 1; j < s.n; ++j) s.xtx[static_cast<size_t>(i * s.n + j)] = s.xtx[static_cast<size_t>(j * s.n + i)];
    }
    if (compress) {
      SLM_RETURN_IF_ERROR(compress(l, cal));
      observing = false;  // the next layer's inputs, through the compressed layer
      for (int64_t w = 0; w < n_windows; ++w) SLM_RETURN_IF_ERROR(run(l, w, hidden[static_cast<size_t>(w)].data()));
      observing = true;
    }
    if (cb) cb(l + 1, n_layer);
  }
  // The output projection's input: the final norm of the last hidden states
  // (through the compressed layers, when compressing).
  std::vector<float> logits;
  for (int64_t w = 0; w < n_windows && !m.config().is_encoder(); ++w) {
    std::vector<model::BatchToken> batch = batches[static_cast<size_t>(w)];
    for (auto& t : batch) t.logits = true;
    m.output(batch, hidden[static_cast<size_t>(w)].data(), &logits);
  }
  auto out_site = cal.sites.find("output");
  if (out_site != cal.sites.end()) {
    InputStats& s = out_site->second;
    for (int64_t i = 0; i < s.n; ++i)
      for (int64_t j = i + 1; j < s.n; ++j) s.xtx[static_cast<size_t>(i * s.n + j)] = s.xtx[static_cast<size_t>(j * s.n + i)];
  }
  return cal;
}
Result<Calibration> calibrate_file(const std::string& model_path, const std::string& calib_path,
                                   const CalibrationOptions& opt, const CalibrationCallback& cb,
                                   const LayerCompressor& compress) {
  SLM_ASSIGN_OR_RETURN(auto src, model::ModelSource::open(model_path));
  SLM_ASSIGN_OR_RETURN(auto tok, engine::open_tokenizer(model_path));
  SLM_ASSIGN_OR_RETURN(auto ids, tokenize_file(*tok, calib_path));
  model::Weights w = src->weights();  // views the compressor may point at its results
  model::Model m(src->config(), w);
  CalibrationOptions o = opt;  // windows no longer than the model's context
  if (src->config().n_ctx_train > 0) o.n_ctx = std::min(o.n_ctx, src->config().n_ctx_train);
  std::function<Status(int64_t, const Calibration&)> per_layer;
  if (compress)
    per_layer = [&](int64_t l, const Calibration& cal) { return compress(l, cal, w.layers[static_cast<size_t>(l)]); };
  auto r = calibrate(m, ids, tok->bos(), o, cb, per_layer);
  if (!r.ok()) return r.status().with_context(calib_path);
  return r;
}

}  // namespace slm::compress
