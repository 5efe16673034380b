#include "slm/kernels/dispatch.h"

#include <cstdlib>
#include <cstring>

#include "quant_k_simd.h"
#include "simd.h"
#include "slm/core/assert.h"
#include "slm/kernels/quant_k.h"

namespace slm::kernels {

namespace {

void quantize_act_f32(const float* x, void* act, int64_t n) { std::memcpy(act, x, static_cast<size_t>(n) * 4); }

bool cpu_has(Isa isa) {
  switch (isa) {
    case Isa::kRef: return true;
    case Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case Isa::kAvx512:
      return cpu_has(Isa::kAvx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

#define SLM_FILL_ISA(ks, isa)                                                              \
  do {                                                                                     \
    ks.weights[static_cast<int>(DType::kF32)] = {ActType::kF32, vec_dot_f32_##isa};         \
    ks.weights[static_cast<int>(DType::kF16)] = {ActType::kF32, vec_dot_f16_##isa};         \
    ks.weights[static_cast<int>(DType::kBF16)] = {ActType::kF32, vec_dot_bf16_##isa};       \
    ks.weights[static_cast<int>(DType::kQ8_0)] = {ActType::kQ8x32, vec_dot_q8_0_##isa};     \
    ks.weights[static_cast<int>(DType::kQ4_0)] = {ActType::kQ8x32, vec_dot_q4_0_##isa};     \
    ks.weights[static_cast<int>(DType::kQ4_1)] = {ActType::kQ8x32, vec_dot_q4_1_##isa};     \
    ks.weights[static_cast<int>(DType::kQ5_0)] = {ActType::kQ8x32, vec_dot_q5_0_##isa};     \
    ks.quantize_act[static_cast<int>(ActType::kF32)] = quantize_act_f32;                   \
    ks.quantize_act[static_cast<int>(ActType::kQ8x32)] = quantize_act_q8x32_##isa;         \
    ks.axpy_f32 = axpy_f32_##isa;                                                          \
    ks.axpy_f16 = axpy_f16_##isa;                                                          \
    ks.to_f16 = to_f16_##isa;                                                              \
    ks.exp_sum = exp_sum_##isa;                                                            \
    ks.rmsnorm = rmsnorm_##isa;                                                            \
    ks.swiglu = swiglu_##isa;                                                              \
  } while (0)

KernelSet make_set(Isa isa) {
  KernelSet ks{};
  ks.isa = isa;
  switch (isa) {
    case Isa::kRef: SLM_FILL_ISA(ks, ref); break;
    case Isa::kAvx2:
      SLM_FILL_ISA(ks, avx2);
      ks.weights[static_cast<int>(DType::kF32)].dot_tile = dot_tile_f32_avx2;
      ks.weights[static_cast<int>(DType::kF16)].dot_tile = dot_tile_f16_avx2;
      ks.weights[static_cast<int>(DType::kQ8_0)].dot_tile = dot_tile_q8_0_avx2;
      ks.weights[static_cast<int>(DType::kQ4_0)].dot_tile = dot_tile_q4_0_avx2;
      ks.weights[static_cast<int>(DType::kQ5_0)].dot_tile = dot_tile_q5_0_avx2;
      break;
    case Isa::kAvx512:
      SLM_FILL_ISA(ks, avx512);
      ks.attention = attention_avx512;
      ks.weights[static_cast<int>(DType::kF32)].dot_tile = dot_tile_f32_avx512;
      ks.weights[static_cast<int>(DType::kF16)].dot_tile = dot_tile_f16_avx512;
      ks.quantize_act[static_cast<int>(ActType::kQ8x64)] = quantize_act_q8x64_avx512;
      for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0}) ks.weights[static_cast<int>(t)].act_type = ActType::kQ8x64;
      ks.weights[static_cast<int>(DType::kQ8_0)].panel = &kPanelQ8_0Avx512;
      ks.weights[static_cast<int>(DType::kQ4_0)].panel = &kPanelQ4_0Avx512;
      ks.weights[static_cast<int>(DType::kQ5_0)].panel = &kPanelQ5_0Avx512;
      break;
  }
  // k-quants (quant_k.h): scalar references unless an ISA has its own below.
  ks.weights[static_cast<int>(DType::kQ2_K)] = {ActType::kQ8x256, vec_dot_q2_K_q8x256_ref};
  ks.weights[static_cast<int>(DType::kQ3_K)] = {ActType::kQ8x256, vec_dot_q3_K_q8x256_ref};
  ks.weights[static_cast<int>(DType::kQ4_K)] = {ActType::kQ8x256, vec_dot_q4_K_q8x256_ref};
  ks.weights[static_cast<int>(DType::kQ5_K)] = {ActType::kQ8x256, vec_dot_q5_K_q8x256_ref};
  ks.weights[static_cast<int>(DType::kQ6_K)] = {ActType::kQ8x256, vec_dot_q6_K_q8x256_ref};
  ks.quantize_act[static_cast<int>(ActType::kQ8x256)] = quantize_act_q8x256_ref;
  if (isa == Isa::kAvx2) {
    ks.weights[static_cast<int>(DType::kQ2_K)].vec_dot = vec_dot_q2_K_avx2;
    ks.weights[static_cast<int>(DType::kQ3_K)].vec_dot = vec_dot_q3_K_avx2;
    ks.weights[static_cast<int>(DType::kQ4_K)].vec_dot = vec_dot_q4_K_avx2;
    ks.weights[static_cast<int>(DType::kQ5_K)].vec_dot = vec_dot_q5_K_avx2;
    ks.weights[static_cast<int>(DType::kQ6_K)].vec_dot = vec_dot_q6_K_avx2;
  } else if (isa == Isa::kAvx512) {
    ks.weights[static_cast<int>(DType::kQ2_K)].vec_dot = vec_dot_q2_K_avx512;
    ks.weights[static_cast<int>(DType::kQ3_K)].vec_dot = vec_dot_q3_K_avx512;
    ks.weights[static_cast<int>(DType::kQ4_K)].vec_dot = vec_dot_q4_K_avx512;
    ks.weights[static_cast<int>(DType::kQ5_K)].vec_dot = vec_dot_q5_K_avx512;
    ks.weights[static_cast<int>(DType::kQ6_K)].vec_dot = vec_dot_q6_K_avx512;
    ks.weights[static_cast<int>(DType::kQ4_K)].panel = &kPanelQ4_KAvx512;
    ks.weights[static_cast<int>(DType::kQ5_K)].panel = &kPanelQ5_KAvx512;
    ks.weights[static_cast<int>(DType::kQ6_K)].panel = &kPanelQ6_KAvx512;
  }
  return ks;
}

#undef SLM_FILL_ISA

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef: return "ref";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Isa best_isa() {
  static const Isa best = [] {
    Isa b = cpu_has(Isa::kAvx512) ? Isa::kAvx512 : cpu_has(Isa::kAvx2) ? Isa::kAvx2 : Isa::kRef;
    if (const char* env = std::getenv("SLM_ISA")) {
      Isa want = b;
      if (std::strcmp(env, "ref") == 0) want = Isa::kRef;
      else if (std::strcmp(env, "avx2") == 0) want = Isa::kAvx2;
      else if (std::strcmp(env, "avx512") == 0) want = Isa::kAvx512;
      if (static_cast<int>(want) < static_cast<int>(b)) b = want;
    }
    return b;
  }();
  return best;
}

const KernelSet& kernel_set(Isa isa) {
  static const KernelSet kSets[] = {make_set(Isa::kRef), make_set(cpu_has(Isa::kAvx2) ? Isa::kAvx2 : Isa::kRef),
                                    make_set(cpu_has(Isa::kAvx512) ? Isa::kAvx512
                                             : cpu_has(Isa::kAvx2) ? Isa::kAvx2 : Isa::kRef)};
  return kSets[static_cast<int>(isa)];
}

const KernelSet& kernels() { return kernel_set(best_isa()); }

int64_t act_row_bytes(ActType t, int64_t n) {
  switch (t) {
    case ActType::kF32: return n * 4;
    case ActType::kQ8x32: return n / 32 * static_cast<int64_t>(sizeof(ActQ8x32));
    case ActType::kQ8x256: return n / 256 * static_cast<int64_t>(sizeof(ActQ8x256));
    case ActType::kQ8x64: return (n + 63) / 64 * static_cast<int64_t>(sizeof(ActQ8x64));
    case ActType::kCount: break;
  }
  SLM_ASSERT(false);
  return 0;
}

int64_t pair_row_bytes(ActType t, int64_t n) {
  if (t == ActType::kQ8x64) return (n + 63) / 64 * static_cast<int64_t>(sizeof(ActQ8x64Pair));
  SLM_ASSERT(t == ActType::kQ8x256);
  return n / 256 * static_cast<int64_t>(sizeof(ActQ8x256Pair));
}

}  // namespace slm::kernels
