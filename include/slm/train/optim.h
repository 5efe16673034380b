// AdamW with decoupled weight decay (Loshchilov & Hutter, arXiv 1711.05101)
// over float parameters, and gradient clipping by global norm.
//
// Weight decay applies to matrices (2-D parameters: projections and
// embeddings), not to norm weights, as nanoGPT and most recipes do. The
// moment buffers are exposed so checkpoints can save and restore them
// exactly. Not thread-safe; step() splits its loop over OpenMP threads.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "slm/train/autograd.h"

namespace slm::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

class AdamW {
 public:
  AdamW(std::vector<std::pair<std::string, Var<float>>> params, AdamWOptions opt);

  // One update at learning rate lr from the parameters' current gradients
  // (absent gradients count as zero).
  void step(double lr);
  // Drops every parameter's gradient.
  void zero_grad();

  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  const std::vector<std::pair<std::string, Var<float>>>& params() const { return params_; }
  // First and second moments of parameter i (same size as its value).
  std::vector<float>& m(size_t i) { return m_[i]; }
  std::vector<float>& v(size_t i) { return v_[i]; }

 private:
  std::vector<std::pair<std::string, Var<float>>> params_;
  AdamWOptions opt_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm (no-op
// when max_norm <= 0); returns the norm before clipping.
double clip_grad_norm(const std::vector<std::pair<std::string, Var<float>>>& params, double max_norm);

}  // namespace slm::train
