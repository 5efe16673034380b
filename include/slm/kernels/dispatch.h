// Kernel dispatch: the dot products of one weight row with one activation row,
// per weight type, in a scalar reference version and SIMD versions (AVX2,
// AVX-512) chosen at run time from the CPU's features, so one binary runs on
// any x86-64. SLM_ISA=ref|avx2|avx512 in the environment forces a choice
// (capped at what the CPU has).
//
// Activations are converted once per matmul into the format each weight type
// dots with (act_type below): F32 for float weights; 32-element int8 blocks
// (ActQ8x32, or ActQ8x64 pairs on AVX-512) for Q8_0/Q4_0/Q4_1/Q5_0;
// 256-element blocks (ActQ8x256) for the k-quants. The format may differ
// between ISAs; the int8 values do not. Thread-safe: the tables are immutable
// after first use.
#pragma once

#include <cstdint>

#include "slm/core/dtype.h"

namespace slm::kernels {

struct AttentionArgs;  // attention.h

enum class Isa { kRef, kAvx2, kAvx512 };
const char* isa_name(Isa isa);
// The best ISA this CPU runs (after SLM_ISA).
Isa best_isa();

// int8 activations for 32-element weight blocks: x ~= d * qs, sum = sum(qs).
struct ActQ8x32 {
  float d;
  int32_t sum;
  int8_t qs[32];
};
static_assert(sizeof(ActQ8x32) == 40);

// int8 activations for 256-element k-quant blocks; bsums: sums of 16 quants each.
struct ActQ8x256 {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};
static_assert(sizeof(ActQ8x256) == 292);

// AVX-512's layout of the same int8 activations, two 32-blocks per record so
// one 512-bit load takes both, interleaved by 16-byte lanes (block 0's halves
// in lanes 0 and 2, block 1's in 1 and 3), each block's scale spread over the
// int32 lanes its products land in, and minus the sums of each int32 lane's
// four values and of each block's 32: VNNI multiplies unsigned by signed
// bytes, so weights go in offset to unsigned (q + off) and off times these
// sums takes the offset back out. An odd last block pairs with an empty one.
struct alignas(64) ActQ8x64 {
  int8_t qs[64];
  float d[16];
  int32_t lane_neg_sum[16];
  int32_t block_neg_sum[2];
};
static_assert(sizeof(ActQ8x64) == 256);

// Two activation rows' ActQ8x64 records side by side, for the row panels'
// dots of tokens two at a time (PanelKernels::pair): each int32 lane l of
// the record as row 0's four bytes then row 1's, so one 64-bit broadcast
// gives a lane of both; each block's scale and minus sum, by [block][row].
struct alignas(32) ActQ8x64Pair {
  int8_t qs[128];
  float d[2][2];
  int32_t block_neg_sum[2][2];
};
static_assert(sizeof(ActQ8x64Pair) == 160);
// The same for ActQ8x256 (the k-quants): each 4-byte group of the two rows'
// quants, their scales, d times each 32-element sub-block's sum (Q4_K's and
// Q5_K's mins), and -32 times each 16-element sum (Q6_K's offset).
struct alignas(32) ActQ8x256Pair {
  int8_t qs[512];
  float d[2];
  float dsum[8][2];
  int32_t neg32_sum16[16][2];
};
static_assert(sizeof(ActQ8x256Pair) == 736);

enum class ActType { kF32, kQ8x32, kQ8x256, kQ8x64, kCount };

// dot(w_row, act_row) over n elements; w_row in the weight type's layout, act_row in its act_type's.
using VecDotFn = float (*)(int64_t n, const void* w, const void* act);
// A tile of dot products: n_w weight rows (w_stride bytes apart) against n_act
// activation rows (act_stride bytes apart), at most kTileW x kTileA:
// out[i * n_act + j] = dot(w_i, act_j). Each weight block is unpacked once for
// all the activation rows and each activation block loaded once for all the
// weight rows, which is what makes prompt processing fast.
using DotTileFn = void (*)(int64_t n, const void* w, int64_t w_stride, int n_w, const void* act, int64_t act_stride,
                           int n_act, float* out);
constexpr int kTileW = 4, kTileA = 4;
// y += a * x over n elements, x in a plain type (F32 or F16): attention's V sum.
using AxpyFn = void (*)(int64_t n, float a, const void* x, float* y);
// Converts n floats to the activation format.
using QuantizeActFn = void (*)(const float* x, void* act, int64_t n);

// Row panels (AVX-512 VNNI; Q4_0, Q5_0, Q8_0 against ActQ8x64 and Q4_K,
// Q5_K, Q6_K against ActQ8x256, when a matmul has several tokens): the
// weights of kPanelRows rows are unpacked into a small scratch, a chunk of
// 32-column blocks at a time, so that one 512-bit vector holds 4 consecutive
// weights of every row (lane = row) as bytes; per block 8 such vectors and
// two vectors of per-row floats (scales, offset corrections or mins: the
// type's own) make kPanelBlockBytes. A dot with 4 broadcast activation bytes
// then advances all 16 rows. The model's weights stay where they are
// (mapped); only the scratch is written.
// Types whose panels pair tokens (pair below) dot two tokens at once: lanes
// then hold 8 rows x 2 tokens, the weights spread by a permute and the two
// tokens' activation bytes by one broadcast, which halves the broadcasts per
// dot (8 tokens: 1.75x the dots per second from L1).
constexpr int kPanelRows = 16, kPanelTokens = 8;
constexpr int64_t kPanelBlockBytes = 8 * 64 + 64 + 64;
// The activations a panel dot reads, from the record of the panel's first
// block (which must start a record: an even block for ActQ8x64, a multiple of
// 8 for ActQ8x256): n rows, stride bytes apart; and, where the panels pair
// tokens, the same rows two by two (pairs: rows 2p and 2p + 1 as
// ActQ8x64Pair records, pair_stride bytes per p), else pairs is null.
struct PanelActs {
  const void* rows;
  int64_t stride;
  int64_t n;
  const void* pairs = nullptr;
  int64_t pair_stride = 0;
};
struct PanelKernels {
  // Blocks [b0, b0 + nb) of n_w <= kPanelRows rows (w_stride bytes apart) into panel (64-byte aligned).
  void (*pack)(const void* w, int64_t w_stride, int n_w, int64_t b0, int64_t nb, uint8_t* panel);
  // out[j * out_stride + i] = (or += when accumulate) dot over the panel's nb
  // blocks of row i < n_w with activation row j < act.n.
  void (*dot)(int64_t nb, const uint8_t* panel, int n_w, const PanelActs& act, float* out, int64_t out_stride,
              bool accumulate);
  // Optional (null when the type has none): a stored panel form that keeps
  // about the type's bits (Q4_0 4.5 per weight and Q8_0 8.5 as in the file,
  // Q4_K 4.6 for its 4.5) and that dot_stored reads with no packing, for
  // weights repacked once at load (ops.h, repack). store writes all nb blocks
  // of n_w <= kPanelRows rows in groups of stored_group_blocks blocks,
  // stored_group_bytes each (a last group part empty is zeros), 64-byte
  // aligned; dot_stored is dot over such a panel from a block that starts a group.
  void (*store)(const void* w, int64_t w_stride, int n_w, int64_t nb, uint8_t* out) = nullptr;
  void (*dot_stored)(int64_t nb, const uint8_t* panel, int n_w, const PanelActs& act, float* out, int64_t out_stride,
                     bool accumulate) = nullptr;
  int64_t stored_group_blocks = 0, stored_group_bytes = 0;
  // Optional: two activation rows of n columns as pair records
  // (ActQ8x64Pair, ActQ8x256Pair: pair_row_bytes), which dot and dot_stored
  // then read for the tokens in pairs.
  void (*pair)(const void* row0, const void* row1, int64_t n, void* out) = nullptr;
};

struct WeightKernels {
  ActType act_type = ActType::kF32;
  VecDotFn vec_dot = nullptr;    // null: the type has no kernel (callers refuse it by name)
  DotTileFn dot_tile = nullptr;  // null: callers loop over vec_dot
  const PanelKernels* panel = nullptr;  // when set, matmuls of several tokens use it rather than dot_tile
};

struct KernelSet {
  Isa isa;
  WeightKernels weights[static_cast<int>(DType::kCount)];
  QuantizeActFn quantize_act[static_cast<int>(ActType::kCount)];  // by ActType
  AxpyFn axpy_f32 = nullptr, axpy_f16 = nullptr;
  // y = x as fp16, rounded to nearest even (f32_to_f16's rounding): the F16 KV cache's store.
  void (*to_f16)(const float* x, uint16_t* y, int64_t n) = nullptr;
  // out = exp(x - shift), 0 where x - shift < -87 (and for -inf); returns the sum: a softmax's numerators.
  double (*exp_sum)(const float* x, float shift, float* out, int64_t n) = nullptr;
  void (*rmsnorm)(const float* x, const float* w, float eps, float* out, int64_t n) = nullptr;
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n) = nullptr;
  // Attention of one query position where the ISA has a kernel for its shape
  // (false: not handled, use the generic one).
  bool (*attention)(const AttentionArgs& a) = nullptr;
  const WeightKernels& of(DType t) const { return weights[static_cast<int>(t)]; }
};

// The kernels for an ISA (ISAs the CPU lacks fall back to the best it has).
const KernelSet& kernel_set(Isa isa);
// The kernels for best_isa().
const KernelSet& kernels();

// Bytes of one activation row of n elements in a format.
int64_t act_row_bytes(ActType t, int64_t n);
// Bytes of two such rows paired (PanelKernels::pair; ActQ8x64 and ActQ8x256).
int64_t pair_row_bytes(ActType t, int64_t n);

}  // namespace slm::kernels
