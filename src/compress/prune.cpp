#include "slm/compress/prune.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <map>
#include <numeric>
#include <optional>

#include <fmt/format.h>

#include "rewrite.h"
#include "slm/model/model_source.h"

namespace slm::compress {

namespace {

// The tensor keeping only the listed rows (a 1-D tensor's elements) or, by_cols, columns.
NewTensor take(const std::vector<float>& x, const TensorView& v, const std::vector<int64_t>& idx, bool by_cols) {
  std::vector<float> y;
  std::vector<int64_t> shape = v.shape;
  const int64_t cols = v.shape.size() == 1 ? 1 : v.cols();
  if (by_cols) {
    for (int64_t r = 0; r < v.rows(); ++r)
      for (int64_t c : idx) y.push_back(x[static_cast<size_t>(r * cols + c)]);
    shape.back() = static_cast<int64_t>(idx.size());
  } else {
    for (int64_t r : idx) y.insert(y.end(), x.begin() + r * cols, x.begin() + (r + 1) * cols);
    shape[0] = static_cast<int64_t>(idx.size());
  }
  return f32_tensor(y, std::move(shape));
}

// Per input channel c of a matrix (rows, n) reading site s: ||X_c|| * ||W[:, c]||,
// Wanda's score summed over the channel's weights: its expected contribution to the output.
Result<std::vector<double>> channel_scores(const io::GgufFile& in, const Calibration& cal, const std::string& weight) {
  auto v = in.tensor(weight);
  if (!v.ok()) return v.status();
  SLM_ASSIGN_OR_RETURN(auto w, float_weights(weight, *v));
  const InputStats* s = cal.for_weight(weight);
  const int64_t n = v->cols();
  if (s == nullptr || s->n != n)
    return Status::InvalidArgument(fmt::format("[prune] {}: {} inputs, calibration saw {}", weight, n, s ? s->n : 0));
  const std::vector<float> xn = s->norms();
  std::vector<double> score(static_cast<size_t>(n), 0.0);
  for (int64_t r = 0; r < v->rows(); ++r)
    for (int64_t c = 0; c < n; ++c) score[c] += static_cast<double>(w[r * n + c]) * w[r * n + c];
  for (int64_t c = 0; c < n; ++c) score[c] = std::sqrt(score[c]) * xn[c];
  return score;
}

// The indices of the k largest scores, ascending.
std::vector<int64_t> top_k(const std::vector<double>& score, int64_t k) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Structured: each layer keeps the same number of feed-forward channels, the
// ones of largest ||X_c|| * ||W_down[:, c]|| (Wanda's score summed over the
// channel's output weights: its expected contribution to the block's output).
Result<QuantizeReport> prune_ffn_channels(const io::GgufFile& in, const std::string& out_path, const Calibration& cal,
                                          double sparsity, const QuantizeCallback& cb) {
  const auto arch = in.get_string("general.architecture");
  if (!arch) return Status::InvalidArgument("[prune] the model names no general.architecture");
  const std::string ff_key = *arch + ".feed_forward_length";
  const io::GgufValue* ffv = in.find(ff_key);
  if (ffv == nullptr) return Status::InvalidArgument(fmt::format("[prune] the model has no {}", ff_key));
  int64_t n_ff = 0;
  for (const auto& ti : in.tensors())
    if (ti.name == "blk.0.ffn_down.weight") n_ff = ti.shape.back();
  if (n_ff == 0) return Status::InvalidArgument("[prune] --method ffn: the model has no blk.0.ffn_down.weight");
  // Kept channels: whole blocks of 32 where n_ff is, so the model still quantizes.
  int64_t keep = static_cast<int64_t>(std::llround(static_cast<double>(n_ff) * (1 - sparsity)));
  if (n_ff % 32 == 0) keep = std::max<int64_t>(32, keep / 32 * 32);
  keep = std::clamp<int64_t>(keep, 1, n_ff);

  std::map<int, std::vector<int64_t>> kept;  // per layer, ascending
  auto channels = [&](const std::string& layer_prefix, int layer) -> Result<const std::vector<int64_t>*> {
    auto it = kept.find(layer);
    if (it != kept.end()) return &it->second;
    SLM_ASSIGN_OR_RETURN(auto score, channel_scores(in, cal, layer_prefix + "ffn_down.weight"));
    if (static_cast<int64_t>(score.size()) != n_ff)
      return Status::InvalidArgument(fmt::format("[prune] {}ffn_down has {} channels, layer 0 {}", layer_prefix,
                                                 score.size(), n_ff));
    return &(kept[layer] = top_k(score, keep));
  };

  auto fn = [&](const std::string& name, const TensorView& v, TensorPlan& p) -> Result<std::optional<NewTensor>> {
    const size_t dot = name.find('.', 4);
    if (name.rfind("blk.", 0) != 0 || dot == std::string::npos) return std::optional<NewTensor>{};
    const std::string prefix = name.substr(0, dot + 1), rest = name.substr(dot + 1);
    const bool rows_are_channels = rest == "ffn_gate.weight" || rest == "ffn_up.weight" || rest == "ffn_gate.bias" ||
                                   rest == "ffn_up.bias";
    if (!rows_are_channels && rest != "ffn_down.weight") return std::optional<NewTensor>{};
    SLM_ASSIGN_OR_RETURN(const std::vector<int64_t>* ch, channels(prefix, std::atoi(name.c_str() + 4)));
    SLM_ASSIGN_OR_RETURN(auto x, float_weights(name, v));
    p.zeros = 1 - static_cast<double>(keep) / static_cast<double>(n_ff);  // the share removed
    return std::optional<NewTensor>(take(x, v, *ch, !rows_are_channels));
  };
  return rewrite_gguf(in, out_path, {{ff_key, static_cast<uint32_t>(keep)}}, fn, cb);
}

// Structured: each layer keeps the same number of key/value heads (each with
// the query heads that share it), those whose attention output channels
// score highest (channel_scores of attn_output, summed over the group).
Result<QuantizeReport> prune_heads(const io::GgufFile& in, const std::string& out_path, const Calibration& cal,
                                   double sparsity, const QuantizeCallback& cb) {
  const auto arch = in.get_string("general.architecture");
  if (!arch) return Status::InvalidArgument("[prune] the model names no general.architecture");
  const std::string a = *arch + ".";
  const int64_t n_head = in.get_int(a + "attention.head_count").value_or(0);
  const int64_t n_kv = in.get_int(a + "attention.head_count_kv").value_or(n_head);
  const int64_t n_embd = in.get_int(a + "embedding_length").value_or(0);
  if (n_head <= 0 || n_kv <= 0 || n_head % n_kv != 0 || n_embd <= 0)
    return Status::InvalidArgument(fmt::format("[prune] --method heads: {} heads, {} KV heads, width {}", n_head, n_kv, n_embd));
  const int64_t hd = in.get_int(a + "attention.key_length").value_or(n_embd / n_head), group = n_head / n_kv;
  const int64_t keep = n_kv - std::llround(static_cast<double>(n_kv) * sparsity);
  if (keep < 1)
    return Status::InvalidArgument(fmt::format("[prune] --sparsity {} would remove all {} KV heads", sparsity, n_kv));

  struct Kept {
    std::vector<int64_t> q, kv;  // rows of attn_q (columns of attn_output), rows of attn_k / attn_v
  };
  std::map<std::string, Kept> kept;  // by layer prefix
  auto heads = [&](const std::string& prefix) -> Result<const Kept*> {
    auto it = kept.find(prefix);
    if (it != kept.end()) return &it->second;
    SLM_ASSIGN_OR_RETURN(auto score, channel_scores(in, cal, prefix + "attn_output.weight"));
    if (static_cast<int64_t>(score.size()) != n_head * hd)
      return Status::InvalidArgument(fmt::format("[prune] {}attn_output reads {} values, not {} heads of {}", prefix,
                                                 score.size(), n_head, hd));
    std::vector<double> g_score(static_cast<size_t>(n_kv), 0.0);
    for (int64_t c = 0; c < n_head * hd; ++c) g_score[static_cast<size_t>(c / hd / group)] += score[static_cast<size_t>(c)];
    Kept k;
    for (int64_t g : top_k(g_score, keep)) {
      for (int64_t d = 0; d < hd; ++d) k.kv.push_back(g * hd + d);
      for (int64_t d = 0; d < group * hd; ++d) k.q.push_back(g * group * hd + d);
    }
    return &(kept[prefix] = std::move(k));
  };
  auto fn = [&](const std::string& name, const TensorView& v, TensorPlan& p) -> Result<std::optional<NewTensor>> {
    const size_t dot = name.find('.', 4);
    if (name.rfind("blk.", 0) != 0 || dot == std::string::npos) return std::optional<NewTensor>{};
    const std::string prefix = name.substr(0, dot + 1), rest = name.substr(dot + 1);
    const std::string base = rest.substr(0, rest.find('.'));
    if (base == "attn_qkv")
      return Status::Unsupported(fmt::format("[prune] --method heads: {} is a fused projection", name));
    if (base != "attn_q" && base != "attn_k" && base != "attn_v" && rest != "attn_output.weight")
      return std::optional<NewTensor>{};
    SLM_ASSIGN_OR_RETURN(const Kept* k, heads(prefix));
    SLM_ASSIGN_OR_RETURN(auto x, float_weights(name, v));
    p.zeros = 1 - static_cast<double>(keep) / static_cast<double>(n_kv);
    if (rest == "attn_output.weight") return std::optional<NewTensor>(take(x, v, k->q, true));
    return std::optional<NewTensor>(take(x, v, base == "attn_q" ? k->q : k->kv, false));
  };
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  return rewrite_gguf(in, out_path,
                      {{a + "attention.head_count", u32(keep * group)}, {a + "attention.head_count_kv", u32(keep)},
                       {a + "attention.key_length", u32(hd)}, {a + "attention.value_length", u32(hd)}},
                      fn, cb);
}

// Structured: whole layers, those of least Block Influence, leave; the
// others are renumbered in order.
Result<QuantizeReport> prune_layers(const io::GgufFile& in, const std::string& out_path, const Calibration& cal,
                                    double sparsity, const QuantizeCallback& cb) {
  const auto arch = in.get_string("general.architecture");
  if (!arch) return Status::InvalidArgument("[prune] the model names no general.architecture");
  const int64_t n_layer = static_cast<int64_t>(cal.layer_influence.size());
  const int64_t n_drop = std::llround(static_cast<double>(n_layer) * sparsity);
  if (n_drop >= n_layer)
    return Status::InvalidArgument(fmt::format("[prune] --sparsity {} would remove all {} layers", sparsity, n_layer));
  std::vector<int64_t> order(static_cast<size_t>(n_layer));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return cal.layer_influence[static_cast<size_t>(a)] < cal.layer_influence[static_cast<size_t>(b)];
  });
  std::vector<int64_t> new_index(static_cast<size_t>(n_layer), -1);
  std::vector<bool> drop(static_cast<size_t>(n_layer), false);
  for (int64_t i = 0; i < n_drop; ++i) drop[static_cast<size_t>(order[static_cast<size_t>(i)])] = true;
  for (int64_t l = 0, k = 0; l < n_layer; ++l)
    if (!drop[static_cast<size_t>(l)]) new_index[static_cast<size_t>(l)] = k++;

  auto fn = [&](const std::string& name, const TensorView& v, TensorPlan& p) -> Result<std::optional<NewTensor>> {
    const size_t dot = name.find('.', 4);
    if (name.rfind("blk.", 0) != 0 || dot == std::string::npos) return std::optional<NewTensor>{};
    const int64_t l = std::atoi(name.c_str() + 4);
    if (l < 0 || l >= n_layer) return Status::InvalidArgument(fmt::format("[prune] {}: layer outside [0, {})", name, n_layer));
    p.zeros = drop[static_cast<size_t>(l)] ? 1.0 : 0.0;
    NewTensor nt;
    nt.drop = drop[static_cast<size_t>(l)];
    if (nt.drop) return std::optional<NewTensor>(std::move(nt));
    nt.ggml_type = io::ggml_from_dtype(v.dtype);
    const auto* b = static_cast<const uint8_t*>(v.data);
    nt.bytes.assign(b, b + v.nbytes);
    nt.name = fmt::format("blk.{}.{}", new_index[static_cast<size_t>(l)], name.substr(dot + 1));
    return std::optional<NewTensor>(std::move(nt));
  };
  return rewrite_gguf(in, out_path, {{*arch + ".block_count", static_cast<uint32_t>(n_layer - n_drop)}}, fn, cb);
}

}  // namespace

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
  const bool structured = opt.method == "ffn" || opt.method == "heads" || opt.method == "layers";
  if (opt.method != "magnitude" && opt.method != "wanda" && opt.method != "sparsegpt" && !structured)
    return Status::InvalidArgument(
        fmt::format("[prune] --method '{}' is unknown (magnitude, wanda, sparsegpt, ffn, heads, layers)", opt.method));
  if (structured && !opt.pattern.empty())
    return Status::InvalidArgument(fmt::format("[prune] --method {} removes whole parts: no --pattern", opt.method));
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

  if (structured) {
    SLM_ASSIGN_OR_RETURN(cal, calibrate_file(in_path, opt.calib, opt.calib_opt, opt.calib_cb));
  }
  if (opt.method == "ffn") return prune_ffn_channels(*in, out_path, cal, opt.sparsity, cb);
  if (opt.method == "heads") return prune_heads(*in, out_path, cal, opt.sparsity, cb);
  if (opt.method == "layers") return prune_layers(*in, out_path, cal, opt.sparsity, cb);

  auto one = [&](const std::string& name, const TensorView& v, const InputStats* s, TensorPlan& p,
                 std::vector<float>* values) -> Result<std::optional<NewTensor>> {
    if (input_site(name).empty() || v.shape.size() != 2) return std::optional<NewTensor>{};
    const int64_t rows = v.rows(), cols = v.cols();
    if (m > 0 && cols % m != 0)
      return Status::InvalidArgument(fmt::format("[prune] {}: rows of {} inputs are not whole groups of {} ({})", name,
                                                 cols, m, opt.pattern));
    SLM_ASSIGN_OR_RETURN(auto w, float_weights(name, v));
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
    NewTensor nt = f32_tensor(out);
    if (values != nullptr) *values = std::move(out);
    return std::optional<NewTensor>(std::move(nt));
  };
  // Layer by layer, each from the outputs of the pruned layers before it (as
  // SparseGPT and Wanda do); magnitude needs no calibration (with it: errors).
  Sequential seq;
  if (!opt.calib.empty()) {
    SLM_ASSIGN_OR_RETURN(cal, calibrate_sequential(*in, in_path, opt.calib, opt.calib_opt, opt.calib_cb, one, &seq));
  }
  return rewrite_gguf(*in, out_path, {}, with_sequential(seq, cal, one), cb);
}

}  // namespace slm::compress
