#include "slm/train/transformer.h"

#include <cmath>
#include <random>

#include "slm/core/assert.h"

namespace slm::train {

Status check_trainable(const model::ModelConfig& cfg) {
  SLM_RETURN_IF_ERROR(cfg.validate());
  auto refuse = [](const std::string& what) {
    return Status::Unsupported("[train] the trainer builds plain Llama decoders; this config has " + what);
  };
  if (cfg.arch != "llama") return refuse("architecture " + cfg.arch);
  if (cfg.tied_output) return refuse("a tied output");
  if (cfg.attn_qkv_bias) return refuse("q/k/v biases");
  if (cfg.sliding_window > 0) return refuse("a sliding window");
  if (cfg.n_rot != cfg.head_dim) return refuse("partial rotary dims");
  if (!cfg.rope_interleaved) return refuse("rotate-half rotary pairs");
  if (cfg.head_dim * cfg.n_head != cfg.n_embd) return refuse("a head dim other than hidden size / heads");
  return Status::Ok();
}

template <class T>
Result<Transformer<T>> Transformer<T>::create(const model::ModelConfig& cfg, uint64_t seed) {
  SLM_RETURN_IF_ERROR(check_trainable(cfg));
  Transformer<T> m(cfg);
  std::mt19937_64 rng(seed);
  const int64_t D = cfg.n_embd, KV = cfg.n_head_kv * cfg.head_dim, F = cfg.n_ff, V = cfg.n_vocab;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double std) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<T> v(static_cast<size_t>(n), T(1));
    if (std > 0) {
      std::normal_distribution<double> dist(0.0, std);
      for (T& x : v) x = static_cast<T>(dist(rng));
    }
    m.params_.emplace_back(name, make_var<T>(std::move(shape), std::move(v), true));
  };
  add("token_embd.weight", {V, D}, 0.02);
  for (int64_t l = 0; l < cfg.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    add(b + "attn_norm.weight", {D}, 0);
    add(b + "attn_q.weight", {D, D}, 0.02);
    add(b + "attn_k.weight", {KV, D}, 0.02);
    add(b + "attn_v.weight", {KV, D}, 0.02);
    add(b + "attn_output.weight", {D, D}, residual_std);
    add(b + "ffn_norm.weight", {D}, 0);
    add(b + "ffn_gate.weight", {F, D}, 0.02);
    add(b + "ffn_up.weight", {F, D}, 0.02);
    add(b + "ffn_down.weight", {D, F}, residual_std);
  }
  add("output_norm.weight", {D}, 0);
  add("output.weight", {V, D}, 0.02);
  return m;
}

template <class T>
int64_t Transformer<T>::n_params() const {
  int64_t n = 0;
  for (const auto& [name, v] : params_) n += v->numel();
  return n;
}

template <class T>
const Var<T>& Transformer<T>::p(const std::string& name) const {
  for (const auto& [n, v] : params_)
    if (n == name) return v;
  SLM_ASSERT(false && "unknown parameter");
  return params_.front().second;
}

template <class T>
Var<T> Transformer<T>::block(Tape<T>& tape, int64_t layer, const Var<T>& x, int64_t batch, int64_t seq) const {
  const std::string b = "blk." + std::to_string(layer) + ".";
  const T eps = static_cast<T>(cfg_.norm_eps);
  std::vector<int64_t> pos(static_cast<size_t>(batch * seq));
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int64_t>(i) % seq;
  Var<T> h = rmsnorm(tape, x, p(b + "attn_norm.weight"), eps);
  Var<T> q = rope(tape, linear(tape, h, p(b + "attn_q.weight")), pos, cfg_.n_head, cfg_.head_dim, cfg_.n_rot, freqs_);
  Var<T> k = rope(tape, linear(tape, h, p(b + "attn_k.weight")), pos, cfg_.n_head_kv, cfg_.head_dim, cfg_.n_rot,
                  freqs_);
  Var<T> v = linear(tape, h, p(b + "attn_v.weight"));
  Var<T> a = attention(tape, q, k, v, batch, seq, cfg_.n_head, cfg_.n_head_kv, cfg_.head_dim);
  Var<T> x1 = add(tape, x, linear(tape, a, p(b + "attn_output.weight")));
  Var<T> h2 = rmsnorm(tape, x1, p(b + "ffn_norm.weight"), eps);
  Var<T> f = swiglu(tape, linear(tape, h2, p(b + "ffn_gate.weight")), linear(tape, h2, p(b + "ffn_up.weight")));
  return add(tape, x1, linear(tape, f, p(b + "ffn_down.weight")));
}

template <class T>
Var<T> Transformer<T>::logits(Tape<T>& tape, const std::vector<int32_t>& tokens, int64_t batch, int64_t seq,
                              bool recompute) const {
  SLM_ASSERT(static_cast<int64_t>(tokens.size()) == batch * seq);
  Var<T> x = embedding(tape, p("token_embd.weight"), tokens);
  for (int64_t l = 0; l < cfg_.n_layer; ++l) {
    if (recompute) {
      x = checkpoint<T>(tape, x, [this, l, batch, seq](Tape<T>& t, const Var<T>& in) {
        return block(t, l, in, batch, seq);
      });
    } else {
      x = block(tape, l, x, batch, seq);
    }
  }
  Var<T> h = rmsnorm(tape, x, p("output_norm.weight"), static_cast<T>(cfg_.norm_eps));
  return linear(tape, h, p("output.weight"));
}

template <class T>
Var<T> Transformer<T>::loss(Tape<T>& tape, const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets,
                            int64_t batch, int64_t seq, bool recompute) const {
  return cross_entropy(tape, logits(tape, tokens, batch, seq, recompute), targets);
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace slm::train
