#include "slm/train/autograd.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "slm/core/assert.h"
#include "slm/core/half.h"
#include "slm/kernels/ops.h"

namespace slm::train {

namespace {

// C (M, N) = op(A) @ op(B) + beta * C, row-major, with the row strides of each
// (sub-matrices of wider buffers).
void gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), 1.0f, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}
void gemm_ld(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B,
             int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(M),
              static_cast<int>(N), static_cast<int>(K), 1.0, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta,
              C, static_cast<int>(ldc));
}

// The same for whole matrices.
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T* A, const T* B, T beta, T* C) {
  gemm_ld(ta, tb, M, N, K, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

// A float buffer (rows, cols) as the weight view the inference kernels take.
TensorView f32_view(const float* data, int64_t rows, int64_t cols) {
  TensorView t;
  t.dtype = DType::kF32;
  t.shape = {rows, cols};
  t.data = data;
  t.nbytes = static_cast<size_t>(rows * cols) * sizeof(float);
  return t;
}

// Loops over this many elements or more are split over threads.
constexpr int64_t kParallelMin = 1 << 14;

template <class T>
std::vector<T> rounded_bf16(const std::vector<T>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(bf16_to_f32(f32_to_bf16(static_cast<float>(v[i]))));
  return out;
}

template <class T>
Var<T> output(Tape<T>& tape, std::vector<int64_t> shape, std::vector<T> value, std::initializer_list<Var<T>> inputs) {
  bool rg = false;
  for (const Var<T>& in : inputs) rg = rg || in->requires_grad;
  Var<T> out = make_var<T>(std::move(shape), std::move(value), rg);
  return out;
}

// Attaches backward to out and records it when any input needs a gradient.
template <class T, class F>
Var<T> finish(Tape<T>& tape, Var<T> out, F&& backward) {
  if (out->requires_grad) {
    out->backward = std::forward<F>(backward);
    tape.record(out);
  }
  return out;
}

}  // namespace

template <class T>
Var<T> make_var(std::vector<int64_t> shape, std::vector<T> value, bool requires_grad) {
  auto v = std::make_shared<Node<T>>();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  SLM_ASSERT(static_cast<int64_t>(value.size()) == n);
  v->shape = std::move(shape);
  v->value = std::move(value);
  v->requires_grad = requires_grad;
  return v;
}

template <class T>
void Tape<T>::backward(const Var<T>& loss, T seed) {
  SLM_ASSERT(loss->numel() == 1);
  loss->g()[0] += seed;
  backward_seeded();
}

template <class T>
void Tape<T>::backward_seeded() {
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    Node<T>& n = **it;
    if (!n.grad.empty()) n.backward();
    n.backward = nullptr;  // drops the references to inputs and saved buffers
    n.grad.clear();
    n.grad.shrink_to_fit();
  }
  nodes_.clear();
}

template <class T>
Var<T> embedding(Tape<T>& tape, const Var<T>& table, const std::vector<int32_t>& tokens) {
  const int64_t N = static_cast<int64_t>(tokens.size()), D = table->cols(), V = table->rows();
  std::vector<T> y(static_cast<size_t>(N * D));
  for (int64_t i = 0; i < N; ++i) {
    SLM_ASSERT(tokens[i] >= 0 && tokens[i] < V);
    std::memcpy(&y[i * D], &table->value[tokens[i] * D], sizeof(T) * D);
  }
  Var<T> out = output(tape, {N, D}, std::move(y), {table});
  Node<T>* o = out.get();
  return finish(tape, out, [o, table, tokens, D]() {
    T* g = table->g();
    for (size_t i = 0; i < tokens.size(); ++i)  // serial: tokens repeat
      for (int64_t j = 0; j < D; ++j) g[tokens[i] * D + j] += o->grad[i * D + j];
  });
}

template <class T>
Var<T> linear(Tape<T>& tape, const Var<T>& x, const Var<T>& w) {
  const int64_t N = x->rows(), in = x->cols(), out_f = w->rows();
  SLM_ASSERT(w->cols() == in);
  const bool bf16 = tape.bf16;
  auto xs = std::make_shared<std::vector<T>>(bf16 ? rounded_bf16(x->value) : std::vector<T>());
  auto ws = std::make_shared<std::vector<T>>(bf16 ? rounded_bf16(w->value) : std::vector<T>());
  const T* xv = bf16 ? xs->data() : x->value.data();
  const T* wv = bf16 ? ws->data() : w->value.data();
  std::vector<T> y(static_cast<size_t>(N * out_f));
  if constexpr (std::is_same_v<T, float>) {
    kernels::matmul(f32_view(wv, out_f, in), xv, N, y.data());  // the inference path's product
  } else {
    gemm(false, true, N, out_f, in, xv, wv, T(0), y.data());
  }
  Var<T> out = output(tape, {N, out_f}, std::move(y), {x, w});
  Node<T>* o = out.get();
  return finish(tape, out, [o, x, w, xs, ws, N, in, out_f, bf16]() {
    std::vector<T> dy_r;
    const T* dy = o->grad.data();
    if (bf16) {
      dy_r = rounded_bf16(o->grad);
      dy = dy_r.data();
    }
    const T* xv = bf16 ? xs->data() : x->value.data();
    const T* wv = bf16 ? ws->data() : w->value.data();
    if (x->requires_grad) gemm(false, false, N, in, out_f, dy, wv, T(1), x->g());   // dx += dy @ w
    if (w->requires_grad) gemm(true, false, out_f, in, N, dy, xv, T(1), w->g());    // dw += dy^T @ x
  });
}

template <class T>
Var<T> rmsnorm(Tape<T>& tape, const Var<T>& x, const Var<T>& w, T eps) {
  const int64_t N = x->rows(), D = x->cols();
  SLM_ASSERT(w->numel() == D);
  std::vector<T> y(static_cast<size_t>(N * D));
  auto rstd = std::make_shared<std::vector<T>>(static_cast<size_t>(N));
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T* xi = &x->value[i * D];
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < D; ++j) ss += xi[j] * xi[j];
    const T r = T(1) / std::sqrt(ss / static_cast<T>(D) + eps);
    (*rstd)[i] = r;
    if constexpr (std::is_same_v<T, float>) {
      kernels::rmsnorm(xi, w->value.data(), eps, &y[i * D], D);  // the inference path's kernel
    } else {
      for (int64_t j = 0; j < D; ++j) y[i * D + j] = xi[j] * r * w->value[j];
    }
  }
  Var<T> out = output(tape, {N, D}, std::move(y), {x, w});
  Node<T>* o = out.get();
  return finish(tape, out, [o, x, w, rstd, N, D]() {
    // y = x r w with r = (mean(x^2) + eps)^-1/2:
    // dx_j = r (w_j dy_j - x_j r^2 / D * sum_k w_k dy_k x_k), dw_j = sum_i dy_ij x_ij r_i.
    if (x->requires_grad) {
      T* dx = x->g();
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
      for (int64_t i = 0; i < N; ++i) {
        const T* xi = &x->value[i * D];
        const T* dy = &o->grad[i * D];
        const T r = (*rstd)[i];
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < D; ++j) dot += w->value[j] * dy[j] * xi[j];
        const T c = r * r * r * dot / static_cast<T>(D);
        for (int64_t j = 0; j < D; ++j) dx[i * D + j] += r * w->value[j] * dy[j] - c * xi[j];
      }
    }
    if (w->requires_grad) {
      T* dw = w->g();
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
      for (int64_t j = 0; j < D; ++j) {
        T s = 0;
        for (int64_t i = 0; i < N; ++i) s += o->grad[i * D + j] * x->value[i * D + j] * (*rstd)[i];
        dw[j] += s;
      }
    }
  });
}

template <class T>
Var<T> rope(Tape<T>& tape, const Var<T>& x, const std::vector<int64_t>& pos, int64_t n_head, int64_t head_dim,
            int64_t n_rot, const std::vector<float>& freqs) {
  const int64_t N = x->rows(), C = x->cols();
  SLM_ASSERT(C == n_head * head_dim && static_cast<int64_t>(pos.size()) == N && n_rot <= head_dim);
  // cs (N, n_rot): cos, sin per pair and row, as the inference kernel computes them.
  auto cs = std::make_shared<std::vector<T>>(static_cast<size_t>(N * n_rot));
  std::vector<float> row(static_cast<size_t>(n_rot));
  for (int64_t i = 0; i < N; ++i) {
    kernels::rope_table(n_rot, pos[i], freqs.data(), row.data());
    std::copy(row.begin(), row.end(), cs->begin() + i * n_rot);
  }
  // Rotates each pair by +angle (forward) or -angle (its transpose, backward).
  auto rotate = [=](const T* src, T* dst, T sign, bool accumulate) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
    for (int64_t i = 0; i < N; ++i)
      for (int64_t h = 0; h < n_head; ++h) {
        const T* s = src + i * C + h * head_dim;
        T* d = dst + i * C + h * head_dim;
        for (int64_t p = 0; p < n_rot / 2; ++p) {
          const T c = (*cs)[i * n_rot + 2 * p], sn = sign * (*cs)[i * n_rot + 2 * p + 1];
          const T a = s[2 * p], b = s[2 * p + 1];
          const T ra = a * c - b * sn, rb = a * sn + b * c;
          if (accumulate) {
            d[2 * p] += ra;
            d[2 * p + 1] += rb;
          } else {
            d[2 * p] = ra;
            d[2 * p + 1] = rb;
          }
        }
        for (int64_t j = n_rot; j < head_dim; ++j) d[j] = accumulate ? d[j] + s[j] : s[j];
      }
  };
  std::vector<T> y(x->value.size());
  if constexpr (std::is_same_v<T, float>) {  // the inference path's kernel
    y = x->value;
    for (int64_t i = 0; i < N; ++i)
      for (int64_t h = 0; h < n_head; ++h)
        kernels::rope_apply(&y[i * C + h * head_dim], n_rot, &(*cs)[i * n_rot], /*interleaved=*/true);
  } else {
    rotate(x->value.data(), y.data(), T(1), false);
  }
  Var<T> out = output(tape, {N, C}, std::move(y), {x});
  Node<T>* o = out.get();
  return finish(tape, out, [o, x, rotate]() { rotate(o->grad.data(), x->g(), T(-1), true); });
}

template <class T>
Var<T> attention(Tape<T>& tape, const Var<T>& q, const Var<T>& k, const Var<T>& v, int64_t batch, int64_t seq,
                 int64_t n_head, int64_t n_head_kv, int64_t head_dim, int64_t window) {
  const int64_t hd = head_dim, QC = n_head * hd, KC = n_head_kv * hd, group = n_head / n_head_kv, T2 = seq * seq;
  SLM_ASSERT(q->rows() == batch * seq && q->cols() == QC && k->cols() == KC && v->cols() == KC);
  const T scale = T(1) / std::sqrt(static_cast<T>(hd));
  // probs (batch, n_head, seq, seq): row i holds the softmax weights over its
  // keys j (j <= i, within the window), zero elsewhere. Per head, the products
  // are GEMMs over the whole square (BLAS beats a loop over the triangle).
  auto probs = std::make_shared<std::vector<T>>(static_cast<size_t>(batch * n_head * T2), T(0));
  auto first_key = [window](int64_t i) { return window > 0 ? std::max<int64_t>(0, i - window + 1) : 0; };
  std::vector<T> y(static_cast<size_t>(batch * seq * QC), T(0));
  const bool threads = batch * n_head * T2 * hd >= kParallelMin;
#pragma omp parallel for collapse(2) schedule(static) if (threads)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kh = h / group;
      T* P = &(*probs)[(b * n_head + h) * T2];
      const T* qh = &q->value[b * seq * QC + h * hd];
      const T* kb = &k->value[b * seq * KC + kh * hd];
      const T* vb = &v->value[b * seq * KC + kh * hd];
      gemm_ld(false, true, seq, seq, hd, qh, QC, kb, KC, T(0), P, seq);  // scores
      for (int64_t i = 0; i < seq; ++i) {
        T* pi = P + i * seq;
        const int64_t lo = first_key(i);
        T mx = -INFINITY;
        for (int64_t j = lo; j <= i; ++j) mx = std::max(mx, pi[j] * scale);
        T sum = 0;
        for (int64_t j = lo; j <= i; ++j) sum += (pi[j] = std::exp(pi[j] * scale - mx));
        for (int64_t j = 0; j < lo; ++j) pi[j] = 0;
        for (int64_t j = lo; j <= i; ++j) pi[j] /= sum;
        for (int64_t j = i + 1; j < seq; ++j) pi[j] = 0;
      }
      gemm_ld(false, false, seq, hd, seq, P, seq, vb, KC, T(0), &y[b * seq * QC + h * hd], QC);  // P V
    }
  Var<T> out = output(tape, {batch * seq, QC}, std::move(y), {q, k, v});
  Node<T>* o = out.get();
  return finish(tape, out, [=]() {
    T* dq = q->g();
    T* dk = k->g();
    T* dv = v->g();
    // One task per (sequence, KV head): its query heads write the same dK, dV rows.
#pragma omp parallel for collapse(2) schedule(static) if (threads)
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t kh = 0; kh < n_head_kv; ++kh) {
        std::vector<T> ds(static_cast<size_t>(T2));
        const T* kb = &k->value[b * seq * KC + kh * hd];
        const T* vb = &v->value[b * seq * KC + kh * hd];
        for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
          const T* P = &(*probs)[(b * n_head + h) * T2];
          const T* dyh = &o->grad[b * seq * QC + h * hd];
          const T* qh = &q->value[b * seq * QC + h * hd];
          gemm_ld(true, false, seq, hd, seq, P, seq, dyh, QC, T(1), dv + b * seq * KC + kh * hd, KC);  // dV += P^T dO
          gemm_ld(false, true, seq, seq, hd, dyh, QC, vb, KC, T(0), ds.data(), seq);                  // dP = dO V^T
          for (int64_t i = 0; i < seq; ++i) {  // dS = P (dP - sum_j P dP) / sqrt(hd)
            const T* pi = P + i * seq;
            T* di = &ds[i * seq];
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < seq; ++j) dot += pi[j] * di[j];
            for (int64_t j = 0; j < seq; ++j) di[j] = pi[j] * (di[j] - dot) * scale;
          }
          gemm_ld(false, false, seq, hd, seq, ds.data(), seq, kb, KC, T(1), dq + b * seq * QC + h * hd, QC);  // dQ += dS K
          gemm_ld(true, false, seq, hd, seq, ds.data(), seq, qh, QC, T(1), dk + b * seq * KC + kh * hd, KC);   // dK += dS^T Q
        }
      }
  });
}

template <class T>
Var<T> swiglu(Tape<T>& tape, const Var<T>& gate, const Var<T>& up) {
  const int64_t n = gate->numel();
  SLM_ASSERT(up->numel() == n);
  std::vector<T> y(static_cast<size_t>(n));
  if constexpr (std::is_same_v<T, float>) {
    kernels::swiglu(gate->value.data(), up->value.data(), y.data(), n);  // the inference path's kernel
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const T g = gate->value[i];
      y[i] = g / (T(1) + std::exp(-g)) * up->value[i];
    }
  }
  Var<T> out = output(tape, gate->shape, std::move(y), {gate, up});
  Node<T>* o = out.get();
  return finish(tape, out, [o, gate, up, n]() {
    T* dg = gate->g();
    T* du = up->g();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const T g = gate->value[i], s = T(1) / (T(1) + std::exp(-g));
      du[i] += o->grad[i] * g * s;
      dg[i] += o->grad[i] * up->value[i] * s * (T(1) + g * (T(1) - s));
    }
  });
}

template <class T>
Var<T> add(Tape<T>& tape, const Var<T>& a, const Var<T>& b) {
  const int64_t n = a->numel();
  SLM_ASSERT(b->numel() == n);
  std::vector<T> y(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a->value[i] + b->value[i];
  Var<T> out = output(tape, a->shape, std::move(y), {a, b});
  Node<T>* o = out.get();
  return finish(tape, out, [o, a, b, n]() {
    for (const Var<T>& in : {a, b}) {
      if (!in->requires_grad) continue;
      T* d = in->g();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) d[i] += o->grad[i];
    }
  });
}

template <class T>
Var<T> cross_entropy(Tape<T>& tape, const Var<T>& logits, const std::vector<int32_t>& targets) {
  const int64_t N = logits->rows(), V = logits->cols();
  SLM_ASSERT(static_cast<int64_t>(targets.size()) == N);
  // probs (N, V): the softmax, kept for the backward pass.
  auto probs = std::make_shared<std::vector<T>>(logits->value.size());
  std::vector<T> row_loss(static_cast<size_t>(N), T(0));
  int64_t counted = 0;
  for (int32_t t : targets) counted += t >= 0 ? 1 : 0;
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
  for (int64_t i = 0; i < N; ++i) {
    const T* x = &logits->value[i * V];
    T* p = &(*probs)[i * V];
    T mx = x[0];
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, x[j]);
    T sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += (p[j] = std::exp(x[j] - mx));
    for (int64_t j = 0; j < V; ++j) p[j] /= sum;
    if (targets[i] >= 0) row_loss[i] = -(x[targets[i]] - mx - std::log(sum));
  }
  T loss = 0;
  for (T l : row_loss) loss += l;
  const T inv = counted > 0 ? T(1) / static_cast<T>(counted) : T(0);
  Var<T> out = output(tape, {}, std::vector<T>{loss * inv}, {logits});
  Node<T>* o = out.get();
  return finish(tape, out, [o, logits, targets, probs, N, V, inv]() {
    T* dx = logits->g();
    const T g = o->grad[0] * inv;
#pragma omp parallel for schedule(static) if (N * V >= kParallelMin)
    for (int64_t i = 0; i < N; ++i) {
      if (targets[i] < 0) continue;
      const T* p = &(*probs)[i * V];
      for (int64_t j = 0; j < V; ++j) dx[i * V + j] += g * p[j];
      dx[i * V + targets[i]] -= g;
    }
  });
}

template <class T>
Var<T> checkpoint(Tape<T>& tape, const Var<T>& x, std::function<Var<T>(Tape<T>&, const Var<T>&)> fn) {
  Var<T> y;
  {
    Tape<T> inner;
    inner.bf16 = tape.bf16;
    Var<T> xin = make_var<T>(x->shape, x->value, false);
    y = fn(inner, xin);  // the inner tape and its activations go out of scope here
  }
  Var<T> out = make_var<T>(y->shape, std::move(y->value), true);
  Node<T>* o = out.get();
  const bool bf16 = tape.bf16;
  return finish(tape, out, [o, x, fn, bf16]() {
    Tape<T> inner;
    inner.bf16 = bf16;
    Var<T> xin = make_var<T>(x->shape, x->value, x->requires_grad);
    Var<T> yin = fn(inner, xin);
    std::memcpy(yin->g(), o->grad.data(), sizeof(T) * o->grad.size());
    inner.backward_seeded();
    if (x->requires_grad) {
      T* dx = x->g();
      for (size_t i = 0; i < xin->grad.size(); ++i) dx[i] += xin->grad[i];
    }
  });
}

#define SLM_INSTANTIATE(T)                                                                                         \
  template Var<T> make_var<T>(std::vector<int64_t>, std::vector<T>, bool);                                        \
  template class Tape<T>;                                                                                          \
  template Var<T> embedding<T>(Tape<T>&, const Var<T>&, const std::vector<int32_t>&);                             \
  template Var<T> linear<T>(Tape<T>&, const Var<T>&, const Var<T>&);                                              \
  template Var<T> rmsnorm<T>(Tape<T>&, const Var<T>&, const Var<T>&, T);                                          \
  template Var<T> rope<T>(Tape<T>&, const Var<T>&, const std::vector<int64_t>&, int64_t, int64_t, int64_t,         \
                          const std::vector<float>&);                                                              \
  template Var<T> attention<T>(Tape<T>&, const Var<T>&, const Var<T>&, const Var<T>&, int64_t, int64_t, int64_t,  \
                               int64_t, int64_t, int64_t);                                                         \
  template Var<T> swiglu<T>(Tape<T>&, const Var<T>&, const Var<T>&);                                              \
  template Var<T> add<T>(Tape<T>&, const Var<T>&, const Var<T>&);                                                 \
  template Var<T> cross_entropy<T>(Tape<T>&, const Var<T>&, const std::vector<int32_t>&);                         \
  template Var<T> checkpoint<T>(Tape<T>&, const Var<T>&, std::function<Var<T>(Tape<T>&, const Var<T>&)>);

SLM_INSTANTIATE(float)
SLM_INSTANTIATE(double)

}  // namespace slm::train
