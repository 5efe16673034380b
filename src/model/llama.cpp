#include "slm/model/llama.h"

#include <algorithm>
#include <cmath>

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

Model::Model(const ModelConfig& cfg, const Weights& w)
    : cfg_(cfg), w_(w), freqs_(cfg.rope_freqs()), output_norm_(to_f32(w.output_norm)) {
  for (const LayerWeights& L : w_.layers) {
    attn_norm_.push_back(to_f32(L.attn_norm));
    ffn_norm_.push_back(to_f32(L.ffn_norm));
  }
  if (w_.rope_freqs.data != nullptr) {  // Llama 3 GGUF: per-pair divisors
    std::vector<float> div(freqs_.size());
    k::dequantize_row_ref(w_.rope_freqs.dtype, w_.rope_freqs.data, div.data(), static_cast<int64_t>(div.size()));
    for (size_t i = 0; i < freqs_.size(); ++i) freqs_[i] /= div[i];
  }
}

Status Model::check_batch(const std::vector<BatchToken>& batch, const KvCache* kv) const {
  if (batch.empty()) return Status::InvalidArgument("[forward] empty batch");
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchToken& t = batch[i];
    if (t.token < 0 || t.token >= cfg_.n_vocab)
      return Status::InvalidArgument(fmt::format("[forward] token {} at batch index {} is outside the vocabulary [0, {})",
                                                 t.token, i, cfg_.n_vocab));
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
    want = t.pos + 1;
  }
  return Status::Ok();
}

Status Model::embed(const std::vector<BatchToken>& batch, float* hidden) const {
  SLM_RETURN_IF_ERROR(check_batch(batch, nullptr));
  for (size_t i = 0; i < batch.size(); ++i) k::get_row(w_.token_embd, batch[i].token, hidden + i * cfg_.n_embd);
  return Status::Ok();
}

void Model::attention(const std::vector<BatchToken>& batch, int64_t layer, const float* q, KvCache& kv,
                      float* out) const {
  const int64_t n_tok = static_cast<int64_t>(batch.size());
  const int64_t hd = cfg_.head_dim, n_head = cfg_.n_head, n_kv = cfg_.n_head_kv, group = n_head / n_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Threads only pay off past some work: tiny models would wait on barriers.
  const int64_t work = n_tok * n_head * hd * (batch.back().pos + 1);
  // One task per (token, KV head): its query heads share every K/V row read.
#pragma omp parallel for collapse(2) schedule(static) if (work > (int64_t{1} << 16))
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t h = 0; h < n_kv; ++h) {
      const BatchToken& bt = batch[static_cast<size_t>(t)];
      const int64_t lo = cfg_.sliding_window > 0 ? std::max<int64_t>(0, bt.pos - cfg_.sliding_window + 1) : 0;
      const size_t head_bytes = kv.head_bytes();
      k::AttentionArgs a;
      a.q = q + (t * n_head + h * group) * hd;
      a.group = static_cast<int>(group);
      a.head_dim = hd;
      a.k = kv.k(layer, bt.seq, lo) + h * head_bytes;
      a.v = kv.v(layer, bt.seq, lo) + h * head_bytes;
      a.kv_type = kv.type();
      a.row_bytes = static_cast<int64_t>(kv.row_bytes());
      a.n_pos = bt.pos - lo + 1;
      a.scale = scale;
      a.out = out + (t * n_head + h * group) * hd;
      k::attention(a);
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
  const int64_t D = cfg_.n_embd, hd = cfg_.head_dim;
  const int64_t Q = cfg_.n_head * hd, KV = cfg_.n_head_kv * hd, F = cfg_.n_ff;
  std::vector<float> x(n_tok * D), q(n_tok * Q), kb(n_tok * KV), vb(n_tok * KV), att(n_tok * Q), o(n_tok * D);
  std::vector<float> gate(n_tok * F), up(n_tok * F);
  // Each token's rotary cosines and sines, computed once for all layers and heads.
  std::vector<float> rope_cs(static_cast<size_t>(n_tok * cfg_.n_rot));
  for (int64_t t = 0; t < n_tok; ++t)
    k::rope_table(cfg_.n_rot, batch[static_cast<size_t>(t)].pos, freqs_.data(), &rope_cs[static_cast<size_t>(t * cfg_.n_rot)]);

  for (int64_t l = begin; l < end; ++l) {
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const float* attn_norm = attn_norm_[static_cast<size_t>(l)].data();
    for (int64_t t = 0; t < n_tok; ++t) k::rmsnorm(hidden + t * D, attn_norm, cfg_.rms_eps, &x[t * D], D);
    k::matmul(L.wq, x.data(), n_tok, q.data());
    k::matmul(L.wk, x.data(), n_tok, kb.data());
    k::matmul(L.wv, x.data(), n_tok, vb.data());
    if (cfg_.attn_qkv_bias) {
      k::add_bias(L.bq, q.data(), n_tok);
      k::add_bias(L.bk, kb.data(), n_tok);
      k::add_bias(L.bv, vb.data(), n_tok);
    }
    for (int64_t t = 0; t < n_tok; ++t) {
      const BatchToken& bt = batch[static_cast<size_t>(t)];
      const float* cs = &rope_cs[static_cast<size_t>(t * cfg_.n_rot)];
      for (int64_t h = 0; h < cfg_.n_head; ++h) k::rope_apply(&q[(t * cfg_.n_head + h) * hd], cfg_.n_rot, cs, cfg_.rope_interleaved);
      for (int64_t h = 0; h < cfg_.n_head_kv; ++h)
        k::rope_apply(&kb[(t * cfg_.n_head_kv + h) * hd], cfg_.n_rot, cs, cfg_.rope_interleaved);
      kv.store(l, bt.seq, bt.pos, &kb[t * KV], &vb[t * KV]);
    }
    attention(batch, l, q.data(), kv, att.data());
    k::matmul(L.wo, att.data(), n_tok, o.data());
    for (int64_t i = 0; i < n_tok * D; ++i) hidden[i] += o[i];

    const float* ffn_norm = ffn_norm_[static_cast<size_t>(l)].data();
    for (int64_t t = 0; t < n_tok; ++t) k::rmsnorm(hidden + t * D, ffn_norm, cfg_.rms_eps, &x[t * D], D);
    k::matmul(L.ffn_gate, x.data(), n_tok, gate.data());
    k::matmul(L.ffn_up, x.data(), n_tok, up.data());
    k::swiglu(gate.data(), up.data(), gate.data(), n_tok * F);
    k::matmul(L.ffn_down, gate.data(), n_tok, o.data());
    for (int64_t i = 0; i < n_tok * D; ++i) hidden[i] += o[i];
  }
  for (const BatchToken& t : batch) kv.set_length(t.seq, t.pos + 1);  // positions increase per sequence
  return Status::Ok();
}

void Model::output(const std::vector<BatchToken>& batch, const float* hidden, std::vector<float>* logits) const {
  const int64_t D = cfg_.n_embd;
  std::vector<float> x;
  for (size_t t = 0; t < batch.size(); ++t) {
    if (!batch[t].logits) continue;
    x.resize(x.size() + D);
    k::rmsnorm(hidden + t * D, output_norm_.data(), cfg_.rms_eps, &x[x.size() - D], D);
  }
  const int64_t n = static_cast<int64_t>(x.size()) / D;
  logits->assign(static_cast<size_t>(n * cfg_.n_vocab), 0.0f);
  if (n > 0) k::matmul(w_.output, x.data(), n, logits->data());
}

Status Model::forward(const std::vector<BatchToken>& batch, KvCache& kv, std::vector<float>* logits) const {
  std::vector<float> hidden(batch.size() * cfg_.n_embd);
  SLM_RETURN_IF_ERROR(embed(batch, hidden.data()));
  SLM_RETURN_IF_ERROR(forward_layers(batch, 0, cfg_.n_layer, hidden.data(), kv));
  output(batch, hidden.data(), logits);
  return Status::Ok();
}

}  // namespace slm::model
