#include "slm/sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

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

Sampler::Sampler(const SamplerConfig& c) : c_(c), rng_(c.seed) {}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

void Sampler::accept(int32_t token) {
  if (c_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (static_cast<int32_t>(recent_.size()) > c_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  cand_.resize(static_cast<size_t>(n_vocab));
  // NaN (from a corrupt weight, say) would break the orderings below: never pick it.
  for (int64_t i = 0; i < n_vocab; ++i)
    cand_[i] = {std::isnan(logits[i]) ? -std::numeric_limits<float>::infinity() : logits[i], static_cast<int32_t>(i)};
  if (c_.repeat_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    for (int32_t t : seen) {
      if (t < 0 || t >= n_vocab) continue;
      float& l = cand_[t].first;
      l = l > 0 ? l / c_.repeat_penalty : l * c_.repeat_penalty;
    }
  }
  int32_t pick;
  if (c_.temperature <= 0) {
    // Greedy: the first of equal maxima, so ties break the same way everywhere.
    pick = std::max_element(cand_.begin(), cand_.end(),
                            [](const auto& a, const auto& b) { return a.first < b.first; })->second;
  } else {
    for (auto& cd : cand_) cd.first /= c_.temperature;
    auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
    size_t n = cand_.size();
    if (c_.top_k > 0 && static_cast<size_t>(c_.top_k) < n) {
      std::partial_sort(cand_.begin(), cand_.begin() + c_.top_k, cand_.end(), by_logit);
      n = static_cast<size_t>(c_.top_k);
    } else if (c_.top_p < 1.0f || c_.min_p > 0) {
      std::sort(cand_.begin(), cand_.end(), by_logit);
    } else {
      // Nothing trims the distribution (the server's default): no sort, only
      // the largest logit in front, where the softmax below expects it.
      std::iter_swap(cand_.begin(), std::min_element(cand_.begin(), cand_.end(), by_logit));
    }
    // Softmax over the survivors (largest first).
    const float mx = cand_[0].first;
    std::vector<double> p(n);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(static_cast<double>(cand_[i].first - mx));
    for (auto& x : p) x /= sum;
    if (c_.top_p < 1.0f) {
      double cum = 0;
      size_t keep = n;
      for (size_t i = 0; i < n; ++i) {
        cum += p[i];
        if (cum >= c_.top_p) {
          keep = i + 1;
          break;
        }
      }
      n = keep;
    }
    if (c_.min_p > 0) {
      size_t keep = 1;
      while (keep < n && p[keep] >= c_.min_p * p[0]) ++keep;
      n = keep;
    }
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += p[i];
    double r = uniform() * total;
    pick = cand_[n - 1].second;
    for (size_t i = 0; i < n; ++i) {
      r -= p[i];
      if (r < 0) {
        pick = cand_[i].second;
        break;
      }
    }
  }
  accept(pick);
  return pick;
}

}  // namespace slm::sample
