// The slm binary as a user runs it: output, exit codes, one-line errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace slm {
namespace {

struct CliRun {
  int rc;
  std::string out, err;
};

CliRun slm(const std::string& args, const std::string& stdin_text = "") {
  const std::string dir = ::testing::TempDir();
  // Per process: ctest runs tests in parallel processes.
  const std::string tag = std::to_string(::getpid());
  const std::string in = dir + "/slm_cli_in." + tag, err = dir + "/slm_cli_err." + tag;
  std::ofstream(in) << stdin_text;
  CliRun r;
  r.rc = test::run_command(test::slm_binary() + " " + args + " < " + in + " 2> " + err, &r.out);
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

std::string data(const std::string& rel) { return test::shared_data(rel); }

// The same greedy ids from all three files of stories260K, equal to the numpy reference.
TEST(Run, GreedyIdsAgreeAcrossFormats) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.bin"));
  std::ifstream f(test::fixture("stories260K_greedy200.json"));
  auto ref = nlohmann::json::parse(f)["ids"].get<std::vector<int>>();
  std::string want;
  for (size_t i = 0; i < 40; ++i) want += (i ? " " : "") + std::to_string(ref[i]);
  for (const char* m : {"models/stories260K/stories260K.gguf", "models/stories260K/stories260K.bin", "models/stories260K-hf"}) {
    CliRun r = slm("run " + data(m) + " --prompt-ids 1 -n 40 --temp 0 --print-ids --ignore-eos");
    EXPECT_EQ(r.rc, 0) << m << ": " << r.err;
    EXPECT_EQ(r.out, want + "\n") << m;
  }
}

TEST(Run, TextFromAPromptIsNotEchoed) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.gguf"));
  CliRun r = slm("run " + data("models/stories260K/stories260K.gguf") + " -p \"Once upon a time\" -n 30 --temp 0");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GT(r.out.size(), 20u);
  EXPECT_NE(r.out.rfind("Once upon a time", 0), 0u) << r.out;
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  // The same text from the llama2.c file with its tokenizer beside it.
  CliRun r2 = slm("run " + data("models/stories260K/stories260K.bin") + " -p \"Once upon a time\" -n 30 --temp 0");
  ASSERT_EQ(r2.rc, 0) << r2.err;
  EXPECT_EQ(r.out, r2.out);
}

TEST(Run, SeedMakesSamplingRepeatable) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.gguf"));
  const std::string cmd = "run " + data("models/stories260K/stories260K.gguf") + " -n 40 --temp 1 --seed 7 --print-ids";
  CliRun a = slm(cmd), b = slm(cmd), c = slm("run " + data("models/stories260K/stories260K.gguf") +
                                          " -n 40 --temp 1 --seed 8 --print-ids");
  ASSERT_EQ(a.rc, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST(Run, NCountsGeneratedTokens) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.gguf"));
  CliRun r = slm("run " + data("models/stories260K/stories260K.gguf") + " --prompt-ids \"1 403\" -n 5 --temp 0 --print-ids --ignore-eos");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), ' '), 4) << r.out;
}

TEST(Tokenize, ReadsStdinAndPrintsIds) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.gguf"));
  // The prompt ids llama2.c used for this text (testvectors/stories260K_logits.json).
  CliRun r = slm("tokenize " + data("models/stories260K/stories260K.gguf"), "Once upon a time, there was a little dog");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "1 403 407 261 378 432 383 286 261 376 400 428\n");
  // The llama2.c tokenizer file named directly gives the same ids.
  CliRun tb = slm("tokenize " + data("models/stories260K/tok512.bin"), "Once upon a time, there was a little dog");
  EXPECT_EQ(tb.out, r.out) << tb.err;
  CliRun nb = slm("tokenize --no-bos " + data("models/stories260K/stories260K.gguf"), "Once upon a time, there was a little dog");
  EXPECT_EQ(nb.out, "403 407 261 378 432 383 286 261 376 400 428\n");
}

// slm tokenizer train writes a tokenizer.json that slm tokenize reads back.
TEST(TokenizerTrain, WritesATokenizerThatLoads) {
  const std::string corpus = data("corpora/cs336/corpus.en");
  SLM_REQUIRE_DATA(corpus);
  const std::string out = ::testing::TempDir() + "/slm_tok_" + std::to_string(::getpid()) + ".json";
  CliRun r = slm("tokenizer train --data " + corpus + " --vocab 500 --special '<|endoftext|>' --out " + out);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("500 tokens, 243 merges"), std::string::npos) << r.err;
  CliRun t = slm("tokenize --no-bos " + out, "the cat<|endoftext|>");
  EXPECT_EQ(t.rc, 0) << t.err;
  EXPECT_GT(t.out.size(), 2u);
  CliRun bad = slm("tokenizer train --data /nonexistent.txt --vocab 500 --out " + out + ".x");
  EXPECT_NE(bad.rc, 0);
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  std::remove(out.c_str());
}

TEST(Info, TokenizerOnlyFiles) {
  for (const char* f : {"tokenizers/tiktoken/cl100k_base.tiktoken", "tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf"}) {
    SLM_REQUIRE_DATA(data(f));
    CliRun r = slm("info " + data(f));
    EXPECT_EQ(r.rc, 0) << f << ": " << r.err;
    EXPECT_NE(r.out.find("tokenizer only"), std::string::npos) << r.out;
  }
}

TEST(Info, NamesArchitectureAndTensors) {
  SLM_REQUIRE_DATA(data("models/stories260K/stories260K.gguf"));
  CliRun r = slm("info " + data("models/stories260K/stories260K.gguf"));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("arch llama"), std::string::npos);
  EXPECT_NE(r.out.find("blk.4.ffn_down.weight"), std::string::npos);
  EXPECT_NE(r.out.find("tokenizer: spm"), std::string::npos) << r.out;
}

// Bad input: a one-line error on stderr and a non-zero exit, never a crash.
TEST(Errors, OneLineAndNonZero) {
  const std::string gguf = data("models/stories260K/stories260K.gguf");
  struct Case { std::string args, stdin_text, expect; };
  std::vector<Case> cases = {
      {"run /nonexistent/model.gguf", "", "no model"},
      {"train --data /nonexistent/corpus.txt --out /tmp/slm-cli-test-train", "", "corpus.txt"},
      {"train --data /dev/null --out /tmp/slm-cli-test-train --dim 30 --heads 4", "", "multiple of heads"},
      {"frobnicate", "", "error"},
      {"run " + gguf + " --temp -1", "", "temp"},
      {"run " + gguf + " -n abc", "", "n-predict"},
      {"run " + gguf + " --top-p 2", "", "top-p"},
      {"run " + gguf + " --prompt-ids \"1 x 3\"", "", "'x'"},
      {"run " + gguf + " --prompt-ids \"1 99999\"", "", "outside the vocabulary"},
      {"run " + gguf + " -p $'\\xff\\xfe bad'", "", "UTF-8"},
      {"tokenize " + gguf, "ok \xc3\x28 bad", "UTF-8"},
      {"info " + test::fixture("stories260K_greedy200.json"), "", "error"},
  };
  for (const Case& c : cases) {
    if (c.args.find(gguf) != std::string::npos && !file_exists(gguf)) continue;
    // bash for the $'..' quoting of raw bytes
    CliRun r = slm(c.args, c.stdin_text);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_LT(r.rc, 128) << c.args << " crashed";
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << " -> " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << " -> " << r.err;
  }
}

}  // namespace
}  // namespace slm
