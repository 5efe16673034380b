// Sampler: picks the next token from logits. Greedy when temperature <= 0;
// otherwise, in this order: repetition penalty over the last tokens,
// temperature, top-k, top-p (nucleus), min-p, then a draw from the rest.
// A seed makes the draws repeatable on every machine (own uniform from a
// mt19937_64, no implementation-defined distributions).
// Not thread-safe: one sampler per sequence.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "slm/core/status.h"

namespace slm::sample {

struct SamplerConfig {
  float temperature = 0.8f;
  int32_t top_k = 40;            // <= 0: off
  float top_p = 0.95f;           // >= 1: off
  float min_p = 0.05f;           // <= 0: off
  float repeat_penalty = 1.0f;   // 1: off; > 1 discourages repeats (CTRL-style)
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;

  Status validate() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& c);
  // Picks a token from logits (n_vocab); remembers it for the repetition penalty.
  int32_t sample(const float* logits, int64_t n_vocab);
  // Tells the sampler about tokens it did not pick (the prompt), for penalties.
  void accept(int32_t token);

 private:
  double uniform();
  SamplerConfig c_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<float> z_, p_;                     // scaled logits, softmax numerators
  std::vector<std::pair<float, int32_t>> cand_;  // when top-k, top-p or min-p trim: sorted
};

}  // namespace slm::sample
