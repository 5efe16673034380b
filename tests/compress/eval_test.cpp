// Perplexity and HellaSwag: the library against a computation written here
// another way (one token per forward pass, log-softmax in double), the text
// parser against hand-made files, and the CLI's output and errors.
#include <gtest/gtest.h>

#include <bzlib.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>

#include "slm/compress/eval.h"
#include "slm/engine/session.h"
#include "slm/model/model_source.h"
#include "test_util.h"

namespace slm {
namespace {

std::string data(const std::string& rel) { return test::shared_data(rel); }
const char* kModel = "models/stories260K/stories260K.gguf";
const char* kCorpus = "corpora/cs336/tinystories_sample.txt";

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string p = ::testing::TempDir() + "/slm_eval_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

struct CliRun {
  int rc;
  std::string out, err;
};

CliRun slm_cli(const std::string& args) {
  const std::string err = ::testing::TempDir() + "/slm_eval_err." + std::to_string(::getpid());
  CliRun r;
  r.rc = test::run_command(test::slm_binary() + " " + args + " 2> " + err + " </dev/null", &r.out);
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// -log p(target | logits), in double.
double nll_of(const float* logits, int64_t n, int32_t target) {
  double mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(logits[i] - mx);
  return mx + std::log(s) - logits[target];
}

struct Loaded {
  std::unique_ptr<model::ModelSource> src;
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

Loaded load() {
  // One thread: a 260K model gains nothing from more, and a busy second core
  // makes every OpenMP barrier wait (results do not depend on the count).
  omp_set_num_threads(1);
  Loaded l;
  auto s = model::ModelSource::open(data(kModel));
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  l.src = std::move(s).value();
  l.model = std::make_unique<model::Model>(l.src->config(), l.src->weights());
  auto t = engine::open_tokenizer(data(kModel));
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  l.tok = std::move(t).value();
  return l;
}

TEST(Perplexity, MatchesTokenByTokenComputation) {
  SLM_REQUIRE_DATA(data(kModel));
  SLM_REQUIRE_DATA(data(kCorpus));
  Loaded l = load();
  auto ids = compress::tokenize_file(*l.tok, data(kCorpus));
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  ASSERT_EQ((*ids)[0], l.tok->bos());
  const int64_t ctx = 64;
  compress::PerplexityOptions opt;
  opt.n_ctx = ctx;
  auto r = compress::perplexity(*l.model, *ids, l.tok->bos(), opt);
  ASSERT_TRUE(r.ok()) << r.status().to_string();

  // The reference: each window fed one token at a time; a window's first token
  // is BOS; the tokens after positions ctx/2 .. ctx-2 are scored.
  const int64_t n_vocab = l.src->config().n_vocab;
  const int64_t n_windows = static_cast<int64_t>(ids->size()) / ctx;
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int64_t w = 0; w < n_windows; ++w) {
    model::KvCache kv(l.src->config(), 0, l.src->config().n_layer, 1, ctx);
    std::vector<float> logits;
    for (int64_t j = 0; j + 1 < ctx; ++j) {
      const int32_t tok = j == 0 ? l.tok->bos() : (*ids)[static_cast<size_t>(w * ctx + j)];
      ASSERT_TRUE(l.model->forward({{tok, j, 0, true}}, kv, &logits).ok());
      if (j < ctx / 2) continue;
      const double v = nll_of(logits.data(), n_vocab, (*ids)[static_cast<size_t>(w * ctx + j + 1)]);
      sum += v;
      sum2 += v * v;
      ++n;
    }
  }
  const double mean = sum / n, ppl = std::exp(mean);
  const double err = ppl * std::sqrt((sum2 / n - mean * mean) / (n - 1));
  EXPECT_EQ(r->n_windows, n_windows);
  EXPECT_EQ(r->n_scored, n);
  EXPECT_EQ(n, n_windows * (ctx - 1 - ctx / 2));
  EXPECT_NEAR(r->ppl, ppl, 1e-4 * ppl);
  EXPECT_NEAR(r->ppl_stderr, err, 1e-3 * err);
  EXPECT_GT(r->ppl, 1.0);
  EXPECT_LT(r->ppl, 50.0);  // stories260K knows TinyStories

  // Strided: windows every 16 tokens, each scoring its last 16.
  opt.stride = 16;
  auto s = compress::perplexity(*l.model, *ids, l.tok->bos(), opt);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->n_scored, s->n_windows * 16);
  EXPECT_NEAR(std::log(s->ppl), std::log(r->ppl), 0.5);
}

TEST(Perplexity, RefusesShortText) {
  SLM_REQUIRE_DATA(data(kModel));
  Loaded l = load();
  std::vector<int32_t> ids(100, 5);
  compress::PerplexityOptions opt;
  opt.n_ctx = 64;
  auto r = compress::perplexity(*l.model, ids, l.tok->bos(), opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at least 128"), std::string::npos) << r.status().message();
  opt.stride = 65;
  ids.assign(1000, 5);
  EXPECT_FALSE(compress::perplexity(*l.model, ids, l.tok->bos(), opt).ok());
  ids.assign(1000, 100000);  // outside the vocabulary
  opt.stride = 0;
  EXPECT_FALSE(compress::perplexity(*l.model, ids, l.tok->bos(), opt).ok());
}

TEST(PerplexityCli, LastLineAndErrors) {
  SLM_REQUIRE_DATA(data(kModel));
  SLM_REQUIRE_DATA(data(kCorpus));
  const std::string model = data(kModel);
  CliRun r = slm_cli("eval " + model + " --ppl " + data(kCorpus) + " --ctx 64 -t 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(std::regex_match(last_line(r.out), std::regex(R"(ppl=[0-9]+\.[0-9]{4} \+/- [0-9]+\.[0-9]{5})")))
      << r.out;

  r = slm_cli("eval " + model + " --ppl /nonexistent/corpus.txt");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
  r = slm_cli("eval " + model + " --ppl " + temp_file("empty.txt", ""));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("empty"), std::string::npos) << r.err;
  r = slm_cli("eval " + model + " --ppl " + temp_file("short.txt", "Once upon a time there was a cat."));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("needs at least"), std::string::npos) << r.err;
  r = slm_cli("eval " + model + " --ppl " + temp_file("bad.txt", std::string("Once upon \xff\xfe a time")));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  for (const std::string* e : {&r.err}) EXPECT_EQ(std::count(e->begin(), e->end(), '\n'), 1) << *e;
  r = slm_cli("eval " + model);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--ppl"), std::string::npos) << r.err;
}

const char* kTwoTasks =
    "A man is sitting on a roof. he\n"
    "3\n"
    "is using wrap to wrap a pair of skis.\n"
    "is ripping level tiles off.\n"
    "is holding a rubik's cube.\n"
    "starts pulling up roofing on a roof.\n"
    "The cat sat on the mat. It\n"
    "0\n"
    "was happy.\n"
    "flew to the moon.\n"
    "ate a car.\n"
    "became a number.\n";

TEST(Hellaswag, ParsesTasks) {
  auto t = compress::parse_hellaswag(kTwoTasks);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].context, "A man is sitting on a roof. he");
  EXPECT_EQ((*t)[0].gold, 3);
  EXPECT_EQ((*t)[0].endings[3], "starts pulling up roofing on a roof.");
  EXPECT_EQ((*t)[1].gold, 0);
  EXPECT_EQ((*t)[1].endings[1], "flew to the moon.");
  auto one = compress::parse_hellaswag(kTwoTasks, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
  // CRLF line ends and no final newline.
  std::string crlf = std::regex_replace(std::string(kTwoTasks), std::regex("\n"), "\r\n");
  crlf.resize(crlf.size() - 2);
  auto c = compress::parse_hellaswag(crlf);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ((*c)[1].endings[3], "became a number.");
}

TEST(Hellaswag, RejectsMalformedInput) {
  std::string s = kTwoTasks;
  auto bad_label = compress::parse_hellaswag(std::regex_replace(s, std::regex("\n3\n"), "\n7\n"));
  ASSERT_FALSE(bad_label.ok());
  EXPECT_NE(bad_label.status().message().find("line 2"), std::string::npos) << bad_label.status().message();
  auto word_label = compress::parse_hellaswag(std::regex_replace(s, std::regex("\n0\n"), "\nzero\n"));
  ASSERT_FALSE(word_label.ok());
  EXPECT_NE(word_label.status().message().find("line 8"), std::string::npos) << word_label.status().message();
  auto cut = compress::parse_hellaswag(s.substr(0, s.rfind("became")));  // 11 lines and an empty 12th
  EXPECT_FALSE(cut.ok());
  auto short_file = compress::parse_hellaswag(s.substr(0, s.find("is ripping")));  // 3 lines
  ASSERT_FALSE(short_file.ok());
  EXPECT_NE(short_file.status().message().find("multiple of 6"), std::string::npos);
  EXPECT_FALSE(compress::parse_hellaswag("").ok());
}

TEST(Hellaswag, ReadsBzip2) {
  // Compress the two tasks with libbz2 and read them back through the same path as the real file.
  std::string plain = kTwoTasks;
  std::string packed(plain.size() * 2 + 600, '\0');
  unsigned len = static_cast<unsigned>(packed.size());
  ASSERT_EQ(BZ2_bzBuffToBuffCompress(packed.data(), &len, plain.data(), static_cast<unsigned>(plain.size()), 9, 0, 0),
            BZ_OK);
  packed.resize(len);
  auto text = compress::read_text_file(temp_file("two.txt.bz2", packed));
  ASSERT_TRUE(text.ok()) << text.status().to_string();
  EXPECT_EQ(*text, plain);
  // Two concatenated streams read as one text.
  auto twice = compress::read_text_file(temp_file("twice.txt.bz2", packed + packed));
  ASSERT_TRUE(twice.ok()) << twice.status().to_string();
  EXPECT_EQ(*twice, plain + plain);
  // Truncated and corrupt data: errors, not garbage.
  EXPECT_FALSE(compress::read_text_file(temp_file("cut.txt.bz2", packed.substr(0, packed.size() / 2))).ok());
  std::string flipped = packed;
  flipped[flipped.size() / 2] ^= 0x55;
  EXPECT_FALSE(compress::read_text_file(temp_file("flip.txt.bz2", flipped)).ok());
}

TEST(Hellaswag, ScoresHandMadeTasks) {
  SLM_REQUIRE_DATA(data(kModel));
  Loaded l = load();
  auto tasks = compress::parse_hellaswag(kTwoTasks);
  ASSERT_TRUE(tasks.ok());
  int64_t calls = 0;
  auto r = compress::hellaswag(*l.model, *l.tok, *tasks, DType::kF32, [&](int64_t, int64_t, double) { ++calls; });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->n_tasks, 2);
  EXPECT_EQ(calls, 2);
  EXPECT_NEAR(r->acc_norm, 100.0 * r->n_correct / 2, 1e-9);
  ASSERT_EQ(r->scores.size(), 2u);

  // The reference: each "context ending" fed one token at a time; the tokens
  // after the prefix all four share are the ending, scored by their mean log-prob.
  const int64_t n_vocab = l.src->config().n_vocab;
  int64_t correct = 0;
  for (size_t t = 0; t < 2; ++t) {
    std::array<std::vector<int32_t>, 4> seq;
    for (size_t e = 0; e < 4; ++e) {
      auto ids = l.tok->encode((*tasks)[t].context + " " + (*tasks)[t].endings[e], true);
      ASSERT_TRUE(ids.ok());
      seq[e] = *ids;
    }
    size_t shared = 0;
    while (shared < seq[0].size() && seq[1].size() > shared && seq[2].size() > shared && seq[3].size() > shared &&
           seq[1][shared] == seq[0][shared] && seq[2][shared] == seq[0][shared] && seq[3][shared] == seq[0][shared])
      ++shared;
    ASSERT_GT(shared, 1u);  // BOS and at least one context token
    for (size_t e = 0; e < 4; ++e) {
      ASSERT_LT(shared, seq[e].size());
      model::KvCache kv(l.src->config(), 0, l.src->config().n_layer, 1, static_cast<int64_t>(seq[e].size()));
      std::vector<float> logits;
      double sum = 0;
      for (size_t j = 0; j + 1 < seq[e].size(); ++j) {
        ASSERT_TRUE(l.model->forward({{seq[e][j], static_cast<int64_t>(j), 0, true}}, kv, &logits).ok());
        if (j + 1 >= shared) sum -= nll_of(logits.data(), n_vocab, seq[e][j + 1]);
      }
      const double mean = sum / static_cast<double>(seq[e].size() - shared);
      EXPECT_NEAR(r->scores[t][e], mean, 1e-4) << "task " << t << " ending " << e;
    }
    const auto& sc = r->scores[t];
    const int argmax = static_cast<int>(std::max_element(sc.begin(), sc.end()) - sc.begin());
    if (argmax == (*tasks)[t].gold) ++correct;
  }
  EXPECT_EQ(r->n_correct, correct);
}

TEST(HellaswagCli, FirstTasksOfTheRealFile) {
  const std::string hs = data("eval/hellaswag/hellaswag_val_full.txt.bz2");
  SLM_REQUIRE_DATA(data(kModel));
  SLM_REQUIRE_DATA(hs);
  CliRun r = slm_cli("eval " + data(kModel) + " --hellaswag " + hs + " --tasks 8 -t 1");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("tasks=8 "), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_match(last_line(r.out), std::regex(R"(acc_norm=[0-9]+\.[0-9]{2})"))) << r.out;
  r = slm_cli("eval " + data(kModel) + " --hellaswag " + temp_file("bad.txt", "ctx\n9\na\nb\nc\nd\n"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("gold label"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace slm
