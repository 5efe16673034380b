#include "slm/engine/bench.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "slm/kernels/dispatch.h"
#include "slm/kernels/ops.h"
#include "slm/model/kv_cache.h"
#include "slm/model/llama.h"
#include "slm/model/model_source.h"

namespace slm::engine {

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Spread {
  double median, min, max;
};

Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {med, v.front(), v.back()};
}

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

}  // namespace

double probe_read_gbps(int32_t n_threads) {
  // Reads a 512 MiB buffer (sixteen times the largest L3 we expect, every
  // page touched first) in 1 KiB pieces split over the threads, each folded
  // into a few registers with as little arithmetic as a read can have, the
  // piece 16 KiB on asked for before each (as the repacked kernels do: the
  // hardware prefetchers alone stop at each 4 KiB page, which left one thread
  // at 60% of this). Best of several passes.
  constexpr int64_t kPiece = 128, kPieces = (int64_t{512} << 20) / (kPiece * 8), kAhead = (16 << 10) / (kPiece * 8);
  std::vector<uint64_t> buf(static_cast<size_t>(kPieces * kPiece), 1);
  const int threads = n_threads > 0 ? n_threads : omp_get_max_threads();
  double best = 0;
  volatile uint64_t sink = 0;
  for (int pass = 0; pass < 6; ++pass) {
    const double t0 = now();
    uint64_t total = 0;
#pragma omp parallel for num_threads(threads) reduction(^ : total) schedule(static)
    for (int64_t r = 0; r < kPieces; ++r) {
      kernels::prefetch(buf.data() + (r + kAhead) * kPiece, kPiece * 8);
      const uint64_t* p = buf.data() + r * kPiece;
      uint64_t a[8] = {};
      for (int64_t i = 0; i < kPiece; i += 8)
        for (int j = 0; j < 8; ++j) a[j] ^= p[i + j];
      for (uint64_t v : a) total ^= v;
    }
    const double dt = now() - t0;
    sink = sink ^ total;
    best = std::max(best, static_cast<double>(kPieces * kPiece) * 8 / dt / 1e9);
  }
  return best;
}

std::string BenchResult::to_json() const {
  return fmt::format(
      "{{\"model\": \"{}\", \"isa\": \"{}\", \"threads\": {}, \"pp_tps\": {:.2f}, \"pp_tps_min\": {:.2f}, "
      "\"pp_tps_max\": {:.2f}, \"tg_tps\": {:.2f}, \"tg_tps_min\": {:.2f}, \"tg_tps_max\": {:.2f}, "
      "\"weight_mib_per_token\": {:.2f}, \"tg_gbps\": {:.2f}, \"read_gbps\": {:.2f}, \"tg_vs_read\": {:.3f}, "
      "\"peak_rss_mib\": {:.1f}, \"model_mib\": {:.1f}, \"kv_mib\": {:.1f}, \"repacked_mib\": {:.1f}, \"parallel\": {}, "
      "\"tg_batch_tps\": {:.2f}, \"tg_batch_tps_min\": {:.2f}, \"tg_batch_tps_max\": {:.2f}}}",
      model, isa, n_threads, pp_tps, pp_tps_min, pp_tps_max, tg_tps, tg_tps_min, tg_tps_max,
      weight_bytes_per_token / (1 << 20), tg_gbps, read_gbps, read_gbps > 0 ? tg_gbps / read_gbps : 0.0, peak_rss_mib,
      model_mib, kv_mib, repacked_mib, n_parallel, tg_batch_tps, tg_batch_tps_min, tg_batch_tps_max);
}

std::string BenchResult::to_text() const {
  std::string out = fmt::format(
      "model        {}\n"
      "kernels      {}, {} threads\n"
      "prompt       {:.1f} tok/s (min {:.1f}, max {:.1f})\n"
      "generation   {:.1f} tok/s (min {:.1f}, max {:.1f})\n"
      "weights read {:.1f} MiB/token -> {:.2f} GB/s, {:.0f}% of the {:.2f} GB/s read bandwidth measured now\n"
      "memory       peak RSS {:.1f} MiB (weights {:.1f} MiB, KV cache {:.1f} MiB{})\n",
      model, isa, n_threads, pp_tps, pp_tps_min, pp_tps_max, tg_tps, tg_tps_min, tg_tps_max,
      weight_bytes_per_token / (1 << 20), tg_gbps, read_gbps > 0 ? 100 * tg_gbps / read_gbps : 0.0, read_gbps,
      peak_rss_mib, model_mib, kv_mib,
      repacked_mib > 0 ? fmt::format(", a repacked copy of {:.1f} MiB of them", repacked_mib) : std::string());
  if (n_parallel > 1)
    out += fmt::format("batched      {:.1f} tok/s over {} sequences together (min {:.1f}, max {:.1f}), {:.2f}x generation\n",
                       tg_batch_tps, n_parallel, tg_batch_tps_min, tg_batch_tps_max,
                       tg_tps > 0 ? tg_batch_tps / tg_tps : 0.0);
  return out;
}

Result<BenchResult> run_bench(const std::string& model_path, const BenchOptions& opt,
                              const std::function<void(int, int)>& progress) {
  if (opt.n_prompt < 1 || opt.n_gen < 1 || opt.reps < 1)
    return Status::InvalidArgument(fmt::format("[bench] -p {}, -n {}, --reps {}: each must be at least 1", opt.n_prompt,
                                               opt.n_gen, opt.reps));
  if (opt.n_parallel < 0 || opt.n_parallel > 1024)
    return Status::InvalidArgument(fmt::format("[bench] --parallel {}, expected 0 to 1024", opt.n_parallel));
  if (opt.n_threads > 0) omp_set_num_threads(opt.n_threads);
  SLM_ASSIGN_OR_RETURN(auto src, model::ModelSource::open(model_path));
  const model::ModelConfig& c = src->config();
  const int64_t n_ctx = int64_t{opt.n_prompt} + opt.n_gen;
  model::Model m(c, src->weights(), model::ModelOptions{opt.repack});
  SLM_ASSIGN_OR_RETURN(auto kvp, model::KvCache::create(c, 0, c.n_layer, 1, n_ctx, opt.kv_type));
  model::KvCache& kv = *kvp;

  BenchResult r;
  r.model = model_path;
  r.isa = kernels::isa_name(kernels::best_isa());
  r.n_threads = opt.n_threads > 0 ? opt.n_threads : omp_get_max_threads();
  const model::Weights& w = src->weights();
  double per_token = 0;
  for (const auto& L : w.layers)
    for (const TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down, &L.attn_norm, &L.ffn_norm})
      per_token += static_cast<double>(t->nbytes);
  per_token += static_cast<double>(w.output.nbytes + w.output_norm.nbytes);
  r.weight_bytes_per_token = per_token;
  r.model_mib = (per_token + (c.tied_output ? 0 : static_cast<double>(w.token_embd.nbytes))) / (1 << 20);
  r.kv_mib = static_cast<double>(kv.bytes()) / (1 << 20);
  r.repacked_mib = static_cast<double>(m.repacked_bytes()) / (1 << 20);

  std::mt19937 rng(static_cast<uint32_t>(opt.seed));
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.n_vocab - 1));
  std::vector<double> pp, tg;
  std::vector<float> logits;
  const int n_par = opt.n_parallel > 1 ? opt.n_parallel : 0;
  std::unique_ptr<model::KvCache> kv_par;
  if (n_par > 0) {
    SLM_ASSIGN_OR_RETURN(kv_par, model::KvCache::create(c, 0, c.n_layer, n_par, n_ctx, opt.kv_type));
  }
  std::vector<double> tgb;
  const int total = opt.reps * (n_par > 0 ? 3 : 2);
  for (int rep = 0; rep < opt.reps; ++rep) {
    std::vector<model::BatchToken> batch;
    for (int32_t i = 0; i < opt.n_prompt; ++i) batch.push_back({tok(rng), i, 0, i + 1 == opt.n_prompt});
    double t0 = now();
    SLM_RETURN_IF_ERROR(m.forward(batch, kv, &logits));
    pp.push_back(opt.n_prompt / (now() - t0));
    if (progress) progress(rep * (n_par > 0 ? 3 : 2) + 1, total);

    t0 = now();
    for (int32_t i = 0; i < opt.n_gen; ++i) {
      const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      SLM_RETURN_IF_ERROR(m.forward({{next, opt.n_prompt + i, 0, true}}, kv, &logits));
    }
    tg.push_back(opt.n_gen / (now() - t0));
    if (progress) progress(rep * (n_par > 0 ? 3 : 2) + 2, total);
    if (n_par == 0) continue;

    // The same generation for n_par sequences at once: each has its own prompt
    // (untimed), then every step is one forward pass with one token of each.
    std::vector<int32_t> next(static_cast<size_t>(n_par));
    for (int32_t s = 0; s < n_par; ++s) {
      std::vector<model::BatchToken> prompt;
      for (int32_t i = 0; i < opt.n_prompt; ++i) prompt.push_back({tok(rng), i, s, i + 1 == opt.n_prompt});
      SLM_RETURN_IF_ERROR(m.forward(prompt, *kv_par, &logits));
      next[static_cast<size_t>(s)] = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    t0 = now();
    for (int32_t i = 0; i < opt.n_gen; ++i) {
      std::vector<model::BatchToken> step;
      for (int32_t s = 0; s < n_par; ++s) step.push_back({next[static_cast<size_t>(s)], opt.n_prompt + i, s, true});
      SLM_RETURN_IF_ERROR(m.forward(step, *kv_par, &logits));
      for (int32_t s = 0; s < n_par; ++s) {
        const auto row = logits.begin() + static_cast<int64_t>(s) * c.n_vocab;
        next[static_cast<size_t>(s)] = static_cast<int32_t>(std::max_element(row, row + c.n_vocab) - row);
      }
    }
    tgb.push_back(static_cast<double>(n_par) * opt.n_gen / (now() - t0));
    if (progress) progress(rep * 3 + 3, total);
  }
  const Spread p = spread(pp), g = spread(tg);
  r.pp_tps = p.median; r.pp_tps_min = p.min; r.pp_tps_max = p.max;
  r.tg_tps = g.median; r.tg_tps_min = g.min; r.tg_tps_max = g.max;
  r.tg_gbps = per_token * r.tg_tps / 1e9;
  if (n_par > 0) {
    const Spread b = spread(tgb);
    r.n_parallel = n_par;
    r.tg_batch_tps = b.median; r.tg_batch_tps_min = b.min; r.tg_batch_tps_max = b.max;
    r.kv_mib += static_cast<double>(kv_par->bytes()) / (1 << 20);
  }
  r.peak_rss_mib = peak_rss_mib();  // before the probe's buffer
  r.read_gbps = probe_read_gbps(r.n_threads);
  return r;
}

}  // namespace slm::engine
