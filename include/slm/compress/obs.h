// Weight compression of one linear layer given its calibration Hessian
// H = sum over tokens of x x^T (x: the layer's input, (cols)):
//
// - prune_mask: magnitude (|W|) and Wanda (|W| * ||X_j||, Sun et al. 2023,
//   arXiv:2306.11695) scores, compared within each output row, unstructured
//   or N:M (n of every m consecutive inputs pruned).
// - sparsegpt: SparseGPT (Frantar & Alistarh 2023, arXiv:2301.00774):
//   prunes column by column and updates the columns not yet visited to
//   compensate (Optimal Brain Surgeon with the Cholesky factor of H^-1);
//   mask chosen per block of 128 columns by w^2 / [H^-1]_jj^2.
// - gptq: GPTQ (Frantar et al. 2022, arXiv:2210.17323) into the formats of
//   format.h with groups (Q4_0, Q4_1, Q5_0, Q8_0, int4 and int8 with group
//   size G): the same sweep, quantizing each column instead, with lazy
//   block updates, damping and optional act-order. Each group's parameters
//   are fixed from the (updated) weights when the sweep reaches it (the GGUF
//   types: their blocks of 32 when it reaches their block of 128 columns);
//   with act-order, from the original weights (static groups), since GGUF
//   blocks are contiguous.
//
// Matrices are row-major: W (rows, cols) as a linear layer stores it (one row
// per output), H (cols, cols) in double. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "slm/compress/format.h"
#include "slm/core/dtype.h"
#include "slm/core/status.h"

namespace slm::compress {

// In place: the lower Cholesky factor L of a (n, n) symmetric positive
// definite a (a = L L^T; the upper triangle is zeroed). False if not SPD.
bool cholesky_lower(std::vector<double>& a, int64_t n);

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U) after damping H's
// diagonal by damp * mean(diag H); dead inputs (H_jj = 0) get H_jj = 1. The
// damping is raised tenfold until H is positive definite (an error after 6 tries).
Result<std::vector<double>> inverse_hessian_factor(std::vector<double> h, int64_t n, double damp);

// Which weights to drop: true = pruned. act_norm (cols) = ||X_j||_2 for
// Wanda; empty for magnitude. sparsity in [0, 1) for unstructured; n_m > 0
// (n of every m) for N:M, where sparsity is ignored.
std::vector<uint8_t> prune_mask(const std::vector<float>& w, int64_t rows, int64_t cols,
                                const std::vector<float>& act_norm, double sparsity, int n_of = 0, int m = 0);

struct ObsOptions {
  double damp = 0.01;     // of mean(diag H)
  int64_t block = 128;    // lazy-update block (a multiple of 32)
  bool act_order = false; // GPTQ: columns by decreasing H_jj
};

// SparseGPT, in place on w; returns the mask (true = pruned).
Result<std::vector<uint8_t>> sparsegpt(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h,
                                       double sparsity, int n_of, int m, const ObsOptions& opt);

// GPTQ of w into rows * row_bytes(f.type, cols) bytes of f's GGUF blocks
// (cols a multiple of 32; not the k-quants). w is left holding the dequantized result.
Result<std::vector<uint8_t>> gptq(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h,
                                  const QuantFormat& f, const ObsOptions& opt);

// The layer's output error on the calibration inputs relative to its
// output: tr(D H D^T) / tr(W H W^T), D = w - w_hat.
double output_error(const std::vector<float>& w, const std::vector<float>& w_hat, int64_t rows, int64_t cols,
                    const std::vector<double>& h);

}  // namespace slm::compress
