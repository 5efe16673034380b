#include "slm/sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "slm/kernels/ops.h"

namespace slm::sample {

Status SamplerConfig::validate() const {
  if (!std::isfinite(temperature) || temperature < 0)
    return Status::InvalidArgument(fmt::format("temperature is {}, expected a number >= 0", temperature));
  if (!std::isfinite(top_p) || top_p <= 0 || top_p > 1)
    return Status::InvalidArgument(fmt::format("top-p is {}, expected a number in (0, 1]", top_p));
  if (!std::isfinite(min_p) || min_p < 0 || min_p > 1)
    return Status::InvalidArgument(fmt::format("min-p is {}, expected a number in [0, 1]", min_p));
  if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0)
    return Status::InvalidArgument(fmt::format("repeat penalty is {}, expected a number > 0", repeat_penalty));
  if (repeat_last_n < 0) return Status::InvalidArgument(fmt::format("repeat-last-n is {}, expected >= 0", repeat_last_n));
  return Status::Ok();
}

namespace {

// The first i with p[0] + ... + p[i] > r (n - 1 if none): whole blocks of 64
// are skipped by their sums (eight running sums each, so they vectorize).
size_t first_past(const float* p, size_t n, double r) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    float s[8] = {};
    for (size_t k = 0; k < 64; ++k) s[k % 8] += p[i + k];
    const double block = (static_cast<double>(s[0]) + s[1] + s[2] + s[3]) + (static_cast<double>(s[4]) + s[5] + s[6] + s[7]);
    if (r < block) break;
    r -= block;
  }
  for (; i < n; ++i) {
    r -= p[i];
    if (r < 0) return i;
  }
  return n - 1;
}

}  // namespace

Sampler::Sampler(const SamplerConfig& c) : c_(c), rng_(c.seed) {}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

void Sampler::accept(int32_t token) {
  if (c_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (static_cast<int32_t>(recent_.size()) > c_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  // NaN (from a corrupt weight, say) would break the orderings below: never pick it.
  z_.resize(static_cast<size_t>(n_vocab));
  for (int64_t i = 0; i < n_vocab; ++i) z_[i] = std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i];
  if (c_.repeat_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= n_vocab) continue;
      float& l = z_[t];
      l = l > 0 ? l / c_.repeat_penalty : l * c_.repeat_penalty;
    }
  }
  if (c_.temperature <= 0) {
    // Greedy: the first of equal maxima, so ties break the same way everywhere.
    const int32_t pick = static_cast<int32_t>(std::max_element(z_.begin(), z_.end()) - z_.begin());
    accept(pick);
    return pick;
  }
  for (float& l : z_) l /= c_.temperature;
  // The candidates: every token in vocabulary order (nothing trims the
  // distribution: the server's default), or the survivors of top-k sorted
  // largest first, for top-p and min-p to cut.
  const bool trim = (c_.top_k > 0 && c_.top_k < n_vocab) || c_.top_p < 1.0f || c_.min_p > 0;
  size_t n = z_.size();
  const float* z = z_.data();
  if (trim) {
    cand_.resize(n);
    for (size_t i = 0; i < n; ++i) cand_[i] = {z_[i], static_cast<int32_t>(i)};
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    if (c_.top_k > 0 && static_cast<size_t>(c_.top_k) < n) {
      std::partial_sort(cand_.begin(), cand_.begin() + c_.top_k, cand_.end(), by_logit);
      n = static_cast<size_t>(c_.top_k);
    } else {
      std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    for (size_t i = 0; i < n; ++i) z_[i] = cand_[i].first;
  }
  auto token = [&](size_t i) { return trim ? cand_[i].second : static_cast<int32_t>(i); };
  // Softmax numerators, in SIMD (the vocabulary is 32k to 150k tokens for
  // real models: in double, one at a time, this cost as much as a small
  // model's forward pass).
  p_.resize(n);
  const float mx = *std::max_element(z, z + n);
  double sum = kernels::exp_sum(z, mx, p_.data(), static_cast<int64_t>(n));
  if (c_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < n; ++i) {
      cum += p_[i];
      if (cum >= c_.top_p * sum) {
        n = i + 1;
        break;
      }
    }
  }
  if (c_.min_p > 0) {
    size_t keep = 1;
    while (keep < n && p_[keep] >= c_.min_p * p_[0]) ++keep;
    n = keep;
  }
  double total = sum;
  if (n < p_.size()) {
    total = 0;
    for (size_t i = 0; i < n; ++i) total += p_[i];
  }
  const int32_t pick = token(first_past(p_.data(), n, uniform() * total));
  accept(pick);
  return pick;
}

}  // namespace slm::sample
