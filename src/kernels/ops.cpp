#include "slm/kernels/ops.h"

#include <cmath>
#include <vector>

#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {
constexpr int64_t kMinParallelWork = int64_t{1} << 16;
}

float dot_ref(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y) {
  const int64_t rows = w.rows(), cols = w.cols();
  const bool f32 = w.dtype == DType::kF32;
  // Threads only pay off past some work: a tiny matmul would wait on barriers.
#pragma omp parallel if (rows * cols * n_tok > kMinParallelWork)
  {
    std::vector<float> row(f32 ? 0 : static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* wr = reinterpret_cast<const float*>(w.row(r));
      if (!f32) {
        dequantize_row_ref(w.dtype, w.row(r), row.data(), cols);
        wr = row.data();
      }
      for (int64_t t = 0; t < n_tok; ++t) y[t * rows + r] = dot_ref(wr, x + t * cols, cols);
    }
  }
}

void add_bias(const TensorView& bias, float* y, int64_t n_tok) {
  const int64_t n = bias.numel();
  std::vector<float> b(static_cast<size_t>(n));
  dequantize_row_ref(bias.dtype, bias.data, b.data(), n);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t i = 0; i < n; ++i) y[t * n + i] += b[i];
}

void get_row(const TensorView& w, int64_t r, float* out) { dequantize_row_ref(w.dtype, w.row(r), out, w.cols()); }

void rmsnorm_ref(const float* x, const TensorView& w, float eps, float* out, int64_t n) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  std::vector<float> wf(static_cast<size_t>(n));
  dequantize_row_ref(w.dtype, w.data, wf.data(), n);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * wf[i];
}

void rope_ref(float* x, int64_t n_rot, int64_t pos, const float* freqs, bool interleaved) {
  const int64_t half = n_rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * freqs[i];
    const float c = std::cos(angle), s = std::sin(angle);
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

void softmax_ref(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  for (int64_t i = 0; i < n; ++i) x[i] /= sum;
}

void swiglu_ref(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace slm::kernels
