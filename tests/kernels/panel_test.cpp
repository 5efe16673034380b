// Row panels (dispatch.h PanelKernels) and matmul against the scalar
// reference dot of every (row, token) pair: row counts that leave a partial
// panel, block counts that split into uneven chunks, token counts past the
// panel's token tile.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "random_weights.h"
#include "slm/core/tensor.h"
#include "slm/kernels/dispatch.h"
#include "slm/kernels/ops.h"

namespace slm::kernels {
namespace {

struct Problem {
  int64_t rows, n, tokens;
  std::vector<uint8_t> w;
  std::vector<float> x;
  std::vector<uint8_t> act;  // reference ActQ8x32 rows
  int64_t ab;
};

Problem make_problem(DType t, int64_t rows, int64_t n, int64_t tokens, std::mt19937& rng) {
  Problem p{rows, n, tokens, random_weights(t, rows, n, rng), {}, {}, 0};
  std::normal_distribution<float> nd(0.0f, 1.0f);
  p.x.resize(static_cast<size_t>(n * tokens));
  for (auto& v : p.x) v = nd(rng);
  const KernelSet& ref = kernel_set(Isa::kRef);
  p.ab = act_row_bytes(ref.of(t).act_type, n);
  p.act.resize(static_cast<size_t>(p.ab * tokens));
  for (int64_t j = 0; j < tokens; ++j)
    ref.quantize_act[static_cast<int>(ref.of(t).act_type)](p.x.data() + j * n, p.act.data() + j * p.ab, n);
  return p;
}

// Each out[j * rows + i] against the reference dot, normalised by sum |w x|.
void expect_matches_reference(DType t, const Problem& p, const std::vector<float>& out, const char* what) {
  const KernelSet& ref = kernel_set(Isa::kRef);
  const int64_t wb = static_cast<int64_t>(row_bytes(t, p.n));
  std::vector<float> wrow(static_cast<size_t>(p.n));
  int bad = 0;
  for (int64_t i = 0; i < p.rows; ++i) {
    dequantize_row_ref(t, p.w.data() + i * wb, wrow.data(), p.n);
    for (int64_t j = 0; j < p.tokens; ++j) {
      const double want = ref.of(t).vec_dot(p.n, p.w.data() + i * wb, p.act.data() + j * p.ab);
      double sc = 0;
      for (int64_t e = 0; e < p.n; ++e) sc += std::fabs(wrow[e] * p.x[j * p.n + e]);
      const double got = out[j * p.rows + i];
      if ((want - got) * (want - got) / (sc * sc + 1e-30) > 1e-12 && ++bad <= 3)
        ADD_FAILURE() << dtype_name(t) << " " << what << " rows=" << p.rows << " n=" << p.n << " tokens=" << p.tokens
                      << " at " << i << "," << j << ": want " << want << " got " << got;
    }
  }
}

const DType kPanelTypes[] = {DType::kQ4_0, DType::kQ5_0, DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

TEST(Panel, PackAndDotMatchReference) {
  std::mt19937 rng(99);
  int tested = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const KernelSet& ks = kernel_set(isa);
    for (DType t : kPanelTypes) {
      const PanelKernels* pk = ks.of(t).panel;
      if (ks.isa != isa || pk == nullptr) continue;
      const ActType at = ks.of(t).act_type;
      ++tested;
      // Block counts (of 32) in whole weight blocks, some with an uneven last chunk.
      const bool k_quant = dtype_info(t).block_size == 256;
      for (int64_t rows : {1, 7, 16, 23})
        for (int64_t nb : k_quant ? std::vector<int64_t>{8, 24} : std::vector<int64_t>{1, 5, 17})
          for (int64_t tokens : {1, 2, 8, 9, 19}) {
            const Problem p = make_problem(t, rows, nb * 32, tokens, rng);
            const int64_t wb = static_cast<int64_t>(row_bytes(t, p.n));
            // The panels' activations: this ISA's format of the same int8 values.
            const int64_t ab = act_row_bytes(at, p.n);
            std::vector<uint8_t> act(static_cast<size_t>(ab * tokens));
            for (int64_t j = 0; j < tokens; ++j)
              ks.quantize_act[static_cast<int>(at)](p.x.data() + j * p.n, act.data() + j * ab, p.n);
            // And two by two, where the type's panels pair tokens.
            const int64_t pb = pk->pair != nullptr ? pair_row_bytes(at, p.n) : 0;
            std::vector<uint8_t> pairs(static_cast<size_t>(pb * (tokens / 2)));
            for (int64_t j = 0; pk->pair != nullptr && j + 1 < tokens; j += 2)
              pk->pair(act.data() + j * ab, act.data() + (j + 1) * ab, p.n, pairs.data() + j / 2 * pb);
            constexpr int64_t kChunk = 8;  // whole activation records; later chunks accumulate
            std::unique_ptr<uint8_t, decltype(&std::free)> panel(
                static_cast<uint8_t*>(std::aligned_alloc(64, kChunk * kPanelBlockBytes)), &std::free);
            std::vector<float> out[2];
            for (int paired = 0; paired < (pk->pair != nullptr ? 2 : 1); ++paired) {
              out[paired].assign(static_cast<size_t>(rows * tokens), -1.0f);
              for (int64_t r0 = 0; r0 < rows; r0 += kPanelRows) {
                const int nw = static_cast<int>(std::min<int64_t>(kPanelRows, rows - r0));
                for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
                  const int64_t n = std::min(kChunk, nb - b0);
                  // Packed in two pieces, as matmul packs a chunk a quarter at a time.
                  const int64_t half = n / 2;
                  pk->pack(p.w.data() + r0 * wb, wb, nw, b0, half, panel.get());
                  pk->pack(p.w.data() + r0 * wb, wb, nw, b0 + half, n - half, panel.get() + half * kPanelBlockBytes);
                  PanelActs a{act.data() + act_row_bytes(at, b0 * 32), ab, tokens};
                  if (paired) {
                    a.pairs = pairs.data() + pair_row_bytes(at, b0 * 32);
                    a.pair_stride = pb;
                  }
                  pk->dot(n, panel.get(), nw, a, out[paired].data() + r0, rows, b0 > 0);
                }
              }
              expect_matches_reference(t, p, out[paired], paired ? "paired" : isa_name(isa));
            }
            // Pairs make the same sums and scale them in the same order: the same bits.
            if (pk->pair != nullptr) {
              EXPECT_EQ(out[0], out[1]) << dtype_name(t) << " rows=" << rows << " nb=" << nb;
            }
          }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no ISA with row panels on this CPU";
}

TEST(Panel, MatmulMatchesReferenceForEveryType) {
  std::mt19937 rng(5);
  for (DType t : {DType::kQ4_0, DType::kQ5_0, DType::kQ8_0, DType::kF16, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    for (int64_t tokens : {1, 3, 13}) {
      const int64_t n = dtype_info(t).block_size == 256 ? 768 : 32 * 37;
      const Problem p = make_problem(t, 37, n, tokens, rng);
      TensorView w;
      w.dtype = t;
      w.shape = {p.rows, p.n};
      w.data = p.w.data();
      w.nbytes = p.w.size();
      std::vector<float> y(static_cast<size_t>(p.rows * tokens));
      matmul(w, p.x.data(), tokens, y.data());
      expect_matches_reference(t, p, y, "matmul");
    }
  }
}

}  // namespace
// Repacked weights (stored panels: Q4_0, Q8_0, Q4_K): odd block counts (the
// last pair half empty), more blocks than a chunk, a partial last panel, 1 to
// 19 tokens and more than a token group; against the reference dot of the
// original rows.
TEST(Panel, RepackedMatmulMatchesReference) {
  std::mt19937 rng(9);
  int tested = 0;
  for (DType t : kPanelTypes) {
    // Blocks of 32 per row: 1, 3, 17, 37 (Q4_0, Q8_0); 8, 24, 40, 16 (Q4_K's super-blocks of 8).
    const bool k_quant = dtype_info(t).block_size == 256;
    const std::pair<int64_t, int64_t> shapes[] = {{1, k_quant ? 256 : 32},
                                                  {23, k_quant ? 768 : 96},
                                                  {16, k_quant ? 1280 : 544},
                                                  {40, k_quant ? 512 : 32 * 37}};
    for (const auto& [rows, n] : shapes) {
      TensorView w;
      w.dtype = t;
      w.shape = {rows, n};
      const int64_t bytes = repacked_bytes(w);
      if (bytes == 0) continue;
      for (int64_t tokens : {1, 2, 7, 8, 9, 19, 70}) {
        const Problem p = make_problem(t, rows, n, tokens, rng);
        w.data = p.w.data();
        w.nbytes = p.w.size();
        std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)),
                                                           &std::free);
        const TensorView packed = repack(w, buf.get());
        EXPECT_EQ(packed.layout, Layout::kPanels);
        EXPECT_EQ(static_cast<int64_t>(packed.nbytes), bytes);
        std::vector<float> y(static_cast<size_t>(rows * tokens));
        matmul(packed, p.x.data(), tokens, y.data());
        expect_matches_reference(t, p, y, "repacked matmul");
        ++tested;
      }
    }
  }
  if (tested == 0) GTEST_SKIP() << "no stored panels on this CPU (AVX-512 VNNI)";
}

// Weights of one input in one call (q, k, v): repacked ones, and a mix of
// repacked and row-major ones, give what separate matmuls give, bit for bit.
TEST(Panel, SharedMatmulEqualsSeparateMatmuls) {
  std::mt19937 rng(11);
  const int64_t n = 32 * 25, tokens = 9;
  std::vector<Problem> ps;
  for (int64_t rows : {23, 40, 7}) ps.push_back(make_problem(DType::kQ4_0, rows, n, tokens, rng));
  std::vector<TensorView> rows_views(3), packed(3);
  std::vector<std::unique_ptr<uint8_t, decltype(&std::free)>> bufs;
  for (size_t i = 0; i < ps.size(); ++i) {
    TensorView& w = rows_views[i];
    w.dtype = DType::kQ4_0;
    w.shape = {ps[i].rows, n};
    w.data = ps[i].w.data();
    w.nbytes = ps[i].w.size();
    const int64_t bytes = repacked_bytes(w);
    if (bytes == 0) GTEST_SKIP() << "no stored panels on this CPU (AVX-512 VNNI)";
    bufs.emplace_back(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)), &std::free);
    packed[i] = repack(w, bufs.back().get());
  }
  const std::vector<float>& x = ps[0].x;
  for (const auto& set : {std::vector<const TensorView*>{&packed[0], &packed[1], &packed[2]},
                          std::vector<const TensorView*>{&packed[0], &rows_views[1], &packed[2]}}) {
    std::vector<std::vector<float>> shared(3), separate(3);
    std::vector<float*> ys;
    for (size_t i = 0; i < 3; ++i) {
      shared[i].assign(static_cast<size_t>(ps[i].rows * tokens), 0.0f);
      separate[i] = shared[i];
      ys.push_back(shared[i].data());
      matmul(*set[i], x.data(), tokens, separate[i].data());
    }
    matmul_shared(set, x.data(), tokens, ys);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(shared[i], separate[i]) << "weight " << i;
  }
}

}  // namespace slm::kernels
