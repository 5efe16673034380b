#include "slm/compress/obs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>


namespace slm::compress {

namespace {

constexpr int64_t kGroup = 32;  // GGUF's block of Q4_0 / Q8_0: rows are whole blocks

// The k smallest of scores (ties by index) marked in mask[0..n).
void mark_smallest(const float* scores, int64_t n, int64_t k, uint8_t* mask, int64_t stride = 1) {
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto less = [&](int64_t a, int64_t b) {
    return scores[a] != scores[b] ? scores[a] < scores[b] : a < b;
  };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), less);
  for (int64_t i = 0; i < std::min(k, n); ++i) mask[idx[static_cast<size_t>(i)] * stride] = 1;
}

// Parallel loops only past some work: tiny layers would wait on barriers.

// The OBS column sweep shared by SparseGPT and GPTQ (Algorithm 1 of GPTQ):
// per block of columns, on_block(i1, i2) sees the weights with every earlier
// block's update applied; then each row independently replaces its column i
// by col(r, i, w_ri, row) and spreads the error (w - q) / U_ii over its later
// columns, within the block at once and past it lazily.
template <class OnBlock, class Col>
void sweep(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& u, int64_t block,
           OnBlock on_block, Col col) {
  std::vector<double> err(static_cast<size_t>(rows * block));
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    const int64_t i2 = std::min(i1 + block, cols);
    on_block(i1, i2);
#pragma omp parallel for schedule(static) if (rows * cols * (i2 - i1) > (int64_t{1} << 20))
    for (int64_t r = 0; r < rows; ++r) {
      float* wr = &w[static_cast<size_t>(r * cols)];
      double* er = &err[static_cast<size_t>(r * block)];
      for (int64_t i = i1; i < i2; ++i) {
        const double* ui = &u[static_cast<size_t>(i * cols)];
        const float q = col(r, i, wr);
        const double e = (static_cast<double>(wr[i]) - q) / ui[i];
        wr[i] = q;
        er[i - i1] = e;
        if (e == 0) continue;
        for (int64_t j = i + 1; j < i2; ++j) wr[j] -= static_cast<float>(e * ui[j]);
      }
      for (int64_t i = i1; i < i2; ++i) {
        const double e = er[i - i1];
        if (e == 0) continue;
        const double* ui = &u[static_cast<size_t>(i * cols)];
        for (int64_t j = i2; j < cols; ++j) wr[j] -= static_cast<float>(e * ui[j]);
      }
    }
  }
}

// Inputs never seen in calibration (H_jj = 0) carry no information: their
// weights are zeroed (they never contribute on the calibration data), as the
// reference implementations do, and H_jj = 1 keeps H invertible.
void zero_dead(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h) {
  for (int64_t j = 0; j < cols; ++j)
    if (h[static_cast<size_t>(j * cols + j)] == 0)
      for (int64_t r = 0; r < rows; ++r) w[static_cast<size_t>(r * cols + j)] = 0;
}

Status check_shapes(const char* op, size_t w, size_t h, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0 || w != static_cast<size_t>(rows * cols) || h != static_cast<size_t>(cols * cols))
    return Status::InvalidArgument(fmt::format("[{}] weights of {} values and a Hessian of {} for a ({}, {}) layer",
                                               op, w, h, rows, cols));
  return Status::Ok();
}

}  // namespace

bool cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double* aj = &a[static_cast<size_t>(j * n)];
    double s = aj[j];
    for (int64_t k = 0; k < j; ++k) s -= aj[k] * aj[k];
    if (!(s > 0)) return false;
    const double d = std::sqrt(s);
    aj[j] = d;
#pragma omp parallel for schedule(static) if (n - j > 256)
    for (int64_t i = j + 1; i < n; ++i) {
      double* ai = &a[static_cast<size_t>(i * n)];
      double t = ai[j];
      for (int64_t k = 0; k < j; ++k) t -= ai[k] * aj[k];
      ai[j] = t / d;
    }
    for (int64_t k = j + 1; k < n; ++k) aj[k] = 0;
  }
  return true;
}

Result<std::vector<double>> inverse_hessian_factor(std::vector<double> h, int64_t n, double damp) {
  double mean = 0;
  for (int64_t j = 0; j < n; ++j) {
    double& d = h[static_cast<size_t>(j * n + j)];
    if (d == 0) d = 1;
    mean += d / static_cast<double>(n);
  }
  std::vector<double> l;
  double lambda = damp * mean;
  for (int attempt = 0;; ++attempt) {
    l = h;
    for (int64_t j = 0; j < n; ++j) l[static_cast<size_t>(j * n + j)] += lambda;
    if (cholesky_lower(l, n)) break;
    if (attempt == 5 || (lambda == 0 && mean == 0))
      return Status::InvalidArgument(fmt::format(
          "[gptq] the calibration Hessian ({} x {}) is not positive definite even damped by {:.3g}", n, n, lambda));
    lambda = lambda > 0 ? lambda * 10 : 1e-6 * mean;
  }
  // L^-1 (lower), column by column by forward substitution.
  std::vector<double> li(static_cast<size_t>(n * n), 0.0);
#pragma omp parallel for schedule(dynamic, 8) if (n > 128)
  for (int64_t c = 0; c < n; ++c) {
    li[static_cast<size_t>(c * n + c)] = 1.0 / l[static_cast<size_t>(c * n + c)];
    for (int64_t i = c + 1; i < n; ++i) {
      double s = 0;
      for (int64_t k = c; k < i; ++k) s += l[static_cast<size_t>(i * n + k)] * li[static_cast<size_t>(k * n + c)];
      li[static_cast<size_t>(i * n + c)] = -s / l[static_cast<size_t>(i * n + i)];
    }
  }
  // H^-1 = L^-T L^-1.
  std::vector<double> hinv(static_cast<size_t>(n * n));
#pragma omp parallel for schedule(dynamic, 8) if (n > 128)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = i; k < n; ++k) s += li[static_cast<size_t>(k * n + i)] * li[static_cast<size_t>(k * n + j)];
      hinv[static_cast<size_t>(i * n + j)] = hinv[static_cast<size_t>(j * n + i)] = s;
    }
  if (!cholesky_lower(hinv, n))
    return Status::Internal(fmt::format("[gptq] the inverse Hessian ({} x {}) lost positive definiteness", n, n));
  // U = L'^T for H^-1 = L' L'^T.
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      std::swap(hinv[static_cast<size_t>(i * n + j)], hinv[static_cast<size_t>(j * n + i)]);
  return hinv;
}

std::vector<uint8_t> prune_mask(const std::vector<float>& w, int64_t rows, int64_t cols,
                                const std::vector<float>& act_norm, double sparsity, int n_of, int m) {
  std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0);
#pragma omp parallel for schedule(static) if (rows * cols > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> s(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j)
      s[static_cast<size_t>(j)] = std::fabs(w[static_cast<size_t>(r * cols + j)]) *
                                  (act_norm.empty() ? 1.0f : act_norm[static_cast<size_t>(j)]);
    uint8_t* mr = &mask[static_cast<size_t>(r * cols)];
    if (m > 0) {
      for (int64_t g = 0; g + m <= cols; g += m) mark_smallest(&s[static_cast<size_t>(g)], m, n_of, mr + g);
    } else {
      mark_smallest(s.data(), cols, static_cast<int64_t>(static_cast<double>(cols) * sparsity), mr);
    }
  }
  return mask;
}

Result<std::vector<uint8_t>> sparsegpt(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h,
                                       double sparsity, int n_of, int m, const ObsOptions& opt) {
  SLM_RETURN_IF_ERROR(check_shapes("sparsegpt", w.size(), h.size(), rows, cols));
  zero_dead(w, rows, cols, h);
  SLM_ASSIGN_OR_RETURN(auto u, inverse_hessian_factor(h, cols, opt.damp));
  std::vector<uint8_t> mask(static_cast<size_t>(rows * cols), 0);
  auto score = [&](int64_t j, const float* wr) {
    const double d = u[static_cast<size_t>(j * cols + j)];
    return static_cast<float>(static_cast<double>(wr[j]) * wr[j] / (d * d));
  };
  auto on_block = [&](int64_t i1, int64_t i2) {
    if (m > 0) return;  // N:M: chosen per row as the sweep reaches each group
    const int64_t nb = i2 - i1;
    std::vector<float> s(static_cast<size_t>(rows * nb));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = i1; j < i2; ++j) s[static_cast<size_t>(r * nb + j - i1)] = score(j, &w[static_cast<size_t>(r * cols)]);
    std::vector<uint8_t> bm(s.size(), 0);
    mark_smallest(s.data(), static_cast<int64_t>(s.size()), static_cast<int64_t>(static_cast<double>(s.size()) * sparsity),
                  bm.data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = i1; j < i2; ++j) mask[static_cast<size_t>(r * cols + j)] = bm[static_cast<size_t>(r * nb + j - i1)];
  };
  auto col = [&](int64_t r, int64_t i, const float* wr) {
    uint8_t* mr = &mask[static_cast<size_t>(r * cols)];
    if (m > 0 && i % m == 0 && i + m <= cols) {
      float s[64];
      for (int k = 0; k < m; ++k) s[k] = score(i + k, wr);
      mark_smallest(s, m, n_of, mr + i);
    }
    return mr[i] ? 0.0f : wr[i];
  };
  if (m > 64) return Status::InvalidArgument(fmt::format("[sparsegpt] N:M with M = {} (at most 64)", m));
  const int64_t block = m > 0 ? std::max<int64_t>(m, opt.block / m * m) : opt.block;
  sweep(w, rows, cols, u, block, on_block, col);
  return mask;
}

Result<std::vector<uint8_t>> gptq(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h,
                                  const QuantFormat& f, const ObsOptions& opt) {
  SLM_RETURN_IF_ERROR(check_shapes("gptq", w.size(), h.size(), rows, cols));
  if (!has_groups(f))
    return Status::InvalidArgument(fmt::format("[gptq] cannot write {} (Q4_0, Q4_1, Q5_0, Q8_0, int4, int8)", f.name()));
  if (cols % kGroup != 0 || opt.block % kGroup != 0)
    return Status::InvalidArgument(fmt::format("[gptq] rows of {} values (block {}): not whole blocks of 32", cols, opt.block));
  zero_dead(w, rows, cols, h);
  const int64_t gs = f.group_size(cols), n_groups = (cols + gs - 1) / gs;
  std::vector<GroupParams> params(static_cast<size_t>(rows * n_groups));
  auto fix_params = [&](int64_t g1, int64_t g2) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = g1; g < g2; ++g)
        params[static_cast<size_t>(r * n_groups + g)] =
            group_params(f, &w[static_cast<size_t>(r * cols + g * gs)], std::min(gs, cols - g * gs));
  };
  // The GGUF types fix the scales of the four blocks of 32 in each lazy
  // block of 128 when the sweep reaches it. int4 / int8 fix a group's when
  // the sweep reaches its first column, from the weights as updated by all
  // the columns before (the GPTQ paper's groups): lazy blocks then start at
  // every group.
  const int64_t block = f.int_bits != 0 && gs < cols ? std::gcd(gs, opt.block) : opt.block;

  // Act-order: the sweep runs over columns permuted by decreasing H_jj; the
  // parameters come from the original weights (static groups).
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<double> hp;
  const std::vector<double>* hs = &h;
  if (opt.act_order) {
    fix_params(0, n_groups);
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
      return h[static_cast<size_t>(a * cols + a)] > h[static_cast<size_t>(b * cols + b)];
    });
    hp.resize(h.size());
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        hp[static_cast<size_t>(i * cols + j)] = h[static_cast<size_t>(perm[i] * cols + perm[j])];
    hs = &hp;
    std::vector<float> wp(w.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < cols; ++i) wp[static_cast<size_t>(r * cols + i)] = w[static_cast<size_t>(r * cols + perm[i])];
    w.swap(wp);
  }
  SLM_ASSIGN_OR_RETURN(auto u, inverse_hessian_factor(*hs, cols, opt.damp));
  std::vector<int8_t> code(static_cast<size_t>(rows * cols));
  auto on_block = [&](int64_t i1, int64_t i2) {
    if (!opt.act_order) fix_params((i1 + gs - 1) / gs, (i2 + gs - 1) / gs);  // the groups starting in [i1, i2)
  };
  auto col = [&](int64_t r, int64_t i, const float* wr) {
    const int64_t c = perm[static_cast<size_t>(i)];
    const GroupParams p = params[static_cast<size_t>(r * n_groups + c / gs)];
    const int q = group_code(f, wr[i], p);
    code[static_cast<size_t>(r * cols + c)] = static_cast<int8_t>(q);
    return group_value(f, q, p);
  };
  sweep(w, rows, cols, u, block, on_block, col);

  // Back to the stored order, and into GGUF blocks.
  const size_t rb = row_bytes(f.type, cols);
  std::vector<uint8_t> out(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const GroupParams* p = &params[static_cast<size_t>(r * n_groups)];
    for (int64_t c = 0; c < cols; ++c)
      w[static_cast<size_t>(r * cols + c)] = group_value(f, code[static_cast<size_t>(r * cols + c)], p[c / gs]);
    pack_row(f, &code[static_cast<size_t>(r * cols)], p, cols, out.data() + static_cast<size_t>(r) * rb);
  }
  return out;
}

double output_error(const std::vector<float>& w, const std::vector<float>& w_hat, int64_t rows, int64_t cols,
                    const std::vector<double>& h) {
  double num = 0, den = 0;
#pragma omp parallel for reduction(+ : num, den) schedule(static) if (rows * cols * cols > (int64_t{1} << 20))
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> d(static_cast<size_t>(cols)), x(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; ++j) {
      x[static_cast<size_t>(j)] = w[static_cast<size_t>(r * cols + j)];
      d[static_cast<size_t>(j)] = x[static_cast<size_t>(j)] - w_hat[static_cast<size_t>(r * cols + j)];
    }
    for (int64_t i = 0; i < cols; ++i) {
      const double* hi = &h[static_cast<size_t>(i * cols)];
      double sd = 0, sx = 0;
      for (int64_t j = 0; j < cols; ++j) {
        sd += hi[j] * d[static_cast<size_t>(j)];
        sx += hi[j] * x[static_cast<size_t>(j)];
      }
      num += d[static_cast<size_t>(i)] * sd;
      den += x[static_cast<size_t>(i)] * sx;
    }
  }
  return den > 0 ? num / den : 0.0;
}

}  // namespace slm::compress
