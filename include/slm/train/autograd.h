// Reverse-mode automatic differentiation over the ops of the Llama block.
//
// A Var is a node: a value buffer (row-major, shape outermost first), a
// gradient buffer of the same size (allocated on first use), and, for nodes
// an op made, a closure that adds its output gradient into its inputs'
// gradients. A Tape records op outputs in execution order; backward() runs
// the closures in reverse. Parameters are leaf Vars that outlive tapes: their
// gradients accumulate over backward calls until the optimizer clears them.
//
// Templated on the scalar: float trains, double checks gradients against
// finite differences. In float the forward passes of linear, RMSNorm, rotary
// and SwiGLU call the inference kernels (kernels/ops.h); the backward passes
// and attention use OpenBLAS. Ops split their loops over OpenMP threads with a fixed
// partition and no atomic float sums, so results depend only on the thread
// count, not on scheduling (resume is bit-identical).
//
// Not thread-safe: one tape per thread (the ops themselves use the threads).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace slm::train {

template <class T>
struct Node {
  std::vector<int64_t> shape;
  std::vector<T> value;
  std::vector<T> grad;  // empty until first needed
  bool requires_grad = false;
  std::function<void()> backward;  // set by the op that made the node

  int64_t numel() const { return static_cast<int64_t>(value.size()); }
  int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
  int64_t rows() const { return shape.empty() ? 1 : numel() / cols(); }
  // The gradient buffer, zero-filled on first use.
  T* g() {
    if (grad.size() != value.size()) grad.assign(value.size(), T(0));
    return grad.data();
  }
};

template <class T>
using Var = std::shared_ptr<Node<T>>;

template <class T>
Var<T> make_var(std::vector<int64_t> shape, std::vector<T> value, bool requires_grad);

template <class T>
class Tape {
 public:
  // bf16: matmul inputs are rounded to bfloat16 (round to nearest even) and
  // products accumulate in T: the numerics of bf16 mixed precision with fp32
  // master weights.
  bool bf16 = false;

  // Adds an op's output (with its backward set) to the record.
  void record(const Var<T>& v) { nodes_.push_back(v); }
  // Seeds d(loss)/d(loss) = seed (loss must be a scalar; 1/k averages k
  // accumulated micro-batches) and runs every recorded backward in reverse,
  // accumulating into leaf gradients.
  void backward(const Var<T>& loss, T seed = T(1));
  // Gradient of an arbitrary output: its grad buffer must already be seeded.
  void backward_seeded();
  size_t size() const { return nodes_.size(); }

 private:
  std::vector<Var<T>> nodes_;
};

// Ops. Shapes in comments; N = rows (tokens), every buffer row-major.

// out (N, D) = table (V, D)[tokens]
template <class T>
Var<T> embedding(Tape<T>& tape, const Var<T>& table, const std::vector<int32_t>& tokens);
// out (N, out) = x (N, in) @ w (out, in)^T
template <class T>
Var<T> linear(Tape<T>& tape, const Var<T>& x, const Var<T>& w);
// out (N, D) = x / sqrt(mean(x^2) + eps) * w (D)
template <class T>
Var<T> rmsnorm(Tape<T>& tape, const Var<T>& x, const Var<T>& w, T eps);
// Rotary embedding of x (N, n_head * head_dim): row r of sequence position
// pos[r], pairs (2i, 2i+1) of each head's first n_rot dims (GGUF's layout),
// freqs (n_rot / 2) the inverse frequencies.
template <class T>
Var<T> rope(Tape<T>& tape, const Var<T>& x, const std::vector<int64_t>& pos, int64_t n_head, int64_t head_dim,
            int64_t n_rot, const std::vector<float>& freqs);
// Causal grouped-query attention within each of B sequences of T tokens:
// q (B*T, n_head*hd), k and v (B*T, n_head_kv*hd) -> (B*T, n_head*hd).
// Scores scaled by 1/sqrt(hd); a positive window limits each query to the
// window's most recent keys.
template <class T>
Var<T> attention(Tape<T>& tape, const Var<T>& q, const Var<T>& k, const Var<T>& v, int64_t batch, int64_t seq,
                 int64_t n_head, int64_t n_head_kv, int64_t head_dim, int64_t window = 0);
// out = silu(gate) * up, elementwise
template <class T>
Var<T> swiglu(Tape<T>& tape, const Var<T>& gate, const Var<T>& up);
// out = a + b, elementwise
template <class T>
Var<T> add(Tape<T>& tape, const Var<T>& a, const Var<T>& b);
// Scalar mean over rows with target >= 0 of -log softmax(logits (N, V))[target].
template <class T>
Var<T> cross_entropy(Tape<T>& tape, const Var<T>& logits, const std::vector<int32_t>& targets);

// Activation recomputation: runs fn(tape, x) keeping only its output; the
// backward pass runs fn again on a fresh tape and backpropagates through it.
// fn must be deterministic; its parameters are captured by fn itself.
template <class T>
Var<T> checkpoint(Tape<T>& tape, const Var<T>& x, std::function<Var<T>(Tape<T>&, const Var<T>&)> fn);

}  // namespace slm::train
