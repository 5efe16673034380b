// Benchmark of a model: prompt processing and generation speed, peak memory,
// and the weight bytes read per generated token against the machine's read
// bandwidth measured in the same run (a STREAM-style probe), so a report says
// how close generation runs to the memory floor.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "slm/core/dtype.h"
#include "slm/core/status.h"

namespace slm::engine {

struct BenchOptions {
  int32_t n_prompt = 128;  // tokens in the prompt-processing test (one batch)
  int32_t n_gen = 128;     // tokens generated one at a time
  int32_t reps = 3;
  int32_t n_threads = 0;   // 0: all cores
  uint64_t seed = 1;
  DType kv_type = DType::kF32;
  int32_t n_parallel = 0;  // > 1: also generate with this many sequences decoded together
  bool repack = false;     // model::ModelOptions::repack
};

struct BenchResult {
  std::string model, isa;
  int32_t n_threads = 0;
  double pp_tps = 0, pp_tps_min = 0, pp_tps_max = 0;  // median, min and max over reps
  double tg_tps = 0, tg_tps_min = 0, tg_tps_max = 0;
  int32_t n_parallel = 0;  // batched generation: sequences per forward pass (0: not run)
  double tg_batch_tps = 0, tg_batch_tps_min = 0, tg_batch_tps_max = 0;  // tokens/s summed over them
  double weight_bytes_per_token = 0;  // bytes of weights a generated token reads
  double tg_gbps = 0;                 // achieved: weight bytes per token x tokens/s
  double read_gbps = 0;               // probe: this machine's read bandwidth now
  double peak_rss_mib = 0;
  double model_mib = 0;               // weight bytes of the model
  double kv_mib = 0;                  // KV cache allocated for the run
  double repacked_mib = 0;            // weights copied by --repack
  std::string to_json() const;
  std::string to_text() const;
};

// Measures the read bandwidth: parallel sums over a buffer far larger than the
// caches; returns the best of a few passes in GB/s.
double probe_read_gbps(int32_t n_threads);

// progress(done, total) is called after each step, for a progress bar.
Result<BenchResult> run_bench(const std::string& model_path, const BenchOptions& opt,
                              const std::function<void(int, int)>& progress = {});

}  // namespace slm::engine
