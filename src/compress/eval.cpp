#include "slm/compress/eval.h"

#include <bzlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "slm/model/kv_cache.h"

namespace slm::compress {

namespace {

Result<std::string> bunzip2(const std::string& in, const std::string& path) {
  std::string out;
  out.resize(std::max<size_t>(in.size() * 4, 1 << 16));
  size_t in_pos = 0, out_pos = 0;
  // A file may hold several concatenated streams (pbzip2, cat a.bz2 b.bz2).
  while (in_pos < in.size()) {
    bz_stream s{};
    if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) return Status::Internal("[bzip2] cannot start the decompressor");
    std::unique_ptr<bz_stream, int (*)(bz_stream*)> guard(&s, BZ2_bzDecompressEnd);
    const size_t stream_start = in_pos;
    int rc = BZ_OK;
    while (rc != BZ_STREAM_END) {
      if (out_pos == out.size()) out.resize(out.size() * 2);
      s.next_in = const_cast<char*>(in.data() + in_pos);
      s.avail_in = static_cast<unsigned>(std::min<size_t>(in.size() - in_pos, 1u << 30));
      s.next_out = out.data() + out_pos;
      s.avail_out = static_cast<unsigned>(std::min<size_t>(out.size() - out_pos, 1u << 30));
      const unsigned in_before = s.avail_in, out_before = s.avail_out;
      rc = BZ2_bzDecompress(&s);
      in_pos += in_before - s.avail_in;
      out_pos += out_before - s.avail_out;
      if (rc != BZ_OK && rc != BZ_STREAM_END)
        return Status::Corruption(fmt::format("{}: corrupt bzip2 data (error {}) in the stream starting at byte {}",
                                              path, rc, stream_start));
      if (rc == BZ_OK && in_pos == in.size() && s.avail_out > 0)
        return Status::Corruption(fmt::format("{}: bzip2 data ends early (truncated file, {} bytes)", path, in.size()));
    }
    // Trailing bytes that are not another stream: stop (bzip2 itself warns and ignores them).
    if (in.compare(in_pos, 3, "BZh") != 0) break;
  }
  out.resize(out_pos);
  return out;
}

double log_sum_exp(const float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i] - mx));
  return std::log(s) + mx;
}

}  // namespace

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound(fmt::format("{}: cannot open the file (missing or unreadable)", path));
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IoError(fmt::format("{}: read error", path));
  std::string data = ss.str();
  if (data.size() >= 3 && data.compare(0, 3, "BZh") == 0) {
    SLM_ASSIGN_OR_RETURN(data, bunzip2(data, path));
  }
  if (data.empty()) return Status::InvalidArgument(fmt::format("{}: the file is empty", path));
  return data;
}

Result<std::vector<int32_t>> tokenize_file(const tokenizer::Tokenizer& tok, const std::string& path) {
  SLM_ASSIGN_OR_RETURN(std::string text, read_text_file(path));
  auto ids = tok.encode(text, true);
  if (!ids.ok()) return ids.status().with_context(path);
  return ids;
}

Result<PerplexityResult> perplexity(const model::Model& m, const std::vector<int32_t>& tokens, int32_t bos,
                                    const PerplexityOptions& opt, const PerplexityCallback& cb) {
  const int64_t n_ctx = opt.n_ctx;
  const int64_t stride = opt.stride > 0 ? opt.stride : n_ctx;
  const auto n_tok = static_cast<int64_t>(tokens.size());
  if (n_ctx < 4) return Status::InvalidArgument(fmt::format("[perplexity] context {} is too small (at least 4)", n_ctx));
  if (stride > n_ctx)
    return Status::InvalidArgument(fmt::format("[perplexity] stride {} is larger than the context {}", stride, n_ctx));
  if (n_tok < 2 * n_ctx)
    return Status::InvalidArgument(fmt::format(
        "[perplexity] the text has {} tokens, but a context of {} needs at least {} (2 x ctx): use a longer text or "
        "a smaller --ctx", n_tok, n_ctx, 2 * n_ctx));
  const int64_t n_vocab = m.config().n_vocab;
  for (int64_t i = 0; i < n_tok; ++i)
    if (tokens[static_cast<size_t>(i)] < 0 || tokens[static_cast<size_t>(i)] >= n_vocab)
      return Status::InvalidArgument(fmt::format("[perplexity] token {} at {} is outside the vocabulary of {}",
                                                 tokens[static_cast<size_t>(i)], i, n_vocab));

  // Which positions of a window predict a scored token: [first, n_ctx - 1).
  const bool strided = stride < n_ctx;
  const int64_t first = strided ? n_ctx - stride - 1 : n_ctx / 2;
  const int64_t n_windows = strided ? (n_tok - n_ctx + stride - 1) / stride : n_tok / n_ctx;

  SLM_ASSIGN_OR_RETURN(auto kv, model::KvCache::create(m.config(), 0, m.config().n_layer, 1, n_ctx, opt.kv_type));
  PerplexityResult r;
  r.n_tokens = n_tok;
  r.n_windows = n_windows;
  double nll = 0, nll2 = 0;
  std::vector<model::BatchToken> batch(static_cast<size_t>(n_ctx));
  std::vector<float> logits;
  for (int64_t w = 0; w < n_windows; ++w) {
    const int64_t start = w * stride;
    for (int64_t j = 0; j < n_ctx; ++j) {
      model::BatchToken& b = batch[static_cast<size_t>(j)];
      b.token = (j == 0 && bos >= 0) ? bos : tokens[static_cast<size_t>(start + j)];
      b.pos = j;
      b.seq = 0;
      b.logits = j >= first && j < n_ctx - 1;
    }
    kv->set_length(0, 0);
    SLM_RETURN_IF_ERROR(m.forward(batch, *kv, &logits).with_context(fmt::format("[perplexity] window {}", w)));
    for (int64_t j = first; j < n_ctx - 1; ++j) {
      const float* row = logits.data() + static_cast<size_t>((j - first) * n_vocab);
      const int32_t target = tokens[static_cast<size_t>(start + j + 1)];
      const double v = log_sum_exp(row, n_vocab) - row[target];
      nll += v;
      nll2 += v * v;
      ++r.n_scored;
    }
    if (cb) cb(w + 1, n_windows, std::exp(nll / static_cast<double>(r.n_scored)));
  }
  const auto n = static_cast<double>(r.n_scored);
  r.mean_nll = nll / n;
  r.ppl = std::exp(r.mean_nll);
  const double var = nll2 / n - r.mean_nll * r.mean_nll;
  r.ppl_stderr = (var > 0 && n > 1) ? r.ppl * std::sqrt(var / (n - 1)) : 0;
  return r;
}

Result<std::vector<HellaswagTask>> parse_hellaswag(std::string_view text, int64_t max_tasks) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    pos = end + 1;
  }
  if (lines.empty()) return Status::InvalidArgument("[hellaswag] no tasks: the text is empty");
  if (lines.size() % 6 != 0)
    return Status::InvalidArgument(fmt::format(
        "[hellaswag] {} lines is not a multiple of 6 (context, label, 4 endings per task): task {} is cut short",
        lines.size(), lines.size() / 6 + 1));
  std::vector<HellaswagTask> tasks;
  for (size_t t = 0; t < lines.size() / 6; ++t) {
    if (max_tasks > 0 && static_cast<int64_t>(tasks.size()) >= max_tasks) break;
    const size_t l0 = t * 6;
    HellaswagTask task;
    task.context = std::string(lines[l0]);
    const std::string_view label = lines[l0 + 1];
    if (label.size() != 1 || label[0] < '0' || label[0] > '3')
      return Status::InvalidArgument(fmt::format("[hellaswag] line {} (task {}): gold label '{}' is not 0, 1, 2 or 3",
                                                 l0 + 2, t + 1, std::string(label.substr(0, 40))));
    task.gold = label[0] - '0';
    for (size_t e = 0; e < 4; ++e) {
      if (lines[l0 + 2 + e].empty())
        return Status::InvalidArgument(fmt::format("[hellaswag] line {} (task {}): ending {} is empty", l0 + 3 + e,
                                                   t + 1, e));
      task.endings[e] = std::string(lines[l0 + 2 + e]);
    }
    tasks.push_back(std::move(task));
  }
  return tasks;
}

Result<HellaswagResult> hellaswag(const model::Model& m, const tokenizer::Tokenizer& tok,
                                  const std::vector<HellaswagTask>& tasks, DType kv_type, const HellaswagCallback& cb) {
  if (tasks.empty()) return Status::InvalidArgument("[hellaswag] no tasks to score");
  const int64_t n_vocab = m.config().n_vocab;
  // Tokenize everything first: the KV cache is sized to the longest ending.
  std::vector<std::array<std::vector<int32_t>, 4>> seqs(tasks.size());
  int64_t max_len = 0;
  for (size_t t = 0; t < tasks.size(); ++t) {
    for (size_t e = 0; e < 4; ++e) {
      // As llama.cpp: the ending follows the context after one space.
      auto ids = tok.encode(tasks[t].context + " " + tasks[t].endings[e], true);
      if (!ids.ok()) return ids.status().with_context(fmt::format("[hellaswag] task {} ending {}", t + 1, e));
      if (ids->size() < 2)
        return Status::InvalidArgument(fmt::format("[hellaswag] task {} ending {}: fewer than 2 tokens", t + 1, e));
      for (int32_t id : *ids)
        if (id >= n_vocab)
          return Status::InvalidArgument(fmt::format("[hellaswag] token {} is outside the model's vocabulary of {}",
                                                     id, n_vocab));
      max_len = std::max<int64_t>(max_len, static_cast<int64_t>(ids->size()));
      seqs[t][e] = std::move(ids).value();
    }
  }
  SLM_ASSIGN_OR_RETURN(auto kv, model::KvCache::create(m.config(), 0, m.config().n_layer, 4, max_len, kv_type));
  HellaswagResult r;
  std::vector<model::BatchToken> batch;
  std::vector<float> logits;
  for (size_t t = 0; t < tasks.size(); ++t) {
    const auto& s = seqs[t];
    // The shared prefix is the context; the rest of each sequence is the ending.
    size_t prefix = s[0].size();
    for (size_t e = 1; e < 4; ++e) {
      size_t k = 0;
      while (k < prefix && k < s[e].size() && s[e][k] == s[0][k]) ++k;
      prefix = k;
    }
    for (size_t e = 0; e < 4; ++e) prefix = std::min(prefix, s[e].size() - 1);  // at least one ending token each
    prefix = std::max<size_t>(prefix, 1);
    batch.clear();
    for (size_t e = 0; e < 4; ++e) {
      for (size_t j = 0; j < s[e].size(); ++j)
        batch.push_back({s[e][j], static_cast<int64_t>(j), static_cast<int32_t>(e), j + 1 >= prefix && j + 1 < s[e].size()});
      kv->set_length(static_cast<int32_t>(e), 0);
    }
    SLM_RETURN_IF_ERROR(m.forward(batch, *kv, &logits).with_context(fmt::format("[hellaswag] task {}", t + 1)));
    size_t row = 0;
    int best = 0;
    double best_score = -1e300;
    std::array<double, 4>& scores = r.scores.emplace_back();
    for (size_t e = 0; e < 4; ++e) {
      double sum = 0;
      for (size_t j = prefix; j < s[e].size(); ++j, ++row) {
        const float* l = logits.data() + row * static_cast<size_t>(n_vocab);
        sum += static_cast<double>(l[s[e][j]]) - log_sum_exp(l, n_vocab);
      }
      const double score = sum / static_cast<double>(s[e].size() - prefix);
      scores[e] = score;
      if (score > best_score) {
        best_score = score;
        best = static_cast<int>(e);
      }
    }
    ++r.n_tasks;
    if (best == tasks[t].gold) ++r.n_correct;
    r.acc_norm = 100.0 * static_cast<double>(r.n_correct) / static_cast<double>(r.n_tasks);
    if (cb) cb(r.n_tasks, static_cast<int64_t>(tasks.size()), r.acc_norm);
  }
  return r;
}

}  // namespace slm::compress
