#include "slm/kernels/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "slm/core/assert.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/quant.h"

namespace slm::kernels {

namespace {

constexpr int64_t kMinParallelWork = int64_t{1} << 16;

// Aligned scratch for activations in a weight type's format.
using ActBuffer = std::unique_ptr<uint8_t, decltype(&std::free)>;
ActBuffer act_buffer(int64_t bytes) {
  // 64-byte aligned, so SIMD loads never split a cache line.
  ActBuffer b(static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64))), &std::free);
  SLM_ASSERT(b != nullptr);
  return b;
}

// The activations of a panel matmul: x's rows in the weight type's format,
// and two by two where its panels pair tokens (PanelKernels::pair).
struct PanelInput {
  ActType type;
  int64_t ab, pb = 0;  // bytes per row, per pair of rows
  ActBuffer rows, pairs{nullptr, &std::free};
  PanelInput(const WeightKernels& k, int64_t cols, int64_t n_tok)
      : type(k.act_type), ab(act_row_bytes(k.act_type, cols)), rows(act_buffer(ab * n_tok)) {
    if (k.panel->pair == nullptr || n_tok < 2) return;
    pb = pair_row_bytes(type, cols);
    pairs = act_buffer(pb * (n_tok / 2));
  }
  // Called by every thread of a parallel region: two tokens per iteration,
  // made (prep), converted, then paired.
  void fill(const WeightKernels& k, const float* x, int64_t cols, int64_t n_tok, const RowPrep& prep) {
    const QuantizeActFn quantize = kernels().quantize_act[static_cast<int>(type)];
#pragma omp for schedule(static)
    for (int64_t p = 0; p < (n_tok + 1) / 2; ++p) {
      for (int64_t t = 2 * p; t < std::min(n_tok, 2 * p + 2); ++t) {
        if (prep) prep(t);
        quantize(x + t * cols, rows.get() + t * ab, cols);
      }
      if (pairs != nullptr && 2 * p + 1 < n_tok)
        k.panel->pair(rows.get() + 2 * p * ab, rows.get() + (2 * p + 1) * ab, cols, pairs.get() + p * pb);
    }
  }
  // Tokens [t0, t0 + nt) (t0 even) from block b0 (a record's first).
  PanelActs at(int64_t t0, int64_t nt, int64_t b0) const {
    PanelActs a{rows.get() + t0 * ab + act_row_bytes(type, b0 * 32), ab, nt};
    if (pairs != nullptr) {
      a.pairs = pairs.get() + t0 / 2 * pb + pair_row_bytes(type, b0 * 32);
      a.pair_stride = pb;
    }
    return a;
  }
};

// Row panels (dispatch.h): a panel of kPanelRows rows at a time per thread,
// unpacked kPanelChunk blocks at a time into a scratch that stays in L1, then
// dotted with every token; later chunks add to the outputs.
// Chunks start at whole activation records (ActQ8x64: 2 blocks, ActQ8x256: 8).
constexpr int64_t kPanelChunk = 16, kPrefetchChunks = 2, kPanelTokenGroup = 64;

void matmul_panels(const WeightKernels& k, const TensorView& w, const float* x, int64_t n_tok, float* y,
                   const RowPrep& prep) {
  const PanelKernels& pk = *k.panel;
  const int64_t rows = w.rows(), cols = w.cols(), nb = cols / 32;
  const int64_t wb = static_cast<int64_t>(row_bytes(w.dtype, cols));
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows;
  const int64_t block_bytes = wb / nb, n_chunks = (nb + kPanelChunk - 1) / kPanelChunk;
  const auto* base = static_cast<const uint8_t*>(w.data);
  PanelInput in(k, cols, n_tok);
#pragma omp parallel if (rows * cols * n_tok > kMinParallelWork)
  {
    in.fill(k, x, cols, n_tok, prep);
    alignas(64) uint8_t scratch[kPanelChunk * kPanelBlockBytes];
    // Long prompts go kPanelTokenGroup tokens at a time (each group packs the
    // panels again), so a chunk's activations stay in L2.
    for (int64_t t0 = 0; t0 < n_tok; t0 += kPanelTokenGroup) {
    const int64_t nt = std::min(kPanelTokenGroup, n_tok - t0);
#pragma omp for schedule(static) nowait
    for (int64_t p = 0; p < n_panels; ++p) {
      const int64_t r0 = p * kPanelRows;
      const int nw = static_cast<int>(std::min<int64_t>(kPanelRows, rows - r0));
      for (int64_t ci = 0; ci < n_chunks; ++ci) {
        const int64_t b0 = ci * kPanelChunk, n = std::min(kPanelChunk, nb - b0);
        // The 16 rows are 16 streams through memory, more than the hardware
        // prefetchers follow: ask for the lines of the chunk kPrefetchChunks on
        // (in this panel or the next ones), a quarter of its rows before each
        // quarter of this chunk is packed, so the requests do not queue at once.
        const int64_t ahead = ci + kPrefetchChunks, pp = p + ahead / n_chunks;
        const int64_t pb0 = ahead % n_chunks * kPanelChunk;
        const int64_t lo = pb0 * block_bytes, hi = std::min(nb, pb0 + kPanelChunk) * block_bytes;
        const int64_t prow0 = pp * kPanelRows, prows = pp < n_panels ? std::min<int64_t>(kPanelRows, rows - prow0) : 0;
        for (int q = 0; q < 4; ++q) {
          for (int64_t r = q * prows / 4; r < (q + 1) * prows / 4; ++r)
            prefetch(base + (prow0 + r) * wb + lo, hi - lo);
          const int64_t q0 = n * q / 4, q1 = n * (q + 1) / 4;
          if (q1 > q0) pk.pack(base + r0 * wb, wb, nw, b0 + q0, q1 - q0, scratch + q0 * kPanelBlockBytes);
        }
        pk.dot(n, scratch, nw, in.at(t0, nt, b0), y + t0 * rows + r0, rows, b0 > 0);
      }
    }
    }
  }
}

// Stored panels (repack): each panel's blocks in place, a chunk at a time
// against every token (dot_stored prefetches its own stream).
int64_t stored_panel_bytes(const PanelKernels& pk, int64_t cols) {
  return (cols / 32 + pk.stored_group_blocks - 1) / pk.stored_group_blocks * pk.stored_group_bytes;
}

// Repacked weights of one input (matmul_shared): in one parallel region, x
// quantized a token per thread at a time, then every weight's panels shared
// out as one list, so q, k and v (or gate and up) cost one fork and join.
// Statically: each thread walks its own run of panels, which is what its
// prefetches (non-temporal, into its own core's cache) ask for ahead; shared
// out dynamically, the rate halved.
void matmul_stored(std::span<const TensorView* const> ws, const float* x, int64_t n_tok, std::span<float* const> ys,
                   const RowPrep& prep) {
  const WeightKernels& k = kernels().of(ws[0]->dtype);
  SLM_ASSERT(k.panel != nullptr && k.panel->dot_stored != nullptr);  // repack made them with these kernels
  const PanelKernels& pk = *k.panel;
  SLM_ASSERT(kPanelChunk % pk.stored_group_blocks == 0);  // chunks start groups
  const int64_t cols = ws[0]->cols(), nb = cols / 32, panel_bytes = stored_panel_bytes(pk, cols);
  PanelInput in(k, cols, n_tok);
  std::vector<int64_t> first{0};  // ws[i]'s panels are [first[i], first[i + 1]) of the list
  int64_t rows_all = 0;
  for (const TensorView* w : ws) {
    first.push_back(first.back() + (w->rows() + kPanelRows - 1) / kPanelRows);
    rows_all += w->rows();
  }
#pragma omp parallel if (rows_all * cols * n_tok > kMinParallelWork)
  {
    in.fill(k, x, cols, n_tok, prep);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < first.back(); ++i) {
      size_t wi = 0;
      while (i >= first[wi + 1]) ++wi;
      const TensorView& w = *ws[wi];
      const int64_t p = i - first[wi], rows = w.rows(), r0 = p * kPanelRows;
      const int nw = static_cast<int>(std::min<int64_t>(kPanelRows, rows - r0));
      const uint8_t* panel = static_cast<const uint8_t*>(w.data) + p * panel_bytes;
      for (int64_t t0 = 0; t0 < n_tok; t0 += kPanelTokenGroup) {
        const int64_t nt = std::min(kPanelTokenGroup, n_tok - t0);
        for (int64_t b0 = 0; b0 < nb; b0 += kPanelChunk)
          pk.dot_stored(std::min(kPanelChunk, nb - b0), panel + b0 / pk.stored_group_blocks * pk.stored_group_bytes, nw,
                        in.at(t0, nt, b0), ys[wi] + t0 * rows + r0, rows, b0 > 0);
      }
    }
  }
}

}  // namespace

int64_t repacked_bytes(const TensorView& w) {
  const WeightKernels& k = kernels().of(w.dtype);
  if (w.layout != Layout::kRows || w.shape.size() != 2 || k.panel == nullptr || k.panel->store == nullptr) return 0;
  return (w.rows() + kPanelRows - 1) / kPanelRows * stored_panel_bytes(*k.panel, w.cols());
}

TensorView repack(const TensorView& w, void* out) {
  const int64_t bytes = repacked_bytes(w);
  SLM_ASSERT(bytes > 0);
  const PanelKernels& pk = *kernels().of(w.dtype).panel;
  const int64_t rows = w.rows(), cols = w.cols(), wb = static_cast<int64_t>(row_bytes(w.dtype, cols));
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows, panel_bytes = stored_panel_bytes(pk, cols);
  auto* dst = static_cast<uint8_t*>(out);
  // One thread: an OpenMP team started on the loading thread keeps spinning
  // beside the team of the thread that later runs the model (a server's
  // worker), which made generation 3x slower at 2 threads.
  for (int64_t p = 0; p < n_panels; ++p)
    pk.store(w.row(p * kPanelRows), wb, static_cast<int>(std::min<int64_t>(kPanelRows, rows - p * kPanelRows)),
             cols / 32, dst + p * panel_bytes);
  TensorView v = w;
  v.layout = Layout::kPanels;
  v.data = out;
  v.nbytes = static_cast<size_t>(bytes);
  return v;
}

void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, const RowPrep& prep) {
  if (w.layout == Layout::kPanels) {
    const TensorView* ws[] = {&w};
    float* ys[] = {y};
    matmul_stored(ws, x, n_tok, ys, prep);
    return;
  }
  const int64_t rows = w.rows(), cols = w.cols();
  const WeightKernels& k = kernels().of(w.dtype);
  SLM_ASSERT(k.vec_dot != nullptr);  // ModelSource refuses weight types without kernels
  if (k.panel != nullptr && n_tok > 1) {
    matmul_panels(k, w, x, n_tok, y, prep);
    return;
  }
  for (int64_t t = 0; prep && t < n_tok; ++t) prep(t);
  // Convert the activations once into the format the weight type dots with.
  const int64_t ab = act_row_bytes(k.act_type, cols);
  const ActBuffer act = act_buffer(ab * n_tok);
  const QuantizeActFn quantize = kernels().quantize_act[static_cast<int>(k.act_type)];
  for (int64_t t = 0; t < n_tok; ++t) quantize(x + t * cols, act.get() + t * ab, cols);
  // Weight rows are split over threads (so a result never depends on the
  // thread count), a tile of rows at a time against every token. Threads only
  // pay off past some work: a tiny matmul would wait on barriers.
  const int64_t wb = static_cast<int64_t>(row_bytes(w.dtype, cols));
  const uint8_t* a = act.get();
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (k.dot_tile == nullptr || n_tok == 1) {
#pragma omp parallel for schedule(static) if (rows * cols * n_tok > kMinParallelWork)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t t = 0; t < n_tok; ++t) y[t * rows + r] = k.vec_dot(cols, base + r * wb, a + t * ab);
    return;
  }
  const int64_t n_tiles = (rows + kTileW - 1) / kTileW;
#pragma omp parallel for schedule(static) if (rows * cols * n_tok > kMinParallelWork)
  for (int64_t tile = 0; tile < n_tiles; ++tile) {
    const int64_t r0 = tile * kTileW;
    const int nw = static_cast<int>(std::min<int64_t>(kTileW, rows - r0));
    for (int64_t t = 0; t < n_tok; t += kTileA) {
      const int na = static_cast<int>(std::min<int64_t>(kTileA, n_tok - t));
      float out[kTileW * kTileA];
      k.dot_tile(cols, base + r0 * wb, wb, nw, a + t * ab, ab, na, out);
      for (int i = 0; i < nw; ++i)
        for (int j = 0; j < na; ++j) y[(t + j) * rows + r0 + i] = out[i * na + j];
    }
  }
}

void matmul_shared(std::span<const TensorView* const> ws, const float* x, int64_t n_tok, std::span<float* const> ys,
                   const RowPrep& prep) {
  SLM_ASSERT(!ws.empty() && ws.size() == ys.size());
  bool stored = true;
  for (const TensorView* w : ws) {
    const WeightKernels& k = kernels().of(w->dtype);
    stored = stored && w->layout == Layout::kPanels && w->cols() == ws[0]->cols() &&
             k.act_type == kernels().of(ws[0]->dtype).act_type;
  }
  if (stored) {
    matmul_stored(ws, x, n_tok, ys, prep);
    return;
  }
  for (size_t i = 0; i < ws.size(); ++i) matmul(*ws[i], x, n_tok, ys[i], i == 0 ? prep : RowPrep());  // x made once
}

void prefetch(const void* p, int64_t bytes) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (int64_t o = 0; o < bytes; o += 64) {
#if defined(__x86_64__)
    asm volatile("prefetcht0 %0" : : "m"(b[o]));  // GCC drops a loop of __builtin_prefetch as if it did nothing
#else
    __builtin_prefetch(b + o);
#endif
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

void rmsnorm_ref(const float* x, const float* w, float eps, float* out, int64_t n) {
  float ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void layernorm(const float* x, const float* w, const float* b, float eps, float* out, int64_t n) {
  // Two passes in double: BERT's eps (1e-12) leaves no room for cancellation.
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>((x[i] - mean) * inv * w[i] + (b != nullptr ? b[i] : 0.0f));
}

void gelu(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * static_cast<float>(M_SQRT1_2)));
}

// https://pytorch.org/docs/stable/generated/torch.nn.GELU.html (approximate='tanh')
void gelu_tanh(float* x, int64_t n) {
  const float k = static_cast<float>(std::sqrt(2.0 / M_PI));
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::tanh(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
}

void rmsnorm(const float* x, const float* w, float eps, float* out, int64_t n) { kernels().rmsnorm(x, w, eps, out, n); }

void swiglu(const float* gate, const float* up, float* out, int64_t n) { kernels().swiglu(gate, up, out, n); }

void to_f16(const float* x, uint16_t* y, int64_t n) { kernels().to_f16(x, y, n); }

double exp_sum(const float* x, float shift, float* out, int64_t n) { return kernels().exp_sum(x, shift, out, n); }

void rope_table(int64_t n_rot, int64_t pos, const float* freqs, float* cs) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float angle = static_cast<float>(pos) * freqs[i];
    cs[2 * i] = std::cos(angle);
    cs[2 * i + 1] = std::sin(angle);
  }
}

void rope_apply(float* x, int64_t n_rot, const float* cs, bool interleaved) {
  const int64_t half = n_rot / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    const int64_t a = interleaved ? 2 * i : i;
    const int64_t b = interleaved ? 2 * i + 1 : i + half;
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
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

void swiglu_ref(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace slm::kernels
