// Byte-level BPE training: the CS336 reference merges and vocabulary (from
// ../shared/data), chunked reading, the tokenizer.json round trip through
// load_tokenizer_file, and bad input.
#include "slm/tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "slm/tokenizer/byte_level.h"
#include "../../src/tokenizer/pipeline.h"
#include "../../src/tokenizer/regex.h"
#include "slm/core/mapped_file.h"
#include "slm/tokenizer/load.h"
#include "test_util.h"

namespace slm::tokenizer {
namespace {

using test::shared_data;

const char* const kEot = "<|endoftext|>";

// A per-test scratch folder, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("slm_bpe_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

Result<BpeModel> train_text(const std::string& text, const BpeTrainOptions& opts) {
  std::istringstream in(text);
  return train_bpe(in, opts);
}

BpeTrainOptions options(int32_t vocab_size, std::vector<std::string> specials = {kEot}) {
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.special_tokens = std::move(specials);
  return o;
}

// A few KB of text with repetition, punctuation, digits, non-ASCII letters,
// runs of whitespace and special tokens.
std::string small_corpus() {
  std::string s;
  const char* lines[] = {
      "The quick brown fox jumps over the lazy dog. ",
      "Once upon a time, there was a little girl named Lily.\n",
      "She liked to play in the park with her friends: 1, 22, 333!\n\n",
      "Café, naïve, über, 日本語のテキスト, привет мир.\n",
      "  Indented   text\twith\ttabs   and  spaces   \n",
      "It's, we're, they'll, I'd, you've -- \"quoted\" (parens) [brackets].\n",
  };
  for (int i = 0; i < 40; ++i) {
    s += lines[i % 6];
    s += lines[(i * 7 + 3) % 6];
    if (i % 5 == 4) s += kEot;
  }
  return s;
}

// The oracle for encoding: pre-tokenize with the GPT-2 pattern (specials
// split out first), then in each pre-token repeatedly merge the adjacent pair
// with the lowest merge rank, straight from the merge list.
std::vector<int32_t> encode_with_merges(const BpeModel& m, const std::string& text) {
  std::map<std::pair<std::string, std::string>, size_t> rank;
  for (size_t i = 0; i < m.merges.size(); ++i) rank.emplace(m.merges[i], i);
  std::map<std::string, int32_t> id;
  for (size_t i = m.special_tokens.size(); i < m.vocab.size(); ++i) id.emplace(m.vocab[i], static_cast<int32_t>(i));
  auto re = Regex::compile(kGpt2Pattern);
  EXPECT_TRUE(re.ok());
  std::vector<int32_t> out;
  auto encode_piece = [&](const std::string& piece) {
    for (auto [b, e] : re->find_all(piece)) {
      std::vector<std::string> parts;
      for (size_t i = b; i < e; ++i) parts.emplace_back(1, piece[i]);
      while (parts.size() > 1) {
        size_t best = SIZE_MAX, at = 0;
        for (size_t i = 0; i + 1 < parts.size(); ++i) {
          auto it = rank.find({parts[i], parts[i + 1]});
          if (it != rank.end() && it->second < best) {
            best = it->second;
            at = i;
          }
        }
        if (best == SIZE_MAX) break;
        parts[at] += parts[at + 1];
        parts.erase(parts.begin() + static_cast<long>(at) + 1);
      }
      for (const std::string& p : parts) out.push_back(id.at(p));
    }
  };
  size_t pos = 0;
  while (true) {
    size_t s = text.find(kEot, pos);
    encode_piece(text.substr(pos, s == std::string::npos ? std::string::npos : s - pos));
    if (s == std::string::npos) break;
    out.push_back(0);
    pos = s + std::strlen(kEot);
  }
  return out;
}

TEST(BpeTrainer, ReproducesCs336ReferenceMergesAndVocab) {
  const std::string corpus = shared_data("corpora/cs336/corpus.en");
  const std::string ref_merges = shared_data("testvectors/cs336-bpe/train-bpe-reference-merges.txt");
  const std::string ref_vocab = shared_data("testvectors/cs336-bpe/train-bpe-reference-vocab.json");
  SLM_REQUIRE_DATA(corpus);
  SLM_REQUIRE_DATA(ref_merges);
  SLM_REQUIRE_DATA(ref_vocab);

  auto t0 = std::chrono::steady_clock::now();
  auto model = train_bpe(std::vector<std::string>{corpus}, options(500));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  std::printf("[ trained  ] corpus.en, vocab 500: %.3f s\n", secs);

  // Merges: one per line, "a b" with both sides in GPT-2's byte-to-unicode form.
  std::ifstream mf(ref_merges, std::ios::binary);
  std::vector<std::pair<std::string, std::string>> want;
  std::string line;
  while (std::getline(mf, line)) {
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    want.emplace_back(byte_level_decode(line.substr(0, sp)), byte_level_decode(line.substr(sp + 1)));
  }
  ASSERT_EQ(want.size(), 243u);
  ASSERT_EQ(model->merges.size(), want.size());
  size_t same = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(model->merges[i], want[i]) << "merge " << i << ": got '" << byte_level_encode(model->merges[i].first)
                                         << "' '" << byte_level_encode(model->merges[i].second) << "'";
    same += model->merges[i] == want[i];
  }
  EXPECT_EQ(same, want.size());

  // Vocabulary: {token text: id}, specials as written, the rest byte-level.
  auto text = read_file(ref_vocab);
  ASSERT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text);
  ASSERT_EQ(model->vocab.size(), j.size());
  ASSERT_EQ(model->vocab.size(), 500u);
  for (auto it = j.begin(); it != j.end(); ++it) {
    int64_t id = it.value().get<int64_t>();
    ASSERT_GE(id, 0);
    ASSERT_LT(id, 500);
    std::string bytes = it.key() == kEot ? it.key() : byte_level_decode(it.key());
    EXPECT_EQ(model->vocab[static_cast<size_t>(id)], bytes) << "id " << id << " ('" << it.key() << "')";
  }
}

TEST(BpeTrainer, SmallChunksGiveTheSameMerges) {
  const std::string corpus = shared_data("corpora/cs336/corpus.en");
  SLM_REQUIRE_DATA(corpus);
  auto whole = train_bpe(std::vector<std::string>{corpus}, options(400));
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  for (size_t chunk : {size_t(1), size_t(97), size_t(4096)}) {
    BpeTrainOptions o = options(400);
    o.chunk_bytes = chunk;
    auto m = train_bpe(std::vector<std::string>{corpus}, o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    EXPECT_EQ(m->merges, whole->merges) << "chunk " << chunk;
    EXPECT_EQ(m->vocab, whole->vocab) << "chunk " << chunk;
  }
}

TEST(BpeTrainer, ChunkCutsKeepSpecialsAndWhitespaceRuns) {
  // Specials straddling chunk ends, whitespace runs and a long line with no
  // newline: any chunk size must give the counts of the whole text.
  std::string text;
  for (int i = 0; i < 30; ++i) {
    text += "ab ab  ab\n\n\ncd" + std::string(i % 4, ' ') + kEot + "xy<|end" + "\n \n" + "ab\tcd !!\r\n" + "\r\nef\r\n";
  }
  auto whole = train_text(text, options(290));
  ASSERT_TRUE(whole.ok()) << whole.status().to_string();
  for (size_t chunk = 1; chunk < 40; ++chunk) {
    BpeTrainOptions o = options(290);
    o.chunk_bytes = chunk;
    auto m = train_text(text, o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    ASSERT_EQ(m->merges, whole->merges) << "chunk " << chunk;
  }
}

TEST(BpeTrainer, LongLineWithNoCutPointIsReadWhole) {
  // No newline, no space, no special: nowhere to cut, so the reader keeps
  // reading (doubling before it searches again) and counts it at the end.
  std::string text;
  for (int i = 0; i < 20000; ++i) text += (i % 3 == 0) ? "ab," : "cd.";
  BpeTrainOptions o = options(260);
  o.chunk_bytes = 16;
  auto m = train_text(text, o);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  auto whole = train_text(text, options(260));
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(m->merges, whole->merges);
}

TEST(BpeTrainer, IdLayoutAndTieBreak) {
  // Each pair occurs once: ("c","d") beats ("a","b") and (" ","c") on bytes.
  auto m = train_text("ab cd", options(258, {}));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->merges.size(), 2u);
  EXPECT_EQ(m->merges[0], std::make_pair(std::string("c"), std::string("d")));
  EXPECT_EQ(m->merges[1], std::make_pair(std::string("a"), std::string("b")));
  ASSERT_EQ(m->vocab.size(), 258u);
  EXPECT_EQ(m->vocab[0], "!");         // bytes in GPT-2 encoder.json order
  EXPECT_EQ(m->vocab[187], "\xFF");              // last self-mapped byte
  EXPECT_EQ(m->vocab[188], std::string(1, '\0'));  // U+0100
  EXPECT_EQ(m->vocab[220], " ");                  // U+0120, as in GPT-2
  EXPECT_EQ(m->vocab[256], "cd");
  EXPECT_EQ(m->vocab[257], "ab");

  auto s = train_text("ab cd", options(259, {"<a>", "<b>"}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->vocab[0], "<a>");
  EXPECT_EQ(s->vocab[1], "<b>");
  EXPECT_EQ(s->vocab[2], "!");
  EXPECT_EQ(s->vocab[258], "cd");
}

TEST(BpeTrainer, SpecialTokensAreNotCountedOrMergedAcross) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += std::string("x") + kEot + "y";
  auto m = train_text(text, options(300));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  // "y" then "x" touch across nothing but the special: "yx" is a pre-token
  // only where a special does not sit between them.
  for (const auto& [a, b] : m->merges) {
    EXPECT_EQ((a + b).find('<'), std::string::npos) << a << "+" << b;
    EXPECT_EQ((a + b).find('|'), std::string::npos) << a << "+" << b;
  }
  ASSERT_EQ(m->merges.size(), 1u);  // "yx" only; then no pair is left
  EXPECT_EQ(m->merges[0], std::make_pair(std::string("y"), std::string("x")));
  EXPECT_EQ(m->vocab.size(), 258u);  // stopped early: nothing left to merge
}

TEST(BpeTrainer, InvalidUtf8IsTrainedAsBytes) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += "caf\xE9 \xFF\xFE\xFF\xFE ok\n";
  auto m = train_text(text, options(270));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  bool saw = false;
  for (const auto& [a, b] : m->merges) saw |= (a + b) == "\xFF\xFE";
  EXPECT_TRUE(saw);
  // The invalid run is a pre-token of its own: nothing merges it with text.
  for (const auto& [a, b] : m->merges) {
    std::string ab = a + b;
    if (ab.find('\xFF') != std::string::npos) {
      EXPECT_EQ(ab.find_first_not_of("\xFF\xFE"), std::string::npos) << ab;
    }
  }
}

TEST(BpeTrainer, RoundTripThroughTokenizerJson) {
  TempDir dir;
  const std::string corpus = small_corpus();
  std::vector<std::pair<std::string, int64_t>> progress;
  BpeTrainOptions o = options(420);
  o.progress = [&](std::string_view phase, int64_t done, int64_t total) {
    progress.emplace_back(std::string(phase), done);
    EXPECT_LE(done, total < 0 ? done : total);
  };
  auto m = train_text(corpus, o);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  ASSERT_EQ(m->vocab.size(), 420u);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, "merge");
  EXPECT_EQ(progress.back().second, 420 - 257);

  const std::string path = dir.file("tokenizer.json");
  ASSERT_TRUE(write_hf_tokenizer_json(*m, path).ok());
  auto tok = load_tokenizer_file(path);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->n_vocab(), 420);
  EXPECT_EQ((*tok)->kind(), "bpe");
  EXPECT_EQ((*tok)->token_to_id(kEot), 0);
  EXPECT_TRUE((*tok)->is_control(0));

  const std::vector<std::string> texts = {
      corpus,
      "The lazy girl named Lily jumps over the quick park.",
      "  Indented\ttext, 日本語! привет? naïve über-café 12345 <|endoftext|> It's done.\n\n\n",
      "Something never seen: zebra qi xylophone {}[]~ \u00A0\u2028 emoji \U0001F600",
      "",
  };
  for (const std::string& t : texts) {
    auto ids = (*tok)->encode(t, /*add_special=*/false, /*parse_special=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status().to_string();
    EXPECT_EQ(*ids, encode_with_merges(*m, t)) << t.substr(0, 60);
    EXPECT_EQ((*tok)->decode(*ids, /*render_special=*/true), t) << t.substr(0, 60);
  }
  // The whole training text compresses: merges were learnt from it.
  auto ids = (*tok)->encode(corpus, false, true);
  ASSERT_TRUE(ids.ok());
  EXPECT_LT(ids->size(), corpus.size() / 2);

  // A custom split pattern is written as Split + ByteLevel and read back.
  BpeTrainOptions w = options(300);
  w.split_pattern = "\\s*[^\\s]+";
  auto mw = train_text(corpus, w);
  ASSERT_TRUE(mw.ok()) << mw.status().to_string();
  const std::string path2 = dir.file("words.json");
  ASSERT_TRUE(write_hf_tokenizer_json(*mw, path2).ok());
  auto tok2 = load_tokenizer_file(path2);
  ASSERT_TRUE(tok2.ok()) << tok2.status().to_string();
  auto ids2 = (*tok2)->encode(texts[1], false, true);
  ASSERT_TRUE(ids2.ok());
  EXPECT_EQ((*tok2)->decode(*ids2), texts[1]);
}

TEST(BpeTrainer, BadInput) {
  auto empty = train_text("", options(300));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("no text"), std::string::npos) << empty.status().message();

  auto only_specials = train_text(std::string(kEot) + kEot, options(300));
  ASSERT_FALSE(only_specials.ok());
  EXPECT_EQ(only_specials.status().code(), Status::Code::kInvalidArgument);

  auto small = train_text("hello", options(256));  // 256 + 1 special needed
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("vocab_size 256 is too small"), std::string::npos)
      << small.status().message();
  auto exact = train_text("hello", options(257));  // no merges asked for
  ASSERT_TRUE(exact.ok()) << exact.status().to_string();
  EXPECT_TRUE(exact->merges.empty());

  EXPECT_FALSE(train_text("hello", options(300, {""})).ok());
  EXPECT_FALSE(train_text("hello", options(300, {"<a>", "<a>"})).ok());
  EXPECT_FALSE(train_text("hello", options(300, {"\xFF"})).ok());
  BpeTrainOptions bad_re = options(300);
  bad_re.split_pattern = "(unclosed";
  auto re = train_text("hello", bad_re);
  ASSERT_FALSE(re.ok());
  EXPECT_NE(re.status().message().find("split_pattern"), std::string::npos) << re.status().message();

  auto missing = train_bpe(std::vector<std::string>{"/nonexistent/corpus.txt"}, options(300));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/corpus.txt"), std::string::npos);
  TempDir dir;
  auto is_dir = train_bpe(std::vector<std::string>{dir.file("")}, options(300));
  ASSERT_FALSE(is_dir.ok());
  EXPECT_NE(is_dir.status().message().find("directory"), std::string::npos) << is_dir.status().message();
  EXPECT_FALSE(train_bpe(std::vector<std::string>{}, options(300)).ok());
  if (::geteuid() != 0) {  // root reads anything
    const std::string locked = dir.file("locked.txt");
    ASSERT_TRUE(write_file_atomic(locked, "abc", 3).ok());
    std::filesystem::permissions(locked, std::filesystem::perms::none);
    auto unreadable = train_bpe(std::vector<std::string>{locked}, options(300));
    ASSERT_FALSE(unreadable.ok());
    EXPECT_EQ(unreadable.status().code(), Status::Code::kIoError) << unreadable.status().to_string();
  }

  // A stream that fails part-way (a disk error under an ifstream).
  struct FailingBuf : std::streambuf {
    int calls = 0;
    char data[8] = {'h', 'e', 'l', 'l', 'o', ' ', 'a', 'b'};
    int_type underflow() override {
      if (calls++ > 0) throw std::runtime_error("EIO");
      setg(data, data, data + sizeof data);
      return traits_type::to_int_type(data[0]);
    }
  } failing;
  std::istream failing_in(&failing);
  BpeTrainOptions tiny = options(300);
  tiny.chunk_bytes = 4;
  auto io = train_bpe(failing_in, tiny);
  ASSERT_FALSE(io.ok());
  EXPECT_EQ(io.status().code(), Status::Code::kIoError) << io.status().to_string();

  // Writing: a folder that does not exist; a model that is not consistent.
  auto m = train_text("hello hello", options(260));
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(write_hf_tokenizer_json(*m, "/nonexistent/dir/tokenizer.json").ok());
  BpeModel broken = *m;
  broken.vocab.resize(100);
  EXPECT_FALSE(write_hf_tokenizer_json(broken, dir.file("t.json")).ok());
  EXPECT_FALSE(file_exists(dir.file("t.json")));
}

}  // namespace
}  // namespace slm::tokenizer
