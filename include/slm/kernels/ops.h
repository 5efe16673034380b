// The math of a transformer block on float buffers. Each op has a plain scalar
// reference (*_ref, the oracle) and a version that dispatches to the CPU's
// SIMD kernels (dispatch.h); matmul splits its output rows over OpenMP
// threads. Buffers are row-major; shapes in comments.
// Thread-safe: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "slm/core/tensor.h"

namespace slm::kernels {

// Makes row t of a matmul's x just before it is read (prep(t) once for each
// t): a caller's per-token work (a norm, a residual add) done by the thread
// that converts the row, in the matmul's parallel region, rather than by one
// thread before it while the others wait; or all first, in order, where the
// matmul has no such region. Calls for different t may run at once.
using RowPrep = std::function<void(int64_t t)>;

// y (n_tok, w.rows) = x (n_tok, w.cols) @ w^T, for any weight dtype.
void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, const RowPrep& prep = {});
// Several weights reading the same x (q, k and v; gate and up): y[i]
// (n_tok, w[i].rows). Repacked weights take x quantized once and share one
// fork and join of the threads; others go one matmul each.
void matmul_shared(std::span<const TensorView* const> w, const float* x, int64_t n_tok, std::span<float* const> y,
                   const RowPrep& prep = {});

// Repacking (a model's repack option): a weight matrix copied once into the
// row panels matmul reads without unpacking them per call (dispatch.h,
// PanelKernels::store). Q4_0, Q8_0 and Q4_K on AVX-512 VNNI, at about the
// file's bits per weight: one token's matmuls read memory faster, several
// tokens' (batched decoding, prompts) skip the unpacking. The copy is the
// point, so it is an option and not how models load.
// repacked_bytes: bytes of w repacked on this CPU's kernels, 0 when its type
// (or layout) has no stored panels here. repack: writes them to out (64-byte
// aligned) and returns the view of them, layout kPanels, name/shape/dtype w's.
int64_t repacked_bytes(const TensorView& w);
TensorView repack(const TensorView& w, void* out);

// Asks for the cache lines of [p, p + bytes) ahead of their use (prefetcht0).
// Never faults: the range may run past an allocation.
void prefetch(const void* p, int64_t bytes);

// y += bias (n_tok, n) with bias a 1-D tensor of n elements of any plain dtype.
void add_bias(const TensorView& bias, float* y, int64_t n_tok);
// Row r of an embedding table (any dtype) as float: out (w.cols).
void get_row(const TensorView& w, int64_t r, float* out);

// out (n) = x / sqrt(mean(x^2) + eps) * w
void rmsnorm(const float* x, const float* w, float eps, float* out, int64_t n);
void rmsnorm_ref(const float* x, const float* w, float eps, float* out, int64_t n);

// out (n) = (x - mean(x)) / sqrt(var(x) + eps) * w + b, b may be null
// (torch.nn.LayerNorm, biased variance). Scalar only: it is not on a hot path.
void layernorm(const float* x, const float* w, const float* b, float eps, float* out, int64_t n);

// Rotary embedding of one head vector x (head_dim) at position pos, rotating
// the first n_rot dims. interleaved: pairs (2i, 2i+1) as GGUF/llama2.c store
// them; otherwise pairs (i, i + n_rot/2), Hugging Face's rotate_half.
// freqs (n_rot/2) holds the per-pair inverse frequencies (scaling applied).
void rope_ref(float* x, int64_t n_rot, int64_t pos, const float* freqs, bool interleaved);
// The same in two steps, so a position's cosines and sines are computed once
// for all its heads: cs (n_rot) = {cos_0, sin_0, cos_1, sin_1, ...}.
void rope_table(int64_t n_rot, int64_t pos, const float* freqs, float* cs);
void rope_apply(float* x, int64_t n_rot, const float* cs, bool interleaved);

// out (n) = exp(x - shift) (0 below exp(-87)); returns their sum: softmax numerators.
double exp_sum(const float* x, float shift, float* out, int64_t n);

// y (n) = x as fp16, rounded to nearest even.
void to_f16(const float* x, uint16_t* y, int64_t n);

// out (n) = silu(gate) * up; out may alias gate.
void swiglu(const float* gate, const float* up, float* out, int64_t n);
void swiglu_ref(const float* gate, const float* up, float* out, int64_t n);

// x (n) = gelu(x) in place, exact (x * Phi(x), with erf) or the tanh
// approximation (GPT-2's gelu_new, Gemma's gelu_pytorch_tanh). Scalar only.
void gelu(float* x, int64_t n);
void gelu_tanh(float* x, int64_t n);

}  // namespace slm::kernels
