#include "slm/model/config.h"

#include <cmath>

#include <fmt/ranges.h>

namespace slm::model {

Status ModelConfig::validate() const {
  auto bad = [](const char* key, int64_t v, const char* want) {
    return Status::InvalidArgument(fmt::format("model config: {} is {}, expected {}", key, v, want));
  };
  if (n_vocab <= 0 || n_vocab > (1 << 24)) return bad("vocab size", n_vocab, "1..16M");
  if (n_embd <= 0 || n_embd > 65536) return bad("hidden size", n_embd, "1..65536");
  if (n_layer <= 0 || n_layer > 1024) return bad("layer count", n_layer, "1..1024");
  if (n_head <= 0 || n_head > 1024) return bad("head count", n_head, "1..1024");
  if (n_head_kv <= 0 || n_head % n_head_kv != 0) return bad("KV head count", n_head_kv, "a divisor of the head count");
  if (head_dim <= 0 || head_dim > 1024 || head_dim % 2 != 0) return bad("head dim", head_dim, "an even number up to 1024");
  if (learned_pos ? n_rot != 0 : (n_rot <= 0 || n_rot > head_dim || n_rot % 2 != 0))
    return bad("rotary dims", n_rot, learned_pos ? "0 with learned positions" : "an even number up to head dim");
  if (n_token_types < 0 || n_token_types > 1024) return bad("token type count", n_token_types, "0..1024");
  if (n_labels < 0 || n_labels > (1 << 20)) return bad("label count", n_labels, "0..1M");
  if (n_ff <= 0 || n_ff > (1 << 20)) return bad("feed-forward size", n_ff, "1..1M");
  if (sliding_window < 0) return bad("sliding window", sliding_window, ">= 0");
  if (n_ctx_train < 1 || n_ctx_train > (int64_t{1} << 24)) return bad("training context", n_ctx_train, "1..16M");
  if (rope_scaling == RopeScaling::kLlama3) {
    if (!(rope_low_freq_factor > 0 && rope_high_freq_factor > rope_low_freq_factor))
      return Status::InvalidArgument(fmt::format("model config: llama3 rope scaling needs 0 < low_freq_factor ({}) < "
                                                 "high_freq_factor ({})", rope_low_freq_factor, rope_high_freq_factor));
    if (rope_orig_ctx < 1) return bad("rope original context", rope_orig_ctx, ">= 1");
  }
  if (rope_scaling == RopeScaling::kLongRope) {
    const size_t half = static_cast<size_t>(n_rot / 2);
    if (rope_short_factor.size() != half || rope_long_factor.size() != half)
      return Status::InvalidArgument(fmt::format("model config: longrope short_factor and long_factor have {} and {} "
                                                 "values, expected {} (rotary dims / 2)", rope_short_factor.size(),
                                                 rope_long_factor.size(), half));
    for (const auto* fs : {&rope_short_factor, &rope_long_factor})
      for (float f : *fs)
        if (!(f > 0 && std::isfinite(f)))
          return Status::InvalidArgument(fmt::format("model config: longrope factor {} is not > 0", f));
    if (rope_orig_ctx < 1) return bad("rope original context", rope_orig_ctx, ">= 1");
  }
  if (!(norm_eps > 0 && norm_eps < 1)) return Status::InvalidArgument(fmt::format("model config: norm eps is {}, expected (0, 1)", norm_eps));
  if (!(embd_scale > 0 && std::isfinite(embd_scale)))
    return Status::InvalidArgument(fmt::format("model config: embedding scale is {}, expected > 0", embd_scale));
  if (!(rope_theta > 0 && std::isfinite(rope_theta)))
    return Status::InvalidArgument(fmt::format("model config: rope theta is {}, expected > 0", rope_theta));
  if (!(rope_factor > 0 && std::isfinite(rope_factor)))
    return Status::InvalidArgument(fmt::format("model config: rope scaling factor is {}, expected > 0", rope_factor));
  return Status::Ok();
}

std::vector<float> ModelConfig::rope_freqs(int64_t n_ctx) const {
  const int64_t half = n_rot / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double freq = std::pow(static_cast<double>(rope_theta), -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    if (rope_scaling == RopeScaling::kLongRope) {
      // Phi-3 LongRoPE (arXiv 2402.13753): a divisor per pair, long ones past the original context.
      freq /= (n_ctx > rope_orig_ctx ? rope_long_factor : rope_short_factor)[static_cast<size_t>(i)];
    } else if (rope_scaling == RopeScaling::kLinear) {
      freq /= rope_factor;
    } else if (rope_scaling == RopeScaling::kLlama3) {
      // Llama 3.1: keep high frequencies, divide low ones by the factor, blend between.
      const double low_wavelen = static_cast<double>(rope_orig_ctx) / rope_low_freq_factor;
      const double high_wavelen = static_cast<double>(rope_orig_ctx) / rope_high_freq_factor;
      const double wavelen = 2 * M_PI / freq;
      if (wavelen > low_wavelen) {
        freq /= rope_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (static_cast<double>(rope_orig_ctx) / wavelen - rope_low_freq_factor) /
                              (rope_high_freq_factor - rope_low_freq_factor);
        freq = (1 - smooth) * freq / rope_factor + smooth * freq;
      }
    }
    f[static_cast<size_t>(i)] = static_cast<float>(freq);
  }
  return f;
}

float ModelConfig::rope_attn_factor() const {
  if (rope_scaling != RopeScaling::kLongRope) return 1.0f;
  // As Hugging Face's longrope: sqrt(1 + ln(scale) / ln(original context)), scale = context / original.
  const double scale = static_cast<double>(n_ctx_train) / static_cast<double>(rope_orig_ctx);
  if (scale <= 1.0) return 1.0f;
  return static_cast<float>(std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(rope_orig_ctx))));
}

std::vector<std::string> ModelConfig::features() const {
  std::vector<std::string> f;
  f.push_back(causal ? "causal attention" : "bidirectional attention (encoder)");
  if (n_head_kv != n_head) f.push_back(n_head_kv == 1 ? "multi-query attention" : "grouped-query attention");
  if (head_dim * n_head != n_embd) f.push_back(fmt::format("head dim {} independent of hidden / heads", head_dim));
  if (learned_pos) f.push_back("learned positions");
  if (n_rot > 0) f.push_back(n_rot < head_dim ? fmt::format("partial rotary ({} of {} dims)", n_rot, head_dim) : "rotary");
  if (rope_scaling == RopeScaling::kLinear) f.push_back("linear rope scaling");
  if (rope_scaling == RopeScaling::kLlama3) f.push_back("llama3 rope scaling");
  if (rope_scaling == RopeScaling::kLongRope) f.push_back("LongRoPE (short and long factors)");
  if (sliding_window > 0) f.push_back(fmt::format("sliding window {}", sliding_window));
  if (n_token_types > 0) f.push_back("token types");
  if (embd_scale != 1.0f) f.push_back(fmt::format("embeddings scaled by {:g}", embd_scale));
  if (embd_norm) f.push_back("embedding LayerNorm");
  f.push_back(norm == NormType::kLayerNorm ? "LayerNorm with bias" : norm_plus_one ? "RMSNorm (1 + weight)" : "RMSNorm");
  f.push_back(post_norm ? "post-norm blocks" : "pre-norm blocks");
  const char* act_name = act == Activation::kSilu ? "SiLU" : act == Activation::kGeluTanh ? "GELU (tanh)" : "GELU (erf)";
  f.push_back(ffn_gated ? fmt::format("gated MLP ({}: {})", act == Activation::kSilu ? "SwiGLU" : "GeGLU", act_name)
                        : fmt::format("MLP ({})", act_name));
  if (attn_qkv_bias) f.push_back("qkv bias");
  if (attn_out_bias) f.push_back("attention output bias");
  if (ffn_bias) f.push_back("MLP bias");
  if (tied_output) f.push_back("tied output");
  if (pooling != Pooling::kNone) f.push_back(pooling == Pooling::kCls ? "CLS pooling" : "mean pooling");
  if (has_pooler) f.push_back(pooler_relu ? "pooler (relu)" : "pooler (tanh)");
  if (n_labels > 0) f.push_back(fmt::format("classification head ({} labels)", n_labels));
  return f;
}

std::string ModelConfig::describe() const {
  std::string rope;
  if (n_rot > 0)
    rope = fmt::format(", rope theta {:g} ({}{})", rope_theta, rope_interleaved ? "interleaved pairs" : "rotate-half pairs",
                       rope_scaling == RopeScaling::kLinear   ? fmt::format(", linear x{:g}", rope_factor)
                       : rope_scaling == RopeScaling::kLlama3 ? fmt::format(", llama3 x{:g}", rope_factor)
                                                              : "");
  return fmt::format("arch {}: vocab {}, dim {}, layers {}, heads {} (kv {}), head dim {}, ffn {}, ctx {}, norm eps {:g}{}; {}",
                     arch, n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, norm_eps, rope,
                     fmt::join(features(), ", "));
}

}  // namespace slm::model
