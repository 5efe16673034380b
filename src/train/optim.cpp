#include "slm/train/optim.h"

#include <cmath>

namespace slm::train {

AdamW::AdamW(std::vector<std::pair<std::string, Var<float>>> params, AdamWOptions opt)
    : params_(std::move(params)), opt_(opt) {
  for (const auto& [name, p] : params_) {
    m_.emplace_back(p->value.size(), 0.0f);
    v_.emplace_back(p->value.size(), 0.0f);
  }
}

void AdamW::step(double lr) {
  ++t_;
  const double bc1 = 1 - std::pow(opt_.beta1, static_cast<double>(t_));
  const double bc2 = 1 - std::pow(opt_.beta2, static_cast<double>(t_));
  const float b1 = static_cast<float>(opt_.beta1), b2 = static_cast<float>(opt_.beta2);
  const float step = static_cast<float>(lr / bc1), inv_bc2 = static_cast<float>(1 / bc2);
  const float eps = static_cast<float>(opt_.eps);
  for (size_t i = 0; i < params_.size(); ++i) {
    Node<float>& p = *params_[i].second;
    if (p.grad.empty()) p.g();
    const float decay = p.shape.size() >= 2 ? static_cast<float>(1 - lr * opt_.weight_decay) : 1.0f;
    float* w = p.value.data();
    const float* g = p.grad.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = p.numel();
#pragma omp parallel for schedule(static) if (n >= (1 << 15))
    for (int64_t j = 0; j < n; ++j) {
      m[j] = b1 * m[j] + (1 - b1) * g[j];
      v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
      w[j] = w[j] * decay - step * m[j] / (std::sqrt(v[j] * inv_bc2) + eps);
    }
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : params_) std::fill(p->grad.begin(), p->grad.end(), 0.0f);
}

double clip_grad_norm(const std::vector<std::pair<std::string, Var<float>>>& params, double max_norm) {
  double ss = 0;
  for (const auto& [name, p] : params)
    for (float g : p->grad) ss += static_cast<double>(g) * g;
  const double norm = std::sqrt(ss);
  if (max_norm > 0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / (norm + 1e-6));
    for (const auto& [name, p] : params)
      for (float& g : p->grad) g *= s;
  }
  return norm;
}

}  // namespace slm::train
