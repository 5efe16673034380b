// Evaluation of a model's quality, the yardstick for every compression method:
//
// - perplexity over a token stream, computed the way llama.cpp's perplexity
//   tool does it: non-overlapping windows of n_ctx tokens, each starting with
//   BOS (it replaces the window's first token), and only the second half of
//   each window scored (every scored token sees at least n_ctx/2 tokens of
//   context). The error is the standard error of the mean NLL carried through
//   exp: ppl * sqrt(var(nll) / (n - 1)).
//   With stride < n_ctx, windows start every `stride` tokens and each scores
//   its last `stride` tokens (llama.cpp's --ppl-stride).
// - HellaSwag in llama.cpp's text format (6 lines per task: context, gold
//   label 0..3, 4 endings), each ending scored by the mean log-probability of
//   its tokens given the context (tokens past the prefix that the 4
//   tokenizations of "context ending" share), the answer being the best one.
//
// Thread safety: the functions share nothing; the model is read-only.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "slm/core/dtype.h"
#include "slm/core/status.h"
#include "slm/model/llama.h"
#include "slm/tokenizer/tokenizer.h"

namespace slm::compress {

// Reads a whole text file; a bzip2 file (by its "BZh" magic) is decompressed.
// Missing, unreadable, empty or corrupt files get an error naming the file.
Result<std::string> read_text_file(const std::string& path);

// Reads a text file and tokenizes it with BOS (when the vocabulary has one);
// invalid UTF-8 is an error naming the byte offset.
Result<std::vector<int32_t>> tokenize_file(const tokenizer::Tokenizer& tok, const std::string& path);

struct PerplexityOptions {
  int64_t n_ctx = 512;     // window length in tokens
  int64_t stride = 0;      // 0 or n_ctx: non-overlapping windows scoring their second half
  DType kv_type = DType::kF32;
};

struct PerplexityResult {
  double ppl = 0, ppl_stderr = 0;
  double mean_nll = 0;       // nats per scored token
  int64_t n_tokens = 0;      // tokens in the stream
  int64_t n_windows = 0;
  int64_t n_scored = 0;      // tokens whose NLL was summed
};

// Called after each window with (windows done, windows in all, running ppl).
using PerplexityCallback = std::function<void(int64_t done, int64_t total, double ppl)>;

// tokens: the whole stream (as tokenize_file gives it); bos replaces each
// window's first token (< 0: keep it). Needs at least 2 * n_ctx tokens.
Result<PerplexityResult> perplexity(const model::Model& m, const std::vector<int32_t>& tokens, int32_t bos,
                                    const PerplexityOptions& opt, const PerplexityCallback& cb = {});

struct HellaswagTask {
  std::string context;
  int gold = 0;  // 0..3
  std::array<std::string, 4> endings;
};

// Parses the 6-lines-per-task text; an error names the line and what is wrong.
// max_tasks > 0 stops after that many tasks.
Result<std::vector<HellaswagTask>> parse_hellaswag(std::string_view text, int64_t max_tasks = 0);

struct HellaswagResult {
  int64_t n_tasks = 0, n_correct = 0;
  double acc_norm = 0;  // percent
  // Per task, per ending: the mean log-probability of the ending's tokens.
  std::vector<std::array<double, 4>> scores;
};

// Called after each task with (tasks done, tasks in all, running acc_norm in percent).
using HellaswagCallback = std::function<void(int64_t done, int64_t total, double acc_norm)>;

Result<HellaswagResult> hellaswag(const model::Model& m, const tokenizer::Tokenizer& tok,
                                  const std::vector<HellaswagTask>& tasks, DType kv_type = DType::kF32,
                                  const HellaswagCallback& cb = {});

}  // namespace slm::compress
