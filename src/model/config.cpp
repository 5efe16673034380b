#include "slm/model/config.h"

#include <cmath>

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
  if (n_rot <= 0 || n_rot > head_dim || n_rot % 2 != 0) return bad("rotary dims", n_rot, "an even number up to head dim");
  if (n_ff <= 0 || n_ff > (1 << 20)) return bad("feed-forward size", n_ff, "1..1M");
  if (sliding_window < 0) return bad("sliding window", sliding_window, ">= 0");
  if (n_ctx_train < 1 || n_ctx_train > (int64_t{1} << 24)) return bad("training context", n_ctx_train, "1..16M");
  if (rope_scaling == RopeScaling::kLlama3) {
    if (!(rope_low_freq_factor > 0 && rope_high_freq_factor > rope_low_freq_factor))
      return Status::InvalidArgument(fmt::format("model config: llama3 rope scaling needs 0 < low_freq_factor ({}) < "
                                                 "high_freq_factor ({})", rope_low_freq_factor, rope_high_freq_factor));
    if (rope_orig_ctx < 1) return bad("rope original context", rope_orig_ctx, ">= 1");
  }
  if (!(rms_eps > 0 && rms_eps < 1)) return Status::InvalidArgument(fmt::format("model config: rms eps is {}, expected (0, 1)", rms_eps));
  if (!(rope_theta > 0 && std::isfinite(rope_theta)))
    return Status::InvalidArgument(fmt::format("model config: rope theta is {}, expected > 0", rope_theta));
  if (!(rope_factor > 0 && std::isfinite(rope_factor)))
    return Status::InvalidArgument(fmt::format("model config: rope scaling factor is {}, expected > 0", rope_factor));
  return Status::Ok();
}

std::vector<float> ModelConfig::rope_freqs() const {
  const int64_t half = n_rot / 2;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double freq = std::pow(static_cast<double>(rope_theta), -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    if (rope_scaling == RopeScaling::kLinear) {
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

std::string ModelConfig::describe() const {
  return fmt::format(
      "arch {}: vocab {}, dim {}, layers {}, heads {} (kv {}), head dim {}, ffn {}, ctx {}, rms eps {:g}, "
      "rope theta {:g} ({}{}){}{}{}",
      arch, n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, rms_eps, rope_theta,
      rope_interleaved ? "interleaved pairs" : "rotate-half pairs",
      rope_scaling == RopeScaling::kLinear  ? fmt::format(", linear x{:g}", rope_factor)
      : rope_scaling == RopeScaling::kLlama3 ? fmt::format(", llama3 x{:g}", rope_factor)
                                             : "",
      sliding_window ? fmt::format(", sliding window {}", sliding_window) : "", attn_qkv_bias ? ", qkv bias" : "",
      tied_output ? ", tied output" : "");
}

}  // namespace slm::model
