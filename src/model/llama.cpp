#include "slm/model/llama.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "slm/core/assert.h"
#include "slm/kernels/attention.h"
#include "slm/kernels/ops.h"
#include "slm/kernels/quant.h"

namespace slm::model {

namespace k = slm::kernels;

namespace {
std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  k::dequantize_row_ref(t.dtype, t.data, v.data(), t.numel());
  return v;
}
}  // namespace

Model::Model(const ModelConfig& cfg, const Weights& w, const ModelOptions& opt)
    : cfg_(cfg),
      own_(opt.repack ? w : Weights{}),
      w_(opt.repack ? own_ : w),
      freqs_short_(cfg.rope_freqs(0)),
      freqs_long_(cfg.rope_freqs(INT64_MAX)),
      rope_mscale_(cfg.rope_attn_factor()),
      embd_norm_(make_norm(w.embd_norm, w.embd_norm_b)),
      output_norm_(make_norm(w.output_norm, w.output_norm_b)) {
  for (const LayerWeights& L : w_.layers) {
    attn_norm_.push_back(make_norm(L.attn_norm, L.attn_norm_b));
    ffn_norm_.push_back(make_norm(L.ffn_norm, L.ffn_norm_b));
  }
  if (opt.repack) {
    // In the order forward reads them, in one buffer: the kernels'
    // prefetching runs from one matrix on into the next.
    std::vector<TensorView*> mats;
    for (LayerWeights& L : own_.layers)
      for (TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) mats.push_back(t);
    mats.push_back(&own_.output);
    std::vector<int64_t> bytes;
    for (TensorView* t : mats) {
      bytes.push_back(t->data != nullptr ? k::repacked_bytes(*t) : 0);
      repacked_bytes_ += (bytes.back() + 63) / 64 * 64;
    }
    if (repacked_bytes_ > 0) {
      repacked_.reset(static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(repacked_bytes_))));
      SLM_ASSERT(repacked_ != nullptr);
      uint8_t* at = repacked_.get();
      for (size_t i = 0; i < mats.size(); ++i) {
        if (bytes[i] == 0) continue;
        *mats[i] = k::repack(*mats[i], at);
        at += (bytes[i] + 63) / 64 * 64;
      }
    }
  }
  if (w_.rope_freqs.data != nullptr) {  // Llama 3 GGUF: per-pair divisors
    std::vector<float> div = to_f32(w_.rope_freqs);
    for (size_t i = 0; i < div.size(); ++i) {
      freqs_short_[i] /= div[i];
      freqs_long_[i] /= div[i];
    }
  }
}

Model::Norm Model::make_norm(const TensorView& w, const TensorView& b) const {
  Norm n;
  if (w.data == nullptr) return n;
  n.w = to_f32(w);
  if (cfg_.norm_plus_one && !cfg_.norm_plus_one_stored)
    for (float& e : n.w) e += 1.0f;
  if (b.data != nullptr) n.b = to_f32(b);
  return n;
}

void Model::norm(const Norm& n, const float* x, float* out, int64_t n_tok) const {
  const int64_t D = cfg_.n_embd;
  for (int64_t t = 0; t < n_tok; ++t) {
    if (cfg_.norm == NormType::kLayerNorm)
      k::layernorm(x + t * D, n.w.data(), n.b.empty() ? nullptr : n.b.data(), cfg_.norm_eps, out + t * D, D);
    else
      k::rmsnorm(x + t * D, n.w.data(), cfg_.norm_eps, out + t * D, D);
  }
}

void Model::linear(const TensorView& w, const TensorView& b, const float* x, int64_t n_tok, float* y,
                   const k::RowPrep& prep) const {
  k::matmul(w, x, n_tok, y, prep);
  if (b.data != nullptr) k::add_bias(b, y, n_tok);
}

void Model::linear_shared(std::span<const TensorView* const> w, std::span<const TensorView* const> b, const float* x,
                          int64_t n_tok, std::span<float* const> y, const k::RowPrep& prep) const {
  k::matmul_shared(w, x, n_tok, y, prep);
  for (size_t i = 0; i < b.size(); ++i)
    if (b[i]->data != nullptr) k::add_bias(*b[i], y[i], n_tok);
}

Status Model::check_batch(const std::vector<BatchToken>& batch, const KvCache* kv) const {
  if (batch.empty()) return Status::InvalidArgument("[forward] empty batch");
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& t = batch[i];
    if (t.token < 0 || t.token >= cfg_.n_vocab)
      return Status::InvalidArgument(fmt::format("[forward] token {} at batch index {} is outside the vocabulary [0, {})",
                                                 t.token, i, cfg_.n_vocab));
    if (t.type < 0 || t.type >= std::max<int64_t>(1, cfg_.n_token_types))
      return Status::InvalidArgument(fmt::format("[forward] token type {} at batch index {} is outside [0, {})", t.type,
                                                 i, std::max<int64_t>(1, cfg_.n_token_types)));
    if (cfg_.learned_pos && t.pos >= cfg_.n_ctx_train)
      return Status::InvalidArgument(fmt::format("[forward] position {} at batch index {} is past the {} learned positions",
                                                 t.pos, i, cfg_.n_ctx_train));
    if (kv != nullptr) {
      if (t.seq < 0 || t.seq >= kv->n_seq())
        return Status::InvalidArgument(fmt::format("[forward] sequence slot {} at batch index {} is outside [0, {})",
                                                   t.seq, i, kv->n_seq()));
      if (t.pos < 0 || t.pos >= kv->n_ctx())
        return Status::InvalidArgument(fmt::format("[forward] position {} at batch index {} is outside the context [0, {})",
                                                   t.pos, i, kv->n_ctx()));
    }
  }
  if (kv == nullptr) return Status::Ok();
  // Per sequence, positions continue without gaps: the first at most the slot's
  // length (a rewind overwrites), each next one more than the last.
  std::vector<int64_t> next(static_cast<size_t>(kv->n_seq()), -1);
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& t = batch[i];
    int64_t& want = next[static_cast<size_t>(t.seq)];
    if (want < 0 ? t.pos > kv->length(t.seq) : t.pos != want)
      return Status::InvalidArgument(fmt::format(
          "[forward] position {} of sequence {} at batch index {} leaves a gap or repeats (expected {})", t.pos, t.seq, i,
          want < 0 ? fmt::format("at most {}", kv->length(t.seq)) : std::to_string(want)));
    if (want < 0 && t.pos > 0 && t.pos < kv->min_rewind(t.seq))
      return Status::InvalidArgument(fmt::format(
          "[forward] position {} of sequence {} at batch index {} rewinds past what the sliding-window cache still "
          "holds (from position {}, or restart at 0)", t.pos, t.seq, i, kv->min_rewind(t.seq)));
    want = t.pos + 1;
  }
  return Status::Ok();
}

Status Model::embed(const std::vector<BatchToken>& batch, float* hidden) const {
  SLM_RETURN_IF_ERROR(check_batch(batch, nullptr));
  const int64_t D = cfg_.n_embd;
  std::vector<float> row(static_cast<size_t>(D));
  for (size_t i = 0; i < batch.size(); ++i) {
    float* h = hidden + i * D;
    k::get_row(w_.token_embd, batch[i].token, h);
    if (cfg_.embd_scale != 1.0f)
      for (int64_t d = 0; d < D; ++d) h[d] *= cfg_.embd_scale;
    for (const auto& [table, r] : {std::pair{&w_.position_embd, batch[i].pos}, std::pair{&w_.token_types, int64_t{batch[i].type}}}) {
      if (table->data == nullptr) continue;
      k::get_row(*table, r, row.data());
      for (int64_t d = 0; d < D; ++d) h[d] += row[d];
    }
  }
  if (cfg_.embd_norm) norm(embd_norm_, hidden, hidden, static_cast<int64_t>(batch.size()));
  return Status::Ok();
}

void Model::attention(const std::vector<BatchToken>& batch, int64_t layer, float* q, float* kb, const float* vb,
                      const std::vector<float>& rope_cs, const std::vector<int64_t>& seq_end, KvCache& kv,
                      float* out) const {
  const int64_t n_tok = static_cast<int64_t>(batch.size());
  const int64_t hd = cfg_.head_dim, n_head = cfg_.n_head, n_kv = cfg_.n_head_kv, group = n_head / n_kv;
  const int64_t R = cfg_.n_rot, KV = n_kv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Threads only pay off past some work: tiny models would wait on barriers.
  const int64_t work = n_tok * n_head * hd * (cfg_.causal ? batch.back().pos + 1 : seq_end.back());
#pragma omp parallel if (work > (int64_t{1} << 16))
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tok; ++t) {
      const BatchToken& bt = batch[static_cast<size_t>(t)];
      if (R > 0) {
        const float* cs = &rope_cs[static_cast<size_t>(t * R)];
        for (int64_t h = 0; h < n_head; ++h) k::rope_apply(&q[(t * n_head + h) * hd], R, cs, cfg_.rope_interleaved);
        for (int64_t h = 0; h < n_kv; ++h) k::rope_apply(&kb[(t * n_kv + h) * hd], R, cs, cfg_.rope_interleaved);
      }
      kv.store(layer, bt.seq, bt.pos, &kb[t * KV], &vb[t * KV]);
    }
    // One task per (token, KV head): its query heads share every K/V row read.
#pragma omp for collapse(2) schedule(static)
    for (int64_t t = 0; t < n_tok; ++t) {
      for (int64_t h = 0; h < n_kv; ++h) {
        const BatchToken& bt = batch[static_cast<size_t>(t)];
        const int64_t lo = cfg_.sliding_window > 0 ? std::max<int64_t>(0, bt.pos - cfg_.sliding_window + 1) : 0;
        const int64_t hi = cfg_.causal ? bt.pos + 1 : seq_end[static_cast<size_t>(t)];
        k::AttentionArgs a;
        a.q = q + (t * n_head + h * group) * hd;
        a.group = static_cast<int>(group);
        a.head_dim = hd;
        a.k = kv.k(layer, bt.seq, h, lo);
        a.v = kv.v(layer, bt.seq, h, lo);
        a.kv_type = kv.type();
        a.row_bytes = static_cast<int64_t>(kv.head_bytes());
        a.n_pos = hi - lo;
        a.scale = scale;
        a.out = out + (t * n_head + h * group) * hd;
        k::attention(a);
      }
    }
  }
}

Status Model::forward_layers(const std::vector<BatchToken>& batch, int64_t begin, int64_t end, float* hidden,
                             KvCache& kv) const {
  SLM_RETURN_IF_ERROR(check_batch(batch, &kv));
  if (begin < 0 || end > cfg_.n_layer || begin > end)
    return Status::InvalidArgument(fmt::format("[forward_layers] layer range [{}, {}) is outside [0, {})", begin, end,
                                               cfg_.n_layer));
  if (begin < kv.layer_begin() || end > kv.layer_end())
    return Status::InvalidArgument(fmt::format("[forward_layers] layers [{}, {}) are not all in the KV cache's [{}, {})",
                                               begin, end, kv.layer_begin(), kv.layer_end()));
  const int64_t n_tok = static_cast<int64_t>(batch.size());
  if (kv.is_ring()) {
    // A ring holds window + chunk - 1 positions: feed at most chunk tokens of a sequence at a time.
    std::vector<int64_t> count(static_cast<size_t>(kv.n_seq()), 0);
    size_t start = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (++count[static_cast<size_t>(batch[i].seq)] <= kv.ring_chunk()) continue;
      const std::vector<BatchToken> part(batch.begin() + static_cast<long>(start), batch.begin() + static_cast<long>(i));
      SLM_RETURN_IF_ERROR(forward_layers(part, begin, end, hidden + start * cfg_.n_embd, kv));
      std::fill(count.begin(), count.end(), 0);
      count[static_cast<size_t>(batch[i].seq)] = 1;
      start = i;
    }
    if (start > 0) {
      const std::vector<BatchToken> rest(batch.begin() + static_cast<long>(start), batch.end());
      return forward_layers(rest, begin, end, hidden + start * cfg_.n_embd, kv);
    }
  }
  const int64_t D = cfg_.n_embd, hd = cfg_.head_dim, R = cfg_.n_rot;
  const int64_t Q = cfg_.n_head * hd, KV = cfg_.n_head_kv * hd, F = cfg_.n_ff;
  std::vector<float> x(n_tok * D), q(n_tok * Q), kb(n_tok * KV), vb(n_tok * KV), att(n_tok * Q), o(n_tok * D);
  std::vector<float> gate(cfg_.ffn_gated ? n_tok * F : 0), up(n_tok * F);
  // Each token's rotary cosines and sines, computed once for all layers and
  // heads; LongRoPE switches to its long factors once the batch reaches past
  // the original context (as Hugging Face does for each new token).
  std::vector<float> rope_cs(static_cast<size_t>(n_tok * R));
  int64_t max_pos = 0;
  for (const BatchToken& t : batch) max_pos = std::max(max_pos, t.pos);
  const std::vector<float>& freqs = max_pos + 1 > cfg_.rope_orig_ctx ? freqs_long_ : freqs_short_;
  for (int64_t t = 0; R > 0 && t < n_tok; ++t) {
    float* cs = &rope_cs[static_cast<size_t>(t * R)];
    k::rope_table(R, batch[static_cast<size_t>(t)].pos, freqs.data(), cs);
    if (rope_mscale_ != 1.0f)
      for (int64_t i = 0; i < R; ++i) cs[i] *= rope_mscale_;
  }
  // Encoders: each token sees its whole sequence, up to the last position the batch holds of it.
  std::vector<int64_t> seq_end;
  if (!cfg_.causal) {
    std::vector<int64_t> end(static_cast<size_t>(kv.n_seq()), 0);
    for (const BatchToken& t : batch) end[static_cast<size_t>(t.seq)] = std::max(end[static_cast<size_t>(t.seq)], t.pos + 1);
    for (const BatchToken& t : batch) seq_end.push_back(end[static_cast<size_t>(t.seq)]);
  }

  // The per-token work between matrix products (residual adds, norms, the
  // activation) goes into the next product's parallel region (RowPrep), a
  // thread per token, rather than running on one thread while the others
  // wait. An observer (calibration) sees each input whole before its product,
  // and post-norm blocks (BERT) norm the residual sum in place: for them it
  // runs first, as staged() does.
  const bool fuse = !observer_ && !cfg_.post_norm;
  auto staged = [&](const k::RowPrep& prep) -> k::RowPrep {
    if (fuse) return prep;
    for (int64_t t = 0; t < n_tok; ++t) prep(t);
    return {};
  };
  auto add_o = [&](int64_t t) {
    for (int64_t d = t * D; d < (t + 1) * D; ++d) hidden[d] += o[d];
  };
  auto activate = [&](int64_t t) {
    float* u = up.data() + t * F;
    if (cfg_.ffn_gated) {
      float* g = gate.data() + t * F;
      if (cfg_.act == Activation::kSilu) {
        k::swiglu(g, u, u, F);
      } else {
        cfg_.act == Activation::kGeluTanh ? k::gelu_tanh(g, F) : k::gelu(g, F);
        for (int64_t i = 0; i < F; ++i) u[i] *= g[i];
      }
    } else if (cfg_.act == Activation::kSilu) {
      for (int64_t i = 0; i < F; ++i) u[i] = u[i] / (1.0f + std::exp(-u[i]));
    } else {
      cfg_.act == Activation::kGeluTanh ? k::gelu_tanh(u, F) : k::gelu(u, F);
    }
  };
  bool pending = false;  // the last down projection's output, not yet added (fused)

  for (int64_t l = begin; l < end; ++l) {
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const size_t li = static_cast<size_t>(l);
    // Pre-norm blocks normalise the input of each sublayer; post-norm (BERT) the residual sum after it.
    const float* in = cfg_.post_norm ? hidden : x.data();
    k::RowPrep prep = staged([&, pending, li](int64_t t) {
      if (pending) add_o(t);
      if (!cfg_.post_norm) norm(attn_norm_[li], hidden + t * D, x.data() + t * D, 1);
    });
    if (observer_) observer_(l, "attn_in", in, n_tok, D);
    {
      const TensorView* w[] = {&L.wq, &L.wk, &L.wv};
      const TensorView* b[] = {&L.bq, &L.bk, &L.bv};
      float* y[] = {q.data(), kb.data(), vb.data()};
      linear_shared(w, b, in, n_tok, y, prep);
    }
    attention(batch, l, q.data(), kb.data(), vb.data(), rope_cs, seq_end, kv, att.data());
    if (observer_) observer_(l, "attn_output", att.data(), n_tok, Q);
    linear(L.wo, L.bo, att.data(), n_tok, o.data());
    if (cfg_.post_norm) {
      for (int64_t t = 0; t < n_tok; ++t) add_o(t);
      norm(attn_norm_[li], hidden, hidden, n_tok);
    }

    prep = staged([&, li](int64_t t) {
      if (!cfg_.post_norm) {
        add_o(t);
        norm(ffn_norm_[li], hidden + t * D, x.data() + t * D, 1);
      }
    });
    if (observer_) observer_(l, "ffn_in", in, n_tok, D);
    {
      const TensorView* w[] = {&L.ffn_up, &L.ffn_gate};
      const TensorView* b[] = {&L.ffn_up_b, &L.ffn_gate_b};
      float* y[] = {up.data(), gate.data()};
      const size_t n = cfg_.ffn_gated ? 2 : 1;  // a plain MLP has no gate
      linear_shared(std::span(w, n), std::span(b, n), in, n_tok, std::span(y, n), prep);
    }
    prep = staged(activate);
    if (observer_) observer_(l, "ffn_down", up.data(), n_tok, F);
    linear(L.ffn_down, L.ffn_down_b, up.data(), n_tok, o.data(), prep);
    if (fuse) {
      pending = true;
    } else {
      for (int64_t t = 0; t < n_tok; ++t) add_o(t);
      if (cfg_.post_norm) norm(ffn_norm_[li], hidden, hidden, n_tok);
    }
  }
  if (pending)
    for (int64_t t = 0; t < n_tok; ++t) add_o(t);
  for (const BatchToken& t : batch) kv.set_length(t.seq, t.pos + 1);  // positions increase per sequence
  return Status::Ok();
}

void Model::output(const std::vector<BatchToken>& batch, const float* hidden, std::vector<float>* logits) const {
  const int64_t D = cfg_.n_embd;
  std::vector<float> x;
  for (size_t t = 0; t < batch.size(); ++t) {
    if (!batch[t].logits) continue;
    x.insert(x.end(), hidden + t * D, hidden + (t + 1) * D);
  }
  if (cfg_.final_norm) norm(output_norm_, x.data(), x.data(), static_cast<int64_t>(x.size()) / D);
  const int64_t n = static_cast<int64_t>(x.size()) / D;
  if (observer_ && n > 0) observer_(cfg_.n_layer, "output", x.data(), n, D);
  logits->assign(static_cast<size_t>(n * cfg_.n_vocab), 0.0f);
  if (n > 0) k::matmul(w_.output, x.data(), n, logits->data());
}

Status Model::forward(const std::vector<BatchToken>& batch, KvCache& kv, std::vector<float>* logits) const {
  if (w_.output.data == nullptr)
    return Status::InvalidArgument(fmt::format("[forward] {} is an encoder without an output layer: it gives hidden "
                                               "states (encode, slm embed), not logits", cfg_.arch));
  std::vector<float> hidden(batch.size() * cfg_.n_embd);
  SLM_RETURN_IF_ERROR(embed(batch, hidden.data()));
  SLM_RETURN_IF_ERROR(forward_layers(batch, 0, cfg_.n_layer, hidden.data(), kv));
  output(batch, hidden.data(), logits);
  return Status::Ok();
}

Status Model::encode(const std::vector<BatchToken>& batch, KvCache& kv, std::vector<float>* hidden) const {
  hidden->assign(batch.size() * cfg_.n_embd, 0.0f);
  SLM_RETURN_IF_ERROR(embed(batch, hidden->data()));
  SLM_RETURN_IF_ERROR(forward_layers(batch, 0, cfg_.n_layer, hidden->data(), kv));
  if (cfg_.final_norm) norm(output_norm_, hidden->data(), hidden->data(), static_cast<int64_t>(batch.size()));
  return Status::Ok();
}

std::vector<float> Model::pool(const float* hidden, int64_t n_tok) const {
  const int64_t D = cfg_.n_embd;
  if (cfg_.pooling == Pooling::kCls) return std::vector<float>(hidden, hidden + D);
  std::vector<double> sum(static_cast<size_t>(D), 0.0);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t d = 0; d < D; ++d) sum[static_cast<size_t>(d)] += hidden[t * D + d];
  std::vector<float> out(static_cast<size_t>(D));
  for (int64_t d = 0; d < D; ++d) out[static_cast<size_t>(d)] = static_cast<float>(sum[static_cast<size_t>(d)] / static_cast<double>(n_tok));
  return out;
}

std::vector<float> Model::pooler(const float* cls_hidden) const {
  SLM_ASSERT(w_.pooler.data != nullptr);
  std::vector<float> out(static_cast<size_t>(cfg_.n_embd));
  linear(w_.pooler, w_.pooler_b, cls_hidden, 1, out.data());
  for (float& e : out) e = cfg_.pooler_relu ? std::max(e, 0.0f) : std::tanh(e);
  return out;
}

std::vector<float> Model::classify(const float* cls_hidden) const {
  SLM_ASSERT(w_.classifier.data != nullptr);
  std::vector<float> pooled;
  if (w_.pooler.data != nullptr) {
    pooled = pooler(cls_hidden);
    cls_hidden = pooled.data();
  }
  std::vector<float> logits(static_cast<size_t>(cfg_.n_labels));
  linear(w_.classifier, w_.classifier_b, cls_hidden, 1, logits.data());
  return logits;
}

}  // namespace slm::model
