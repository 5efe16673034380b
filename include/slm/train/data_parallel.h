// Data parallelism inside one process. The batch is split into one shard per
// thread; each thread runs the forward and backward pass of its shard on its
// own replica of the model, with single-threaded kernels (OpenBLAS is set to
// one thread while n_shards > 1), and the gradients are then summed into the
// main model in shard order. A step joins the threads once instead of
// synchronising once per op: many small OpenMP regions stall whenever another
// process takes a core, one join per step does not.
// Results depend on the shard count (= threads), not on scheduling.
// Not thread-safe: one caller.
#pragma once

#include <cstdint>
#include <vector>

#include "slm/train/transformer.h"

namespace slm::train {

class DataParallel {
 public:
  // n_shards >= 1; the main model must outlive this object.
  DataParallel(Transformer<float>& main, int n_shards);

  // Mean next-token loss of `batch` sequences of `seq` tokens (x, y: batch * seq).
  // With backward, adds scale * d(loss)/d(params) into the main model's gradients.
  double step(const std::vector<int32_t>& x, const std::vector<int32_t>& y, int64_t batch, int64_t seq,
              bool backward, float scale, bool bf16, bool recompute);

 private:
  Transformer<float>& main_;
  int n_shards_;
  std::vector<Transformer<float>> replicas_;  // shards 1 .. n - 1
};

}  // namespace slm::train
