// slm: the command-line front end. Parsing and printing only; the work is in libslm.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <random>
#include <iostream>
#include <sstream>
#include <thread>

#include "slm/compress/eval.h"
#include "slm/compress/quantize.h"
#include "slm/core/progress.h"
#include "slm/engine/bench.h"
#include "slm/engine/embed.h"
#include "slm/engine/session.h"
#include "slm/tokenizer/bpe_trainer.h"
#include "slm/model/convert.h"
#include "slm/model/synthetic.h"
#include "slm/serve/server.h"
#include "slm/train/default_model.h"
#include "compress_cmd.h"
#include "train_cmd.h"

namespace {

using slm::Status;

int fail(const Status& st) {
  std::fprintf(stderr, "slm: error: %s\n", st.to_string().c_str());
  return 1;
}

// "1 2 3" -> ids; anything that is not a whitespace-separated list of integers is an error.
slm::Result<std::vector<int32_t>> parse_ids(const std::string& s, const char* what = "--prompt-ids") {
  std::vector<int32_t> ids;
  std::istringstream in(s);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != word.size() || v < 0 || v > INT32_MAX)
      return Status::InvalidArgument(fmt::format("{}: '{}' is not a token id (a non-negative integer)", what, word));
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return Status::InvalidArgument(fmt::format("{} is empty: give ids separated by spaces, e.g. \"1 403\"", what));
  return ids;
}

// "f16" / "F16" -> DType::kF16; F32 and F16 only (KV cache types).
slm::Result<slm::DType> parse_kv_type(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (s == "F32") return slm::DType::kF32;
  if (s == "F16") return slm::DType::kF16;
  return Status::InvalidArgument(fmt::format("--kv-type '{}' is not f32 or f16", s));
}

struct RunArgs {
  std::string model, prompt, prompt_ids, tokenizer, kv_type = "f32";
  bool has_prompt = false, print_ids = false, ignore_eos = false, repack = false;
  int32_t n = 256, threads = 0, top_k = 40;
  int64_t ctx = 0;
  float temp = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  int32_t repeat_last_n = 64;
  uint64_t seed = 0;
  bool seed_set = false;
};

int cmd_run(RunArgs& a) {
  if (a.model.empty()) {
    auto path = slm::train::ensure_default_model(a.threads);
    if (!path.ok()) return fail(path.status());
    a.model = *path;
  }
  slm::engine::SessionOptions so;
  so.tokenizer_path = a.tokenizer;
  so.n_ctx = a.ctx;
  so.n_threads = a.threads;
  auto kvt = parse_kv_type(a.kv_type);
  if (!kvt.ok()) return fail(kvt.status());
  so.kv_type = *kvt;
  so.repack = a.repack;
  auto session = slm::engine::Session::open(a.model, so);
  if (!session.ok()) return fail(session.status());
  slm::engine::Session& s = **session;

  std::vector<int32_t> prompt;
  if (!a.prompt_ids.empty()) {
    auto ids = parse_ids(a.prompt_ids);
    if (!ids.ok()) return fail(ids.status());
    prompt = *ids;
  } else if (a.has_prompt && !a.prompt.empty()) {
    auto ids = s.tokenize(a.prompt, true);
    if (!ids.ok()) return fail(ids.status().with_context("prompt"));
    prompt = *ids;
  }
  if (prompt.empty()) {  // no prompt: start from BOS
    const int32_t bos = s.tokenizer() ? s.tokenizer()->bos() : s.source().config().bos_id;
    if (bos < 0) return fail(Status::InvalidArgument("the model has no BOS token: give a prompt"));
    prompt.push_back(bos);
  }

  slm::engine::GenerateOptions go;
  go.n_predict = a.n;
  go.stop_at_eog = !a.ignore_eos;
  go.sampler.temperature = a.temp;
  go.sampler.top_k = a.top_k;
  go.sampler.top_p = a.top_p;
  go.sampler.min_p = a.min_p;
  go.sampler.repeat_penalty = a.repeat_penalty;
  go.sampler.repeat_last_n = a.repeat_last_n;
  go.sampler.seed = a.seed_set ? a.seed : static_cast<uint64_t>(std::random_device{}());
  if (!a.print_ids && s.tokenizer() == nullptr)
    return fail(Status::InvalidArgument("this model has no tokenizer to print text with: add --print-ids, or name a "
                                        "tokenizer file with --tokenizer"));

  std::vector<int32_t> out;
  slm::engine::GenerateStats st;
  Status gs = s.generate(prompt, go, [&](int32_t id, const std::string& text) {
    if (a.print_ids) {
      if (id >= 0) out.push_back(id);
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    return true;
  }, &st);
  if (a.print_ids) {
    for (size_t i = 0; i < out.size(); ++i) std::printf("%s%d", i ? " " : "", out[i]);
  }
  std::printf("\n");
  std::fflush(stdout);  // the text before the timings, also when both go to one file
  if (!gs.ok()) return fail(gs);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr, "slm: prompt %lld tokens, %.1f tok/s; generated %lld tokens, %.1f tok/s; stop: %s; peak RSS %.1f MiB\n",
               static_cast<long long>(st.n_prompt), st.prompt_seconds > 0 ? st.n_prompt / st.prompt_seconds : 0.0,
               static_cast<long long>(st.n_generated),
               st.generate_seconds > 0 ? st.n_generated / st.generate_seconds : 0.0, st.stop_reason.c_str(),
               static_cast<double>(ru.ru_maxrss) / 1024.0);
  return 0;
}

int cmd_tokenize(const std::string& path, bool no_bos) {
  auto tok = slm::engine::open_tokenizer(path);
  if (!tok.ok()) return fail(tok.status());
  std::stringstream ss;
  ss << std::cin.rdbuf();
  auto ids = (*tok)->encode(ss.str(), !no_bos);
  if (!ids.ok()) return fail(ids.status().with_context("input"));
  for (size_t i = 0; i < ids->size(); ++i) std::printf("%s%d", i ? " " : "", (*ids)[i]);
  std::printf("\n");
  return 0;
}

int cmd_info(const std::string& path) {
  auto src = slm::model::ModelSource::open(path);
  if (!src.ok()) {
    // Not a model: maybe a tokenizer file or a vocab-only GGUF.
    auto tok = slm::engine::open_tokenizer(path);
    if (!tok.ok()) return fail(src.status());
    const auto& t = **tok;
    std::printf("file: %s (tokenizer only)\n", path.c_str());
    std::printf("tokenizer: %s, %d tokens, bos %d, eos %d\n", t.kind().c_str(), t.n_vocab(), t.bos(), t.eos());
    return 0;
  }
  const slm::model::ModelSource& m = **src;
  std::printf("file: %s (%s)\n", m.path().c_str(), m.format_name());
  std::printf("model: %s\n", m.config().describe().c_str());
  auto tok = slm::engine::open_tokenizer(path);
  if (tok.ok()) {
    const auto& t = **tok;
    std::printf("tokenizer: %s, %d tokens, bos %d, eos %d\n", t.kind().c_str(), t.n_vocab(), t.bos(), t.eos());
  } else {
    std::printf("tokenizer: none (%s)\n", tok.status().message().c_str());
  }
  std::printf("metadata (%zu):\n", m.metadata().size());
  for (const auto& [k, v] : m.metadata()) std::printf("  %s = %s\n", k.c_str(), v.c_str());
  std::printf("tensors (%zu):\n", m.tensor_list().size());
  for (const auto& t : m.tensor_list()) {
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
    std::printf("  %-40s %-5s [%s]\n", t.name.c_str(), t.type.c_str(), shape.c_str());
  }
  return 0;
}

int cmd_convert(const std::string& model, const std::string& out) {
  auto src = slm::model::ModelSource::open(model);
  if (!src.ok()) return fail(src.status());
  auto r = slm::model::convert_to_gguf(**src, out);
  if (!r.ok()) return fail(r.status());
  std::fprintf(stderr, "slm: wrote %s: %s, %lld tensors, %.2f MiB\n", out.c_str(), (*src)->config().arch.c_str(),
               static_cast<long long>(r->n_tensors), static_cast<double>(r->bytes) / (1 << 20));
  if (!r->tokenizer_skipped.empty())
    std::fprintf(stderr, "slm: the tokenizer is not embedded (%s); run the GGUF with --tokenizer %s\n",
                 r->tokenizer_skipped.c_str(), r->tokenizer_path.c_str());
  else if (!r->tokenizer_path.empty())
    std::fprintf(stderr, "slm: embedded the tokenizer %s\n", r->tokenizer_path.c_str());
  return 0;
}

// Encoders: for each line of stdin (text, or token ids with --ids), the pooled
// vector as a JSON array (embed) or the head's label and probabilities as a
// JSON object (classify).
int cmd_encoder(const std::string& model, const std::string& tokenizer, bool ids_mode, bool classify) {
  auto e = slm::engine::Embedder::open(model, tokenizer);
  if (!e.ok()) return fail(e.status());
  std::string line;
  for (int64_t n = 1; std::getline(std::cin, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto run_line = [&]() -> slm::Result<std::vector<float>> {
      if (!ids_mode) return classify ? (*e)->classify(line) : (*e)->embed(line);
      SLM_ASSIGN_OR_RETURN(std::vector<int32_t> ids, parse_ids(line, "--ids"));
      return classify ? (*e)->classify_ids(ids) : (*e)->embed_ids(ids);
    };
    auto v = run_line();
    if (!v.ok()) return fail(v.status().with_context(fmt::format("stdin line {}", n)));
    if (classify) {
      const auto& labels = (*e)->source().config().labels;
      nlohmann::ordered_json scores = nlohmann::ordered_json::object();
      for (size_t i = 0; i < v->size(); ++i) scores[labels[i]] = (*v)[i];
      const size_t best = static_cast<size_t>(std::max_element(v->begin(), v->end()) - v->begin());
      std::printf("%s\n", nlohmann::ordered_json{{"label", labels[best]}, {"scores", scores}}.dump().c_str());
      continue;
    }
    std::string out = "[";
    for (size_t i = 0; i < v->size(); ++i) out += fmt::format("{}{:.7g}", i ? ", " : "", (*v)[i]);
    std::printf("%s]\n", out.c_str());
  }
  return 0;
}

struct GenArgs {
  std::string preset, type = "F32", out;
  slm::model::SyntheticSpec spec;
};

int cmd_gen_model(GenArgs& g, CLI::App& sub) {
  slm::model::SyntheticSpec s = g.spec;
  if (!g.preset.empty()) {
    auto p = slm::model::synthetic_preset(g.preset);
    if (!p.ok()) return fail(p.status());
    s = *p;
    // Explicit flags override the preset's numbers.
    if (sub.count("--dim")) s.n_embd = g.spec.n_embd;
    if (sub.count("--layers")) s.n_layer = g.spec.n_layer;
    if (sub.count("--heads")) s.n_head = g.spec.n_head;
    if (sub.count("--kv-heads")) s.n_head_kv = g.spec.n_head_kv;
    if (sub.count("--ffn")) s.n_ff = g.spec.n_ff;
    if (sub.count("--vocab")) s.n_vocab = g.spec.n_vocab;
  }
  s.seed = g.spec.seed;
  bool found = false;
  for (int t = 0; t < static_cast<int>(slm::DType::kCount); ++t) {
    if (slm::dtype_name(static_cast<slm::DType>(t)) == g.type) {
      s.type = static_cast<slm::DType>(t);
      found = true;
    }
  }
  if (!found) return fail(Status::InvalidArgument(fmt::format("--type '{}' is not a type (F32, F16, BF16, Q8_0, Q4_0)", g.type)));
  Status st = slm::model::finish_spec(&s);
  if (st.ok()) st = slm::model::write_synthetic_gguf(s, g.out);
  if (!st.ok()) return fail(st);
  std::fprintf(stderr, "slm: wrote %s: dim %lld, layers %lld, heads %lld (kv %lld), ffn %lld, vocab %lld, %s\n",
               g.out.c_str(), (long long)s.n_embd, (long long)s.n_layer, (long long)s.n_head, (long long)s.n_head_kv,
               (long long)s.n_ff, (long long)s.n_vocab, g.type.c_str());
  return 0;
}

int cmd_bench(const std::string& model, slm::engine::BenchOptions opt, const std::string& kv_type, bool json) {
  auto kvt = parse_kv_type(kv_type);
  if (!kvt.ok()) return fail(kvt.status());
  opt.kv_type = *kvt;
  slm::Progress bar("bench", static_cast<int64_t>(opt.reps) * 2, "runs");
  auto r = slm::engine::run_bench(model, opt, [&](int done, int) { bar.update(done); });
  bar.finish();
  if (!r.ok()) return fail(r.status());
  std::printf("%s\n", json ? r->to_json().c_str() : r->to_text().c_str());
  return 0;
}

struct EvalArgs {
  std::string model, ppl_file, hellaswag_file, tokenizer, kv_type = "f32";
  int64_t ctx = 0, stride = 0, tasks = 0;
  int32_t threads = 0;
};

// Perplexity (llama.cpp's windows) or HellaSwag acc_norm; the result is the last line of stdout.
int cmd_eval(const EvalArgs& a) {
  if (a.ppl_file.empty() == a.hellaswag_file.empty())
    return fail(Status::InvalidArgument("eval: give one of --ppl FILE or --hellaswag FILE"));
  auto kvt = parse_kv_type(a.kv_type);
  if (!kvt.ok()) return fail(kvt.status());
  if (a.threads > 0) omp_set_num_threads(a.threads);
  auto src = slm::model::ModelSource::open(a.model);
  if (!src.ok()) return fail(src.status());
  auto tok = slm::engine::open_tokenizer(a.tokenizer.empty() ? a.model : a.tokenizer);
  if (!tok.ok()) return fail(tok.status().with_context("tokenizer"));
  const slm::model::ModelConfig& c = (*src)->config();
  if ((*tok)->n_vocab() > c.n_vocab)
    return fail(Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary is {}",
                                                    (*tok)->n_vocab(), c.n_vocab)));
  slm::model::Model model(c, (*src)->weights());

  if (!a.ppl_file.empty()) {
    auto ids = slm::compress::tokenize_file(**tok, a.ppl_file);
    if (!ids.ok()) return fail(ids.status());
    slm::compress::PerplexityOptions po;
    po.n_ctx = a.ctx > 0 ? a.ctx : std::min<int64_t>(c.n_ctx_train, 512);
    po.stride = a.stride;
    po.kv_type = *kvt;
    const int64_t stride = po.stride > 0 ? po.stride : po.n_ctx;
    const auto n = static_cast<int64_t>(ids->size());
    std::fprintf(stderr, "slm: %lld tokens, windows of %lld tokens%s\n", static_cast<long long>(n),
                 static_cast<long long>(po.n_ctx),
                 stride < po.n_ctx ? fmt::format(" every {} tokens", stride).c_str() : "");
    std::unique_ptr<slm::Progress> bar;
    const bool tty = isatty(2) != 0;
    auto r = slm::compress::perplexity(model, *ids, (*tok)->bos(), po, [&](int64_t done, int64_t total, double ppl) {
      if (!bar) bar = std::make_unique<slm::Progress>("ppl", total, "windows");
      bar->update(done);
      // The running estimate on its own line (over the bar on a terminal).
      if (done == total || done % 8 == 0 || done < 8)
        std::fprintf(stderr, "%s[%lld/%lld] ppl %.4f%s\n", tty ? "\r" : "", static_cast<long long>(done),
                     static_cast<long long>(total), ppl, tty ? "\x1b[K" : "");
    });
    if (bar) bar->finish();
    if (!r.ok()) return fail(r.status());
    std::printf("tokens=%lld windows=%lld ctx=%lld scored=%lld mean_nll=%.6f\n", static_cast<long long>(r->n_tokens),
                static_cast<long long>(r->n_windows), static_cast<long long>(po.n_ctx),
                static_cast<long long>(r->n_scored), r->mean_nll);
    std::printf("ppl=%.4f +/- %.5f\n", r->ppl, r->ppl_stderr);
    return 0;
  }

  auto text = slm::compress::read_text_file(a.hellaswag_file);
  if (!text.ok()) return fail(text.status());
  auto tasks = slm::compress::parse_hellaswag(*text, a.tasks);
  if (!tasks.ok()) return fail(tasks.status().with_context(a.hellaswag_file));
  slm::Progress bar("hellaswag", static_cast<int64_t>(tasks->size()), "tasks");
  double acc = 0;
  auto r = slm::compress::hellaswag(model, **tok, *tasks, *kvt, [&](int64_t done, int64_t, double a_norm) {
    acc = a_norm;
    bar.update(done);
  });
  bar.finish();
  if (!r.ok()) return fail(r.status());
  std::printf("tasks=%lld correct=%lld\n", static_cast<long long>(r->n_tasks), static_cast<long long>(r->n_correct));
  std::printf("acc_norm=%.2f\n", r->acc_norm);
  return 0;
}

struct TokTrainArgs {
  std::vector<std::string> data, specials;
  int32_t vocab = 0;
  std::string out;
};

int cmd_tokenizer_train(const TokTrainArgs& a) {
  slm::tokenizer::BpeTrainOptions o;
  o.vocab_size = a.vocab;
  o.special_tokens = a.specials;
  std::unique_ptr<slm::Progress> bar;
  std::string phase;
  o.progress = [&](std::string_view ph, int64_t done, int64_t total) {
    if (ph != phase) {  // one bar per phase: reading the corpus, then merging
      if (bar) bar->finish();
      phase = std::string(ph);
      bar = std::make_unique<slm::Progress>(phase, total < 0 ? 0 : total, ph == "read" ? "B" : "merges");
    }
    bar->update(done);
  };
  auto model = slm::tokenizer::train_bpe(a.data, o);
  if (bar) bar->finish();
  if (!model.ok()) return fail(model.status());
  Status st = slm::tokenizer::write_hf_tokenizer_json(*model, a.out);
  if (!st.ok()) return fail(st);
  std::fprintf(stderr, "slm: wrote %s: %zu tokens, %zu merges, %zu special\n", a.out.c_str(), model->vocab.size(),
               model->merges.size(), model->special_tokens.size());
  return 0;
}

struct ServeArgs {
  // A server's KV cache is allocated whole (slots x context): F16 halves it,
  // and the attention of a batch reads half the bytes (llama.cpp's default too).
  std::string model, tokenizer, kv_type = "f16";
  slm::serve::ServerOptions opt;
  int64_t ctx = 0;
  int threads = 0;
  bool repack = false;
};

int cmd_serve(ServeArgs& a) {
  // SIGINT/SIGTERM stop the server from a thread of our own (shutdown() is not
  // async-signal-safe). Blocked before any thread starts, so every thread inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  slm::engine::SessionOptions so;
  so.tokenizer_path = a.tokenizer;
  so.n_ctx = a.ctx;
  so.n_threads = a.threads;
  a.opt.n_threads = a.threads;
  auto kvt = parse_kv_type(a.kv_type);
  if (!kvt.ok()) return fail(kvt.status());
  so.kv_type = *kvt;
  so.repack = a.repack;
  auto session = slm::engine::Session::open(a.model, so);
  if (!session.ok()) return fail(session.status());
  auto server = slm::serve::Server::create(std::move(*session), a.model, a.opt);
  if (!server.ok()) return fail(server.status());
  slm::serve::Server& srv = **server;
  Status st = srv.bind();
  if (!st.ok()) return fail(st);
  std::thread([&srv, set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::fprintf(stderr, "slm: signal %d, finishing the requests in flight (up to 30 s; again to stop now)\n", sig);
    std::thread([set] {
      int again = 0;
      sigwait(&set, &again);
      std::fprintf(stderr, "slm: signal %d again, stopping now\n", again);
      std::_Exit(1);
    }).detach();
    srv.shutdown(std::chrono::seconds(30));
  }).detach();
  std::fprintf(stderr, "slm: serving %s on http://%s:%d (chat page at /, POST /v1/chat/completions, /v1/completions, GET /v1/models, /health, /metrics)\n",
               a.model.c_str(), a.opt.host.c_str(), srv.port());
  st = srv.run();
  if (!st.ok()) return fail(st);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"slm: run, train, compress and serve small language models"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");

  RunArgs ra;
  CLI::App* run = app.add_subcommand("run", "Generate text from a model (GGUF, safetensors folder, llama2.c .bin)");
  run->add_option("model", ra.model, "Model file or folder (default: the embedded default, trained on first use)");
  auto* popt = run->add_option("-p,--prompt", ra.prompt, "Prompt text (default: start from BOS)");
  run->add_option("--prompt-ids", ra.prompt_ids, "Prompt as token ids, e.g. \"1 403 407\"")->excludes(popt);
  run->add_option("-n,--n-predict", ra.n, "Tokens to generate at most")->check(CLI::Range(0, 1 << 24));
  run->add_option("--temp", ra.temp, "Temperature; 0 is greedy")->check(CLI::Range(0.0, 100.0));
  run->add_option("--top-k", ra.top_k, "Keep the k most likely tokens (0: off)")->check(CLI::Range(0, 1 << 24));
  run->add_option("--top-p", ra.top_p, "Nucleus: keep the smallest set with this mass (1: off)")->check(CLI::Range(0.0, 1.0));
  run->add_option("--min-p", ra.min_p, "Drop tokens below min-p x the top probability (0: off)")->check(CLI::Range(0.0, 1.0));
  run->add_option("--repeat-penalty", ra.repeat_penalty, "Penalty for recent tokens (1: off)")->check(CLI::Range(0.01, 100.0));
  run->add_option("--repeat-last-n", ra.repeat_last_n, "How many recent tokens the penalty sees")->check(CLI::Range(0, 1 << 20));
  run->add_option("--seed", ra.seed, "Random seed (default: random)");
  run->add_option("-t,--threads", ra.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  run->add_option("-c,--ctx", ra.ctx, "Context size (default: the model's, at most 4096)")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  run->add_option("--tokenizer", ra.tokenizer, "Tokenizer file (tokenizer.json, tokenizer.model, llama2.c .bin)");
  run->add_option("--kv-type", ra.kv_type, "KV cache type: f32 or f16 (half the memory)");
  run->add_flag("--repack", ra.repack, "Copy Q4_0, Q8_0 and Q4_K matrices once into the row panels the AVX-512 kernels read (faster generation, batches and prompts; their size again in memory)");
  run->add_flag("--print-ids", ra.print_ids, "Print generated token ids instead of text");
  run->add_flag("--ignore-eos", ra.ignore_eos, "Do not stop at end-of-generation tokens");

  std::string tok_model;
  bool no_bos = false;
  CLI::App* tokenize = app.add_subcommand("tokenize", "Print the token ids of UTF-8 text read from stdin");
  tokenize->add_option("model", tok_model, "Model, vocab-only GGUF or tokenizer file")->required();
  tokenize->add_flag("--no-bos", no_bos, "Do not add BOS (or other special tokens)");

  std::string info_model;
  CLI::App* info = app.add_subcommand("info", "Show a model's architecture, tokenizer and tensors");
  info->add_option("model", info_model, "Model file or folder")->required();

  std::string conv_model, conv_out;
  CLI::App* conv = app.add_subcommand("convert", "Write a model (Hugging Face folder, llama2.c, GGUF) as GGUF");
  conv->add_option("model", conv_model, "Model file or folder")->required();
  conv->add_option("--out", conv_out, "Output .gguf (written atomically)")->required();

  std::string emb_model, emb_tokenizer;
  bool emb_ids = false;
  CLI::App* embed = app.add_subcommand("embed", "Encoder models: a JSON vector for each line of stdin");
  embed->add_option("model", emb_model, "Encoder model file or folder (BERT, DistilBERT)")->required();
  embed->add_option("--tokenizer", emb_tokenizer, "Tokenizer file (default: the model's)");
  embed->add_flag("--ids", emb_ids, "Lines are token ids, e.g. \"101 7592 102\"");

  CLI::App* classify = app.add_subcommand("classify", "Encoders with a classification head: label and probabilities per line of stdin");
  classify->add_option("model", emb_model, "Encoder model with a head (BertForSequenceClassification, ...)")->required();
  classify->add_option("--tokenizer", emb_tokenizer, "Tokenizer file (default: the model's)");
  classify->add_flag("--ids", emb_ids, "Lines are token ids, e.g. \"101 7592 102\"");

  GenArgs ga;
  CLI::App* gen = app.add_subcommand("gen-model", "Write a GGUF Llama model with random weights (for benchmarks)");
  gen->add_option("--preset", ga.preset, "15m, 110m or tinyllama-1.1b");
  gen->add_option("--arch", "Architecture (llama)")->check(CLI::IsMember({"llama"}));
  gen->add_option("--dim", ga.spec.n_embd, "Hidden size");
  gen->add_option("--layers", ga.spec.n_layer, "Layers");
  gen->add_option("--heads", ga.spec.n_head, "Attention heads");
  gen->add_option("--kv-heads", ga.spec.n_head_kv, "KV heads (default: heads)");
  gen->add_option("--ffn", ga.spec.n_ff, "Feed-forward size (default: llama2.c's rule)");
  gen->add_option("--vocab", ga.spec.n_vocab, "Vocabulary size");
  gen->add_option("--type", ga.type, "Weight type: F32, F16, BF16, Q8_0, Q4_0");
  gen->add_option("--seed", ga.spec.seed, "Random seed");
  gen->add_option("--out", ga.out, "Output .gguf")->required();

  std::string bench_model;
  slm::engine::BenchOptions bo;
  bool bench_json = false;
  CLI::App* bench = app.add_subcommand("bench", "Measure prompt and generation speed, memory and bandwidth use");
  bench->add_option("model", bench_model, "Model file or folder")->required();
  bench->add_option("-p,--n-prompt", bo.n_prompt, "Prompt tokens (one batch)")->check(CLI::Range(1, 1 << 16));
  bench->add_option("-n,--n-gen", bo.n_gen, "Generated tokens")->check(CLI::Range(1, 1 << 16));
  bench->add_option("--reps", bo.reps, "Repetitions (median and spread reported)")->check(CLI::Range(1, 1000));
  bench->add_option("-t,--threads", bo.n_threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  std::string bench_kv = "f32";
  bench->add_option("--kv-type", bench_kv, "KV cache type: f32 or f16");
  bench->add_option("--parallel", bo.n_parallel, "Also generate N sequences decoded together (summed tok/s)")->check(CLI::Range(1, 1024));
  bench->add_flag("--repack", bo.repack, "Copy Q4_0, Q8_0 and Q4_K matrices once into the row panels the AVX-512 kernels read (faster generation, batches and prompts; their size again in memory)");
  bench->add_flag("--json", bench_json, "Print one JSON object");

  EvalArgs ea;
  CLI::App* eval = app.add_subcommand("eval", "Perplexity over a text file, or HellaSwag accuracy");
  eval->add_option("model", ea.model, "Model file or folder")->required();
  eval->add_option("--ppl", ea.ppl_file, "Text file (UTF-8, or .bz2) for perplexity");
  eval->add_option("--hellaswag", ea.hellaswag_file, "HellaSwag file, 6 lines per task (plain or .bz2)");
  eval->add_option("-c,--ctx", ea.ctx, "Perplexity window (default: the model's context, at most 512)")
      ->check(CLI::Range(int64_t{4}, int64_t{1} << 20));
  eval->add_option("--stride", ea.stride, "Windows every S tokens, scoring their last S (default: ctx, "
                   "non-overlapping windows scoring their second half)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  eval->add_option("--tasks", ea.tasks, "HellaSwag: the first N tasks (default: all)")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  eval->add_option("-t,--threads", ea.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  eval->add_option("--kv-type", ea.kv_type, "KV cache type: f32 or f16");
  eval->add_option("--tokenizer", ea.tokenizer, "Tokenizer file (default: the model's)");

  QuantizeCommand quant_cmd(app);
  PruneCommand prune_cmd(app);

  TokTrainArgs ta;
  CLI::App* tok_cmd = app.add_subcommand("tokenizer", "Tokenizer tools");
  tok_cmd->require_subcommand(1);
  CLI::App* tok_train = tok_cmd->add_subcommand("train", "Train a byte-level BPE tokenizer; writes tokenizer.json");
  tok_train->add_option("--data", ta.data, "Text files to train on")->required();
  tok_train->add_option("--vocab", ta.vocab, "Vocabulary size (256 bytes + special tokens + merges)")->required();
  tok_train->add_option("--special", ta.specials, "Special tokens, e.g. --special '<|endoftext|>'");
  tok_train->add_option("--out", ta.out, "Output tokenizer.json")->required();

  ServeArgs sa;
  TrainCommand train_cmd(app);
  CLI::App* serve = app.add_subcommand("serve", "Serve a model over an OpenAI-compatible HTTP API");
  serve->add_option("model", sa.model, "Model file or folder")->required();
  serve->add_option("--host", sa.opt.host, "Address to listen on (default 127.0.0.1)");
  serve->add_option("--port", sa.opt.port, "Port (default 8080; 0: any free port)")->check(CLI::Range(0, 65535));
  serve->add_option("-c,--ctx", sa.ctx, "Context size (default: the model's, at most 4096)")->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  serve->add_option("--api-key", sa.opt.api_key, "Require 'Authorization: Bearer KEY'");
  serve->add_option("-t,--threads", sa.threads, "Threads (default: all cores)")->check(CLI::Range(1, 1024));
  serve->add_option("--tokenizer", sa.tokenizer, "Tokenizer file (default: the model's)");
  serve->add_option("--kv-type", sa.kv_type, "KV cache type: f16 (default) or f32");
  serve->add_flag("--repack", sa.repack, "Copy Q4_0, Q8_0 and Q4_K matrices once into the row panels the AVX-512 kernels read (faster generation, batches and prompts; their size again in memory)");
  serve->add_option("--parallel", sa.opt.n_parallel, "Requests decoded together in one batch (default 4)")->check(CLI::Range(1, 256));
  serve->add_option("--queue", sa.opt.max_queue, "Requests waiting for a slot before 503 (default 32)")->check(CLI::Range(0, 4096));

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "slm: error: %s (see slm --help)\n", e.what());
    return 2;
  }
  ra.has_prompt = popt->count() > 0;
  ra.seed_set = run->count("--seed") > 0;
  if (*run) return cmd_run(ra);
  if (*tokenize) return cmd_tokenize(tok_model, no_bos);
  if (*info) return cmd_info(info_model);
  if (*conv) return cmd_convert(conv_model, conv_out);
  if (*embed || *classify) return cmd_encoder(emb_model, emb_tokenizer, emb_ids, classify->parsed());
  if (*gen) return cmd_gen_model(ga, *gen);
  if (*bench) return cmd_bench(bench_model, bo, bench_kv, bench_json);
  if (*eval) return cmd_eval(ea);
  if (quant_cmd.chosen()) return quant_cmd.run();
  if (prune_cmd.chosen()) return prune_cmd.run();
  if (*tok_train) return cmd_tokenizer_train(ta);
  if (train_cmd.chosen()) return train_cmd.run();
  if (*serve) return cmd_serve(sa);
  return 2;
}
