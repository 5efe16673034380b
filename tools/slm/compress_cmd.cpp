#include "compress_cmd.h"

#include <omp.h>

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "slm/core/progress.h"

namespace {

int fail(const slm::Status& st) {
  std::fprintf(stderr, "slm: error: %s\n", st.to_string().c_str());
  return 1;
}

void add_calib_options(CLI::App* s, std::string& calib, slm::compress::CalibrationOptions& c, int& threads) {
  s->add_option("--calib", calib, "Calibration text (UTF-8 or .bz2), tokenized with the model's tokenizer");
  s->add_option("--calib-ctx", c.n_ctx, "Calibration window in tokens (default 256)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  s->add_option("--calib-tokens", c.max_tokens, "Calibration tokens at most (default 8192)")
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  s->add_option("-t,--threads", threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
}

// Progress bars: the calibration's layers, then the tensors.
struct Bars {
  std::unique_ptr<slm::Progress> calib, tensors;
  slm::compress::CalibrationCallback calib_cb() {
    return [this](int64_t done, int64_t total) {
      if (!calib) calib = std::make_unique<slm::Progress>("calibrate", total, "layers");
      calib->update(done);
      if (done == total) calib->finish();
    };
  }
  slm::compress::QuantizeCallback tensor_cb(const char* label) {
    return [this, label](int64_t done, int64_t total) {
      if (!tensors) tensors = std::make_unique<slm::Progress>(label, total, "tensors");
      tensors->update(done);
      if (done == total) tensors->finish();
    };
  }
};

// The summary table: each tensor's types, bytes and errors, then the totals.
void print_report(const slm::compress::QuantizeReport& r, const std::string& out, bool pruned) {
  std::printf("%-28s %-5s -> %-5s %10s %10s %9s %9s %9s%s\n", "tensor", "from", "to", "bytes in", "bytes out", "rmse",
              "out err", "rtn err", pruned ? "   pruned" : "");
  auto num = [](double v) { return v < 0 ? std::string("-") : fmt::format("{:.3g}", v); };
  double err = 0, err_rtn = 0;
  int n_err = 0, n_rtn = 0;
  for (const auto& p : r.tensors) {
    std::printf("%-28s %-5s -> %-5s %10llu %10llu %9.3g %9s %9s%s\n", p.name.c_str(), p.from.c_str(), p.to.c_str(),
                static_cast<unsigned long long>(p.bytes_in), static_cast<unsigned long long>(p.bytes_out), p.rmse,
                num(p.err).c_str(), num(p.err_rtn).c_str(), pruned ? fmt::format(" {:7.1f}%", 100 * p.zeros).c_str() : "");
    if (p.err >= 0) err += p.err, ++n_err;
    if (p.err_rtn >= 0) err_rtn += p.err_rtn, ++n_rtn;
  }
  if (n_err > 0)
    std::printf("mean relative output error on the calibration text over %d matrices: %.4g%s\n", n_err,
                err / n_err, n_rtn > 0 ? fmt::format(" (rtn {:.4g})", err_rtn / n_rtn).c_str() : "");
  std::printf("total: %.2f MiB -> %.2f MiB (%.2fx); wrote %s\n", r.bytes_in / 1048576.0, r.bytes_out / 1048576.0,
              r.bytes_out > 0 ? static_cast<double>(r.bytes_in) / static_cast<double>(r.bytes_out) : 0.0, out.c_str());
}

}  // namespace

QuantizeCommand::QuantizeCommand(CLI::App& app) {
  sub_ = app.add_subcommand("quantize", "Quantize a GGUF model (RTN, AWQ, GPTQ; imatrix for the k-quants) to GGUF "
                                        "blocks: Q8_0, Q4_0, Q4_1, Q5_0, Q2_K..Q6_K, int4 / int8 with groups");
  CLI::App* s = sub_;
  s->add_option("model", model_, "GGUF model (F32, F16 or BF16 weights)")->required();
  s->add_option("--type", type_, "Q8_0, Q4_0, Q4_1, Q5_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; int8 (symmetric, in Q8_0 blocks) or int4 "
                                 "(asymmetric, in Q4_1 blocks) with one scale per --group")->required();
  s->add_option("--group", group_, "int4 / int8: columns per scale, a multiple of 32 (default 0: the whole row)")
      ->check(CLI::NonNegativeNumber);
  s->add_option("--method", o_.method, "rtn (round to nearest), imatrix (k-quants: error weighted by the calibration "
                                       "activations' mean squares), gptq or awq (all three need --calib; with rtn, "
                                       "--calib reports each layer's output error)");
  s->add_option("--out", out_, "Output .gguf (written atomically)")->required();
  add_calib_options(s, o_.calib, o_.calib_opt, threads_);
  s->add_option("--damp", o_.obs.damp, "gptq: damping, a fraction of the Hessian's mean diagonal (default 0.01)")
      ->check(CLI::Range(0.0, 10.0));
  s->add_flag("--act-order", o_.obs.act_order, "gptq: columns in order of decreasing activation energy");
  s->add_option("--keep", o_.keep, "Tensors kept unquantized: name prefixes, e.g. --keep token_embd output.");
}

int QuantizeCommand::run() {
  auto f = slm::compress::parse_quant_format(type_, group_);
  if (!f.ok()) return fail(f.status());
  if (threads_ > 0) omp_set_num_threads(threads_);
  o_.format = *f;
  Bars bars;
  o_.calib_cb = bars.calib_cb();
  auto r = slm::compress::quantize_gguf(model_, out_, o_, bars.tensor_cb("quantize"));
  if (!r.ok()) return fail(r.status());
  print_report(*r, out_, false);
  return 0;
}

PruneCommand::PruneCommand(CLI::App& app) {
  sub_ = app.add_subcommand("prune", "Prune a GGUF model's block weights (magnitude, Wanda, SparseGPT; N:M; "
                                     "whole feed-forward channels, heads or layers)");
  CLI::App* s = sub_;
  s->add_option("model", model_, "GGUF model (F32, F16 or BF16 weights)")->required();
  s->add_option("--method", o_.method, "magnitude, wanda, sparsegpt; structured: ffn (feed-forward channels), "
                                       "heads or layers; all but magnitude need --calib");
  s->add_option("--sparsity", o_.sparsity, "Share dropped, in [0, 1) (default 0.5): of each matrix's weights; of "
                                           "the channels, KV heads or layers for ffn, heads, layers");
  s->add_option("--pattern", o_.pattern, "N:M: N of every M consecutive inputs dropped (e.g. 2:4)");
  s->add_option("--out", out_, "Output .gguf (written atomically)")->required();
  add_calib_options(s, o_.calib, o_.calib_opt, threads_);
  s->add_option("--damp", o_.obs.damp, "sparsegpt: damping, a fraction of the Hessian's mean diagonal (default 0.01)")
      ->check(CLI::Range(0.0, 10.0));
}

int PruneCommand::run() {
  if (threads_ > 0) omp_set_num_threads(threads_);
  Bars bars;
  o_.calib_cb = bars.calib_cb();
  auto r = slm::compress::prune_gguf(model_, out_, o_, bars.tensor_cb("prune"));
  if (!r.ok()) return fail(r.status());
  print_report(*r, out_, true);
  return 0;
}
