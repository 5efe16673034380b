#include "slm/train/data_parallel.h"

#include <omp.h>

#include <cblas.h>

#include <algorithm>
#include <thread>

#include "slm/core/assert.h"

namespace slm::train {

DataParallel::DataParallel(Transformer<float>& main, int n_shards) : main_(main), n_shards_(std::max(1, n_shards)) {
  for (int s = 1; s < n_shards_; ++s) {
    auto r = Transformer<float>::create(main.config(), 0);  // values are copied from main before each use
    SLM_ASSERT(r.ok());
    replicas_.push_back(std::move(*r));
  }
  if (n_shards_ > 1) openblas_set_num_threads(1);  // shards call it concurrently, each on one thread
}

double DataParallel::step(const std::vector<int32_t>& x, const std::vector<int32_t>& y, int64_t batch, int64_t seq,
                          bool backward, float scale, bool bf16, bool recompute) {
  const int n = static_cast<int>(std::min<int64_t>(n_shards_, batch));
  std::vector<double> shard_loss(static_cast<size_t>(n), 0.0);
  auto run_shard = [&](int s) {
    const Transformer<float>& m = s == 0 ? main_ : replicas_[static_cast<size_t>(s - 1)];
    if (s > 0) {
      const auto& src = main_.params();
      const auto& dst = m.params();
      for (size_t i = 0; i < src.size(); ++i) dst[i].second->value = src[i].second->value;
    }
    const int64_t b0 = batch * s / n, b1 = batch * (s + 1) / n;
    const std::vector<int32_t> xs(x.begin() + b0 * seq, x.begin() + b1 * seq), ys(y.begin() + b0 * seq, y.begin() + b1 * seq);
    Tape<float> tape;
    tape.bf16 = bf16;
    Var<float> loss = m.loss(tape, xs, ys, b1 - b0, seq, recompute);
    const double share = static_cast<double>(b1 - b0) / static_cast<double>(batch);
    shard_loss[static_cast<size_t>(s)] = loss->value[0] * share;
    if (backward) tape.backward(loss, static_cast<float>(scale * share));
  };
  if (n == 1) {
    run_shard(0);  // the ops and the BLAS split their own loops over the threads
  } else {
    // Plain threads, joined by futex: an OpenMP team would spin at its barrier
    // and, on a busy machine, burn the time slice its partner needs. Inside a
    // shard the ops run on one thread (and OpenBLAS is held at one thread).
    const int outer = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<std::thread> threads;
    for (int s = 1; s < n; ++s)
      threads.emplace_back([&run_shard, s] {
        omp_set_num_threads(1);
        run_shard(s);
      });
    run_shard(0);
    for (std::thread& t : threads) t.join();
    omp_set_num_threads(outer);
    if (backward) {  // sum in shard order: the same bits whatever thread ran what
      const auto& dst = main_.params();
      for (int s = 1; s < n; ++s) {
        const auto& src = replicas_[static_cast<size_t>(s - 1)].params();
        for (size_t i = 0; i < dst.size(); ++i) {
          Node<float>& d = *dst[i].second;
          Node<float>& g = *src[i].second;
          if (g.grad.empty()) continue;
          float* dg = d.g();
          for (size_t k = 0; k < g.grad.size(); ++k) dg[k] += g.grad[k];
          g.grad.clear();
        }
      }
    }
  }
  double loss = 0;
  for (double l : shard_loss) loss += l;
  return loss;
}

}  // namespace slm::train
