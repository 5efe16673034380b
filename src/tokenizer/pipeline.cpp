#include "pipeline.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "slm/tokenizer/byte_level.h"
#include "slm/core/assert.h"
#include "unicode.h"
#include "utf8.h"

namespace slm::tokenizer {

const char* const kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

namespace {

const Regex& static_regex(const char* pattern) {
  // Only called with the constant patterns below; compile failure is our bug.
  auto r = Regex::compile(pattern);
  SLM_ASSERT(r.ok());
  return *new Regex(std::move(r).value());  // lives for the process
}

struct Seg {
  size_t b, e;
  bool match;
};

}  // namespace

bool PipelineTokenizer::add_merge(const std::string& a, const std::string& b, int32_t rank) {
  int32_t ia = token_to_id(a), ib = token_to_id(b), im = token_to_id(a + b);
  if (ia < 0 || ib < 0 || im < 0) return false;
  merges_.emplace(pair_key(ia, ib), std::make_pair(rank, im));  // first (lowest) rank wins
  return true;
}

Status PipelineTokenizer::finish() {
  SLM_RETURN_IF_ERROR(finish_vocab());
  int32_t n = n_vocab();
  const std::pair<const char*, int32_t> ids[] = {{"bos", bos_}, {"eos", eos_}, {"unk", unk_}, {"pad", pad_},
                                                 {"sep", sep_}, {"cls", cls_}, {"mask", mask_}};
  for (auto [name, id] : ids) {
    if (id < -1 || id >= n) {
      return Status::Corruption(fmt::format("[tokenizer] {} token id {} out of range [0, {})", name, id, n));
    }
  }
  for (int32_t id : prefix_ids_) {
    if (!is_valid(id)) return Status::Corruption(fmt::format("[tokenizer] post-processor token id {} out of range", id));
  }
  for (int32_t id : suffix_ids_) {
    if (!is_valid(id)) return Status::Corruption(fmt::format("[tokenizer] post-processor token id {} out of range", id));
  }
  if (scores_.size() != tokens_.size()) scores_.resize(tokens_.size(), 0.0f);
  max_piece_len_ = 0;
  bool any = false;
  min_score_ = 0;
  for (size_t i = 0; i < tokens_.size(); ++i) {
    max_piece_len_ = std::max(max_piece_len_, tokens_[i].size() + 8);
    if (attrs_[i] == TokenAttr::kNormal || attrs_[i] == TokenAttr::kUserDefined) {
      if (!std::isfinite(scores_[i])) {
        return Status::Corruption(fmt::format("[tokenizer] score of token {} is not finite", i));
      }
      if (!any || scores_[i] < min_score_) min_score_ = scores_[i];
      any = true;
    }
  }
  return Status::Ok();
}

std::string PipelineTokenizer::normalize(std::string_view text, const Fragment& frag) const {
  std::string s(text);
  for (const NormalizerStep& st : normalizers_) {
    switch (st.kind) {
      case NormalizerStep::Kind::kPrepend:
        if (!s.empty()) s = st.str + s;
        break;
      case NormalizerStep::Kind::kReplace:
        s = st.regex->replace_all(s, [&](std::string_view) { return st.str; });
        break;
      case NormalizerStep::Kind::kLowercase:
        s = to_lower(s);
        break;
      case NormalizerStep::Kind::kNfd:
        s = nfd(s);
        break;
      case NormalizerStep::Kind::kNfc:
        s = nfc(s);
        break;
      case NormalizerStep::Kind::kStripAccents:
        s = strip_marks(s);
        break;
      case NormalizerStep::Kind::kStrip: {
        static const Regex& lead = static_regex("^\\s+");
        static const Regex& trail = static_regex("\\s+$");
        auto none = [](std::string_view) { return std::string(); };
        if (st.left) s = lead.replace_all(s, none);
        if (st.right) s = trail.replace_all(s, none);
        break;
      }
      case NormalizerStep::Kind::kBert: {
        if (st.clean_text) {
          static const Regex& remove = static_regex("[\\x{0}\\x{FFFD}]|[^\\P{C}\\t\\n\\r]");
          static const Regex& space = static_regex("\\s");
          s = remove.replace_all(s, [](std::string_view) { return std::string(); });
          s = space.replace_all(s, [](std::string_view) { return std::string(" "); });
        }
        if (st.chinese_chars) {
          std::string o;
          size_t i = 0;
          while (i < s.size()) {
            size_t b = i;
            uint32_t cp = utf8_next(s, &i);
            if (is_cjk_ideograph(cp)) {
              o += ' ';
              o.append(s, b, i - b);
              o += ' ';
            } else {
              o.append(s, b, i - b);
            }
          }
          s = std::move(o);
        }
        if (st.strip_accents) s = strip_marks(nfd(s));
        if (st.lowercase) s = to_lower(s);
        break;
      }
      case NormalizerStep::Kind::kSpmWhitespace: {
        if (st.remove_extra_whitespaces) {
          std::string o;
          bool pending_space = false;
          for (char c : s) {
            if (c == ' ') {
              pending_space = !o.empty();
              continue;
            }
            if (pending_space) o += ' ';
            pending_space = false;
            o += c;
          }
          s = std::move(o);
        }
        if (s.empty()) break;
        if (st.add_dummy_prefix) s = " " + s;
        if (st.escape_whitespaces && st.space_symbol != " ") {
          std::string o;
          o.reserve(s.size() * 2);
          for (char c : s) {
            if (c == ' ') {
              o += st.space_symbol;
            } else {
              o += c;
            }
          }
          s = std::move(o);
        }
        break;
      }
    }
  }
  return s;
}

namespace {

void split_piece(const std::string& text, size_t offset, const std::vector<std::pair<size_t, size_t>>& matches,
                 SplitBehavior beh, bool invert, std::vector<std::pair<std::string, size_t>>* out) {
  std::vector<Seg> segs;
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (b > last) segs.push_back({last, b, false});
    segs.push_back({b, e, true});
    last = e;
  }
  if (last < text.size()) segs.push_back({last, text.size(), false});
  if (invert) {
    for (Seg& s : segs) s.match = !s.match;
  }
  std::vector<Seg> acc;
  bool prev_match = false;
  switch (beh) {
    case SplitBehavior::kRemoved:
      for (const Seg& s : segs) {
        if (!s.match) acc.push_back(s);
      }
      break;
    case SplitBehavior::kIsolated:
      acc = segs;
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const Seg& s : segs) {
        if (s.match && !prev_match && !acc.empty()) {
          acc.back().e = s.e;
        } else {
          acc.push_back(s);
        }
        prev_match = s.match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (it->match && !prev_match && !acc.empty()) {
          acc.back().b = it->b;
        } else {
          acc.push_back(*it);
        }
        prev_match = it->match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
    case SplitBehavior::kContiguous:
      for (const Seg& s : segs) {
        if (s.match && prev_match && !acc.empty()) {
          acc.back().e = s.e;
        } else {
          acc.push_back(s);
        }
        prev_match = s.match;
      }
      break;
  }
  for (const Seg& s : acc) {
    if (s.e > s.b) out->emplace_back(text.substr(s.b, s.e - s.b), offset + s.b);
  }
}

}  // namespace

void PipelineTokenizer::pre_tokenize(std::string text, const Fragment& frag, std::vector<Piece>* pieces) const {
  std::vector<std::pair<std::string, size_t>> cur, next;
  cur.emplace_back(std::move(text), 0);
  for (const PreTokStep& st : pre_tokenizers_) {
    next.clear();
    switch (st.kind) {
      case PreTokStep::Kind::kSplit:
        for (auto& [t, off] : cur) split_piece(t, off, st.regex->find_all(t), st.behavior, st.invert, &next);
        break;
      case PreTokStep::Kind::kByteLevel: {
        std::vector<std::pair<std::string, size_t>> tmp;
        for (auto& [t, off] : cur) {
          std::string s = t;
          if (st.add_prefix_space && (s.empty() || s[0] != ' ')) s = " " + s;
          if (st.regex) {
            split_piece(s, off, st.regex->find_all(s), SplitBehavior::kIsolated, false, &tmp);
          } else {
            tmp.emplace_back(std::move(s), off);
          }
        }
        for (auto& [t, off] : tmp) next.emplace_back(byte_level_encode(t), off);
        break;
      }
      case PreTokStep::Kind::kMetaspace: {
        const std::string& rep = st.replacement;
        for (auto& [t, off] : cur) {
          std::string s;
          for (char c : t) {
            if (c == ' ') {
              s += rep;
            } else {
              s += c;
            }
          }
          bool prepend = st.prepend == PreTokStep::Prepend::kAlways ||
                         (st.prepend == PreTokStep::Prepend::kFirst && frag.at_text_start && off == 0);
          if (prepend && s.compare(0, rep.size(), rep) != 0) s = rep + s;
          if (st.split && !rep.empty()) {
            std::vector<std::pair<size_t, size_t>> m;
            size_t p = 0;
            while ((p = s.find(rep, p)) != std::string::npos) {
              m.emplace_back(p, p + rep.size());
              p += rep.size();
            }
            split_piece(s, off, m, SplitBehavior::kMergedWithNext, false, &next);
          } else {
            next.emplace_back(std::move(s), off);
          }
        }
        break;
      }
    }
    cur.swap(next);
  }
  for (auto& [t, off] : cur) pieces->push_back(Piece{std::move(t), off});
}

Status PipelineTokenizer::encode_fragment(const Fragment& frag, std::vector<int32_t>* out) const {
  std::string norm = normalize(frag.text, frag);
  if (norm.empty()) return Status::Ok();
  std::vector<Piece> pieces;
  pre_tokenize(std::move(norm), frag, &pieces);
  for (const Piece& p : pieces) {
    if (p.text.empty()) continue;
    switch (model_) {
      case ModelKind::kBpeMerges:
      case ModelKind::kBpeTokenRank:
      case ModelKind::kBpeScore:
        encode_bpe(p.text, out);
        break;
      case ModelKind::kUnigram:
        encode_unigram(p.text, out);
        break;
      case ModelKind::kWordPiece:
        encode_wordpiece(p.text, out);
        break;
    }
  }
  return Status::Ok();
}

void PipelineTokenizer::emit_unknown(std::string_view bytes, std::vector<int32_t>* out, bool* last_was_unk) const {
  if (byte_fallback_) {
    bool all = true;
    for (char c : bytes) all = all && byte_tokens_[static_cast<uint8_t>(c)] >= 0;
    if (all) {
      for (char c : bytes) out->push_back(byte_tokens_[static_cast<uint8_t>(c)]);
      *last_was_unk = false;
      return;
    }
  }
  if (unk_ < 0) return;  // no unknown token: the text is dropped, as HF does
  if (fuse_unk_ && *last_was_unk) return;
  out->push_back(unk_);
  *last_was_unk = true;
}

void PipelineTokenizer::encode_bpe(const std::string& word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    int32_t id = token_to_id(word);
    if (id >= 0 && attrs_[id] != TokenAttr::kControl) {
      out->push_back(id);
      return;
    }
  }
  struct Sym {
    int prev, next;
    uint32_t start, len;
    int32_t id;
  };
  struct Cand {
    double prio;
    int left, right;
    uint32_t left_len, right_len;
    int32_t new_id;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.prio > b.prio || (a.prio == b.prio && a.left > b.left); };
  std::vector<Sym> syms;
  size_t i = 0;
  while (i < word.size()) {
    size_t len = utf8_seq_len(static_cast<uint8_t>(word[i]));
    if (i + len > word.size()) len = word.size() - i;
    int32_t id = token_to_id(std::string_view(word).substr(i, len));
    if (id >= 0 && attrs_[id] == TokenAttr::kControl) id = -1;
    int n = static_cast<int>(syms.size());
    syms.push_back({n - 1, -1, static_cast<uint32_t>(i), static_cast<uint32_t>(len), id});
    if (n > 0) syms[n - 1].next = n;
    i += len;
  }
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Sym& a = syms[l];
    const Sym& b = syms[r];
    double prio;
    int32_t new_id;
    if (model_ == ModelKind::kBpeMerges) {
      if (a.id < 0 || b.id < 0) return;
      auto it = merges_.find(pair_key(a.id, b.id));
      if (it == merges_.end()) return;
      prio = it->second.first;
      new_id = it->second.second;
    } else {
      new_id = token_to_id(std::string_view(word).substr(a.start, a.len + b.len));
      if (new_id < 0) return;
      if (model_ == ModelKind::kBpeTokenRank) {
        prio = new_id;
      } else {
        TokenAttr at = attrs_[new_id];
        if (at != TokenAttr::kNormal && at != TokenAttr::kUserDefined) return;
        prio = -static_cast<double>(scores_[new_id]);
      }
    }
    queue.push({prio, l, r, a.len, b.len, new_id});
  };
  for (int k = 0; k + 1 < static_cast<int>(syms.size()); ++k) try_add(k, k + 1);
  while (!queue.empty()) {
    Cand c = queue.top();
    queue.pop();
    Sym& a = syms[c.left];
    Sym& b = syms[c.right];
    if (a.len != c.left_len || b.len != c.right_len || a.next != c.right || a.len == 0 || b.len == 0) continue;
    a.len += b.len;
    a.id = c.new_id;
    b.len = 0;
    a.next = b.next;
    if (b.next >= 0) syms[b.next].prev = c.left;
    try_add(a.prev, c.left);
    try_add(c.left, a.next);
  }
  bool last_unk = false;
  for (int k = syms.empty() ? -1 : 0; k >= 0; k = syms[k].next) {
    const Sym& s = syms[k];
    if (s.id >= 0) {
      out->push_back(s.id);
      last_unk = false;
    } else {
      emit_unknown(std::string_view(word).substr(s.start, s.len), out, &last_unk);
    }
  }
}

void PipelineTokenizer::encode_unigram(const std::string& word, std::vector<int32_t>* out) const {
  const size_t n = word.size();
  struct Node {
    double score = 0;
    size_t from = 0;
    int32_t id = -1;
    bool reached = false;
  };
  std::vector<Node> best(n + 1);
  best[0].reached = true;
  const double unk_score = static_cast<double>(min_score_) - 10.0;
  size_t i = 0;
  while (i < n) {
    size_t clen = utf8_seq_len(static_cast<uint8_t>(word[i]));
    if (i + clen > n) clen = n - i;
    if (best[i].reached) {
      bool has_single = false;
      size_t len = clen;
      while (i + len <= n && len <= max_piece_len_) {
        int32_t id = token_to_id(std::string_view(word).substr(i, len));
        if (id >= 0 && (attrs_[id] == TokenAttr::kNormal || attrs_[id] == TokenAttr::kUserDefined)) {
          double sc = best[i].score + scores_[id];
          Node& t = best[i + len];
          if (!t.reached || sc > t.score) t = Node{sc, i, id, true};
          if (len == clen) has_single = true;
        }
        if (i + len >= n) break;
        len += utf8_seq_len(static_cast<uint8_t>(word[i + len]));
      }
      if (!has_single) {
        double sc = best[i].score + unk_score;
        Node& t = best[i + clen];
        if (!t.reached || sc > t.score) t = Node{sc, i, -1, true};
      }
    }
    i += clen;
  }
  std::vector<std::pair<size_t, int32_t>> path;  // (start, id); end = next start
  for (size_t e = n; e > 0;) {
    path.emplace_back(best[e].from, best[e].id);
    e = best[e].from;
  }
  std::reverse(path.begin(), path.end());
  bool last_unk = false;
  for (size_t k = 0; k < path.size(); ++k) {
    size_t b = path[k].first, e = k + 1 < path.size() ? path[k + 1].first : n;
    if (path[k].second >= 0) {
      out->push_back(path[k].second);
      last_unk = false;
    } else {
      emit_unknown(std::string_view(word).substr(b, e - b), out, &last_unk);
    }
  }
}

void PipelineTokenizer::encode_wordpiece(const std::string& word, std::vector<int32_t>* out) const {
  std::vector<size_t> bounds;  // char starts + end
  for (size_t i = 0; i < word.size();) {
    bounds.push_back(i);
    i += utf8_seq_len(static_cast<uint8_t>(word[i]));
  }
  bounds.push_back(word.size());
  size_t n_chars = bounds.size() - 1;
  if (static_cast<int64_t>(n_chars) > wp_max_chars_) {
    if (unk_ >= 0) out->push_back(unk_);
    return;
  }
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start < n_chars) {
    size_t end = n_chars;
    int32_t found = -1;
    while (end > start) {
      std::string key = (start > 0 ? wp_cont_prefix_ : wp_word_prefix_) +
                        word.substr(bounds[start], bounds[end] - bounds[start]);
      int32_t id = token_to_id(key);
      if (id >= 0) {
        found = id;
        break;
      }
      --end;
    }
    if (found < 0) {
      if (unk_ >= 0) out->push_back(unk_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
  out->insert(out->end(), ids.begin(), ids.end());
}

}  // namespace slm::tokenizer
