// Byte-level BPE training (include/slm/tokenizer/bpe_trainer.h).
#include "slm/tokenizer/bpe_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "slm/tokenizer/byte_level.h"
#include "pipeline.h"
#include "regex.h"
#include "slm/core/mapped_file.h"
#include "utf8.h"

namespace slm::tokenizer {

namespace {

constexpr const char* kOp = "[train_bpe]";

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using CountMap = std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>;

// A printable ASCII byte: neither whitespace (for any Unicode definition) nor
// part of a multi-byte character, so a pre-token boundary can follow it.
bool printable_ascii(char c) { return c >= 0x21 && c <= 0x7E; }

// Pre-tokenizes text and counts the pre-tokens. Holds the special tokens and
// the compiled split regex; one per training run.
class PreTokenCounter {
 public:
  PreTokenCounter(Regex re, std::vector<std::string> specials) : re_(std::move(re)), specials_(std::move(specials)) {
    for (const std::string& s : specials_) max_special_len_ = std::max(max_special_len_, s.size());
  }

  // Calls on_text(begin, end) for each stretch between special tokens and
  // on_special(begin, end) for each special token, left to right. At each
  // position the longest special token that starts there wins.
  template <typename TextFn, typename SpecialFn>
  void split_specials(std::string_view s, TextFn on_text, SpecialFn on_special) const {
    std::vector<size_t> next(specials_.size());
    for (size_t i = 0; i < specials_.size(); ++i) next[i] = s.find(specials_[i]);
    size_t pos = 0;
    while (true) {
      size_t best = std::string_view::npos, best_len = 0;
      for (size_t i = 0; i < specials_.size(); ++i) {
        if (next[i] != std::string_view::npos && next[i] < pos) next[i] = s.find(specials_[i], pos);
        if (next[i] < best || (next[i] == best && specials_[i].size() > best_len)) {
          best = next[i];
          best_len = specials_[i].size();
        }
      }
      if (best == std::string_view::npos) {
        on_text(pos, s.size());
        return;
      }
      on_text(pos, best);
      on_special(best, best + best_len);
      pos = best + best_len;
    }
  }

  void count_text(std::string_view s) {
    split_specials(
        s, [&](size_t b, size_t e) { count_piece(s.substr(b, e - b)); }, [](size_t, size_t) {});
  }

  // Where a buffer that continues past its end may be cut without changing the
  // counts (see the header), or 0 if nowhere.
  size_t find_cut(std::string_view buf) const {
    if (buf.size() < 2) return 0;
    // A special token starting at or after `limit` may be cut off by the end.
    size_t limit = max_special_len_ == 0 ? buf.size() : buf.size() + 1 - std::min(buf.size() + 1, max_special_len_);
    size_t tail = 0, last_special = 0;
    split_specials(
        buf, [](size_t, size_t) {},
        [&](size_t b, size_t e) {
          tail = e;
          if (b > 0 && b <= limit) last_special = b;
        });
    for (char sep : {'\n', '\r', ' '}) {
      size_t p = std::min(limit, buf.size() - 1);
      while (true) {
        p = buf.rfind(sep, p);
        if (p == std::string_view::npos || p <= tail || p == 0) break;
        if (printable_ascii(buf[p - 1])) return p;
        --p;
      }
    }
    return last_special;
  }

  CountMap& counts() { return counts_; }

 private:
  void add(std::string_view piece) {
    if (piece.empty()) return;
    auto it = counts_.find(piece);
    if (it == counts_.end()) {
      counts_.emplace(std::string(piece), 1);
    } else {
      ++it->second;
    }
  }

  // Text without special tokens: valid UTF-8 runs go through the regex (text
  // between matches counts too), each run of invalid bytes is one pre-token.
  void count_piece(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      std::string_view rest = s.substr(i);
      size_t valid = utf8_first_invalid(rest).value_or(rest.size());
      std::string_view text = rest.substr(0, valid);
      size_t last = 0;
      for (auto [b, e] : re_.find_all(text)) {
        add(text.substr(last, b - last));
        add(text.substr(b, e - b));
        last = e;
      }
      add(text.substr(last));
      size_t j = i + valid;
      size_t k = j;
      while (k < s.size() && utf8_valid_len(s, k) == 0) ++k;
      add(s.substr(j, k - j));
      i = k;
    }
  }

  Regex re_;
  std::vector<std::string> specials_;
  size_t max_special_len_ = 0;
  CountMap counts_;
};

// Reads `in` to its end in chunks, counting pre-tokens.
Status count_stream(std::istream& in, const std::string& what, const BpeTrainOptions& opts, PreTokenCounter* counter,
                    int64_t* bytes_done, int64_t bytes_total) {
  const size_t chunk = std::max<size_t>(opts.chunk_bytes, 1);
  std::string buf;
  std::string block(chunk, '\0');
  size_t try_cut_at = 0;  // after a failed search, wait until buf doubles (linear time on long lines)
  while (true) {
    in.read(block.data(), static_cast<std::streamsize>(chunk));
    size_t n = static_cast<size_t>(in.gcount());
    if (in.bad()) return Status::IoError(fmt::format("{} read error in {} after {} bytes", kOp, what, *bytes_done));
    buf.append(block.data(), n);
    *bytes_done += static_cast<int64_t>(n);
    if (opts.progress) opts.progress("read", *bytes_done, bytes_total);
    if (n < chunk) {  // end of input
      counter->count_text(buf);
      return Status::Ok();
    }
    if (buf.size() < try_cut_at) continue;
    size_t cut = counter->find_cut(buf);
    if (cut == 0) {  // no safe place yet: read more
      try_cut_at = 2 * buf.size();
      continue;
    }
    try_cut_at = 0;
    counter->count_text(std::string_view(buf).substr(0, cut));
    buf.erase(0, cut);
  }
}

Status check_options(const BpeTrainOptions& opts) {
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < opts.special_tokens.size(); ++i) {
    const std::string& s = opts.special_tokens[i];
    if (s.empty()) return Status::InvalidArgument(fmt::format("{} special token {} is empty", kOp, i));
    if (auto bad = utf8_first_invalid(s)) {
      return Status::InvalidArgument(fmt::format("{} special token {} is not valid UTF-8 (byte {})", kOp, i, *bad));
    }
    if (!seen.insert(s).second) return Status::InvalidArgument(fmt::format("{} special token '{}' is given twice", kOp, s));
  }
  int64_t min_vocab = 256 + static_cast<int64_t>(opts.special_tokens.size());
  if (opts.vocab_size < min_vocab) {
    return Status::InvalidArgument(fmt::format(
        "{} vocab_size {} is too small: need at least {} (256 bytes + {} special tokens)", kOp, opts.vocab_size,
        min_vocab, opts.special_tokens.size()));
  }
  return Status::Ok();
}

Result<PreTokenCounter> make_counter(const BpeTrainOptions& opts) {
  SLM_RETURN_IF_ERROR(check_options(opts));
  auto re = Regex::compile(opts.split_pattern.empty() ? std::string(kGpt2Pattern) : opts.split_pattern);
  if (!re.ok()) return re.status().with_context(std::string(kOp) + " split_pattern");
  return PreTokenCounter(std::move(re).value(), opts.special_tokens);
}

// Merges, from pre-token counts. Pair counts are kept up to date incrementally:
// a merge touches only the words that contain its pair (found through an index
// pair -> words), and the best pair comes from a max-heap whose stale entries
// (count no longer current) are skipped when popped.
class MergeLearner {
 public:
  MergeLearner(const BpeTrainOptions& opts, const CountMap& counts) : opts_(opts) {
    for (const std::string& s : opts.special_tokens) vocab_.push_back(s);
    std::vector<int> order(256);
    for (int b = 0; b < 256; ++b) order[b] = b;
    std::sort(order.begin(), order.end(), [](int x, int y) {
      return byte_to_unicode(static_cast<uint8_t>(x)) < byte_to_unicode(static_cast<uint8_t>(y));
    });
    for (int b : order) {
      byte_id_[b] = static_cast<int32_t>(vocab_.size());
      index_.emplace(std::string(1, static_cast<char>(b)), byte_id_[b]);
      vocab_.push_back(std::string(1, static_cast<char>(b)));
    }
    for (const auto& [piece, count] : counts) {
      if (piece.size() < 2) continue;  // no pair inside
      Word w;
      w.count = count;
      w.ids.reserve(piece.size());
      for (char c : piece) w.ids.push_back(byte_id_[static_cast<uint8_t>(c)]);
      words_.push_back(std::move(w));
    }
    // The order of words_ (the hash map's) cannot change the result: counts are
    // sums and ties are broken by bytes, never by position.
    for (size_t w = 0; w < words_.size(); ++w) {
      const auto& ids = words_[w].ids;
      for (size_t i = 0; i + 1 < ids.size(); ++i) {
        uint64_t k = key(ids[i], ids[i + 1]);
        pair_count_[k] += words_[w].count;
        auto& list = where_[k];
        if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
      }
    }
    for (const auto& [k, c] : pair_count_) heap_.push_back({c, first(k), second(k)});
    std::make_heap(heap_.begin(), heap_.end(), Less{this});
    stamp_.assign(words_.size(), -1);
  }

  void run(BpeModel* out) {
    const int64_t target = opts_.vocab_size - static_cast<int64_t>(vocab_.size());
    const int64_t start_size = static_cast<int64_t>(vocab_.size());
    std::unordered_map<uint64_t, int64_t> delta;
    std::vector<int32_t> merged_ids;
    while (static_cast<int64_t>(vocab_.size()) < opts_.vocab_size) {
      Entry top{};
      bool found = false;
      while (!heap_.empty()) {
        std::pop_heap(heap_.begin(), heap_.end(), Less{this});
        top = heap_.back();
        heap_.pop_back();
        auto it = pair_count_.find(key(top.a, top.b));
        if (it != pair_count_.end() && it->second == top.count) {
          found = true;
          break;
        }
      }
      if (!found) break;  // no pair left: the corpus cannot fill the vocabulary
      const int32_t a = top.a, b = top.b;
      const uint64_t ab = key(a, b);
      std::string bytes = vocab_[a] + vocab_[b];
      int32_t c;
      if (auto it = index_.find(bytes); it != index_.end()) {
        c = it->second;
      } else {
        c = static_cast<int32_t>(vocab_.size());
        index_.emplace(bytes, c);
        vocab_.push_back(std::move(bytes));
      }
      out->merges.emplace_back(vocab_[a], vocab_[b]);
      const int32_t merge_no = static_cast<int32_t>(out->merges.size());

      std::vector<int32_t> ws;
      if (auto it = where_.find(ab); it != where_.end()) {
        ws = std::move(it->second);
        where_.erase(it);
      }
      delta.clear();
      for (int32_t w : ws) {
        if (stamp_[w] == merge_no) continue;
        stamp_[w] = merge_no;
        std::vector<int32_t>& ids = words_[w].ids;
        merged_ids.clear();
        for (size_t i = 0; i < ids.size();) {
          if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
            merged_ids.push_back(c);
            i += 2;
          } else {
            merged_ids.push_back(ids[i]);
            i += 1;
          }
        }
        if (merged_ids.size() == ids.size()) continue;  // stale index entry
        const int64_t n = words_[w].count;
        for (size_t i = 0; i + 1 < ids.size(); ++i) delta[key(ids[i], ids[i + 1])] -= n;
        for (size_t i = 0; i + 1 < merged_ids.size(); ++i) {
          uint64_t k = key(merged_ids[i], merged_ids[i + 1]);
          delta[k] += n;
          if (merged_ids[i] == c || merged_ids[i + 1] == c) where_[k].push_back(w);
        }
        ids.swap(merged_ids);
      }
      for (const auto& [k, d] : delta) {
        if (d == 0) continue;
        auto it = pair_count_.find(k);
        int64_t now = (it == pair_count_.end() ? 0 : it->second) + d;
        if (now <= 0) {
          if (it != pair_count_.end()) pair_count_.erase(it);
          continue;
        }
        if (it == pair_count_.end()) {
          pair_count_.emplace(k, now);
        } else {
          it->second = now;
        }
        heap_.push_back({now, first(k), second(k)});
        std::push_heap(heap_.begin(), heap_.end(), Less{this});
      }
      pair_count_.erase(ab);
      if (opts_.progress) opts_.progress("merge", static_cast<int64_t>(vocab_.size()) - start_size, target);
    }
    if (opts_.progress) {
      int64_t done = static_cast<int64_t>(vocab_.size()) - start_size;
      opts_.progress("merge", done, done);
    }
    out->vocab = std::move(vocab_);
  }

 private:
  struct Word {
    std::vector<int32_t> ids;
    int64_t count = 0;
  };
  struct Entry {
    int64_t count;
    int32_t a, b;
  };
  // Heap order: count, then the left token's bytes, then the right one's.
  struct Less {
    const MergeLearner* self;
    bool operator()(const Entry& x, const Entry& y) const {
      if (x.count != y.count) return x.count < y.count;
      const auto& v = self->vocab_;
      if (x.a != y.a) {
        int c = v[x.a].compare(v[y.a]);
        if (c != 0) return c < 0;
      }
      return v[x.b].compare(v[y.b]) < 0;
    }
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  static int32_t first(uint64_t k) { return static_cast<int32_t>(k >> 32); }
  static int32_t second(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

  const BpeTrainOptions& opts_;
  std::vector<std::string> vocab_;  // id -> bytes
  std::unordered_map<std::string, int32_t> index_;
  int32_t byte_id_[256];
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> pair_count_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;  // pair -> words that had it (may be stale)
  std::vector<Entry> heap_;
  std::vector<int32_t> stamp_;  // last merge that visited each word
};

Result<BpeModel> finish(const BpeTrainOptions& opts, PreTokenCounter* counter, int64_t bytes_read) {
  if (opts.progress) opts.progress("read", bytes_read, bytes_read);
  if (counter->counts().empty()) {
    return Status::InvalidArgument(
        fmt::format("{} the corpus has no text outside special tokens ({} bytes read)", kOp, bytes_read));
  }
  BpeModel model;
  model.special_tokens = opts.special_tokens;
  model.split_pattern = opts.split_pattern;
  MergeLearner learner(opts, counter->counts());
  counter->counts().clear();
  learner.run(&model);
  return model;
}

}  // namespace

Result<BpeModel> train_bpe(std::istream& in, const BpeTrainOptions& opts) {
  SLM_ASSIGN_OR_RETURN(PreTokenCounter counter, make_counter(opts));
  int64_t done = 0;
  SLM_RETURN_IF_ERROR(count_stream(in, "the input stream", opts, &counter, &done, -1));
  return finish(opts, &counter, done);
}

Result<BpeModel> train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& opts) {
  SLM_ASSIGN_OR_RETURN(PreTokenCounter counter, make_counter(opts));
  if (files.empty()) return Status::InvalidArgument(fmt::format("{} no input files", kOp));
  int64_t total = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    auto st = std::filesystem::status(f, ec);
    if (st.type() == std::filesystem::file_type::not_found) {
      return Status::NotFound(fmt::format("{} cannot open '{}': no such file", kOp, f));
    }
    if (ec) return Status::IoError(fmt::format("{} cannot open '{}': {}", kOp, f, ec.message()));
    if (std::filesystem::is_directory(st)) {
      return Status::InvalidArgument(fmt::format("{} '{}' is a directory, not a text file", kOp, f));
    }
    auto size = std::filesystem::file_size(f, ec);
    if (!ec) total += static_cast<int64_t>(size);
  }
  int64_t done = 0;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return Status::IoError(fmt::format("{} cannot open '{}': {}", kOp, f, std::strerror(errno)));
    SLM_RETURN_IF_ERROR(count_stream(in, "'" + f + "'", opts, &counter, &done, total));
  }
  return finish(opts, &counter, done);
}

Result<std::string> hf_tokenizer_json(const BpeModel& model) {
  using ojson = nlohmann::ordered_json;
  const size_t n_special = model.special_tokens.size();
  if (model.vocab.size() < 256 + n_special) {
    return Status::InvalidArgument(fmt::format("[write_hf_tokenizer_json] vocab has {} tokens, fewer than 256 bytes + {} special tokens",
                                               model.vocab.size(), n_special));
  }
  for (size_t i = 0; i < n_special; ++i) {
    if (model.vocab[i] != model.special_tokens[i]) {
      return Status::InvalidArgument(
          fmt::format("[write_hf_tokenizer_json] vocab[{}] is not special token '{}'", i, model.special_tokens[i]));
    }
    if (utf8_first_invalid(model.special_tokens[i])) {
      return Status::InvalidArgument(fmt::format("[write_hf_tokenizer_json] special token {} is not valid UTF-8", i));
    }
  }
  // In id order. ordered_json's own insert searches linearly for the key, so
  // append to its underlying vector (keys are checked unique just below).
  ojson::object_t vocab_map;
  auto& vocab_items = static_cast<std::vector<std::pair<const std::string, ojson>>&>(vocab_map);
  vocab_items.reserve(model.vocab.size());
  std::unordered_set<std::string> text_of_tokens;
  for (size_t i = 0; i < model.vocab.size(); ++i) {
    std::string text = i < n_special ? model.vocab[i] : byte_level_encode(model.vocab[i]);
    if (!text_of_tokens.insert(text).second) {
      return Status::InvalidArgument(
          fmt::format("[write_hf_tokenizer_json] token {} ('{}') appears twice in the vocabulary", i, text));
    }
    vocab_items.emplace_back(std::move(text), ojson(static_cast<int64_t>(i)));
  }
  ojson merges = ojson::array();
  for (size_t i = 0; i < model.merges.size(); ++i) {
    std::string a = byte_level_encode(model.merges[i].first), b = byte_level_encode(model.merges[i].second);
    if (!text_of_tokens.count(a) || !text_of_tokens.count(b) || !text_of_tokens.count(a + b)) {
      return Status::InvalidArgument(
          fmt::format("[write_hf_tokenizer_json] merge {} ('{}', '{}') names a token not in the vocabulary", i, a, b));
    }
    merges.push_back(a + " " + b);  // byte-level tokens hold no ' ' (it is U+0120)
  }
  ojson added = ojson::array();
  for (size_t i = 0; i < n_special; ++i) {
    added.push_back({{"id", static_cast<int64_t>(i)},
                     {"content", model.special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  auto byte_level = [](bool use_regex) {
    return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  };
  ojson pre;
  if (model.split_pattern.empty()) {
    pre = byte_level(true);  // HF's ByteLevel regex is GPT-2's pattern
  } else {
    pre = ojson{{"type", "Sequence"},
                {"pretokenizers",
                 ojson::array({ojson{{"type", "Split"},
                                     {"pattern", {{"Regex", model.split_pattern}}},
                                     {"behavior", "Isolated"},
                                     {"invert", false}},
                               byte_level(false)})}};
  }
  ojson root = ojson::object();
  root["version"] = "1.0";
  root["truncation"] = nullptr;
  root["padding"] = nullptr;
  root["added_tokens"] = std::move(added);
  root["normalizer"] = nullptr;
  root["pre_tokenizer"] = std::move(pre);
  root["post_processor"] = byte_level(true);
  root["decoder"] = byte_level(true);
  root["model"] = ojson{{"type", "BPE"},
                        {"dropout", nullptr},
                        {"unk_token", nullptr},
                        {"continuing_subword_prefix", nullptr},
                        {"end_of_word_suffix", nullptr},
                        {"fuse_unk", false},
                        {"byte_fallback", false},
                        {"ignore_merges", false},
                        {"vocab", ojson(std::move(vocab_map))},
                        {"merges", std::move(merges)}};
  try {
    return root.dump(2) + "\n";
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("[write_hf_tokenizer_json] cannot serialize: ") + e.what());
  }
}

Status write_hf_tokenizer_json(const BpeModel& model, const std::string& path) {
  SLM_ASSIGN_OR_RETURN(std::string text, hf_tokenizer_json(model));
  return write_file_atomic(path, text.data(), text.size()).with_context("[write_hf_tokenizer_json] " + path);
}

}  // namespace slm::tokenizer
