// `slm train` as a user runs it: a config file, the files it writes, the
// model it exports running in `slm run`, a resumed run, and `slm run` with no
// model using the default model from its cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "slm/core/mapped_file.h"
#include "test_util.h"

namespace slm {
namespace {

namespace fs = std::filesystem;

TEST(TrainCli, ConfigFileTrainExportRunResume) {
  const std::string dir = (fs::temp_directory_path() / ("slm_train_cli_" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the cat sat on the mat. the dog sat on the log.\n";
  std::ofstream(dir + "/corpus.txt") << text;
  std::ofstream(dir + "/tiny.json") << R"({"dim": 32, "layers": 2, "heads": 4, "kv_heads": 2, "ffn": 64, "ctx": 64})";
  const std::string train = test::slm_binary() + " train --data " + dir + "/corpus.txt --config " + dir +
                            "/tiny.json --out " + dir + "/out --seq 32 --batch 4 --steps 30 --warmup 3 --lr 3e-3 "
                            "--eval-every 10 --eval-batches 2 -t 1";
  std::string out;
  ASSERT_EQ(test::run_command(train + " --stop-at 15 2>&1", &out), 0) << out;
  ASSERT_EQ(test::run_command(train + " --resume 2>" + dir + "/err.txt", &out), 0) << out;
  EXPECT_NE(out.find("step=30 "), std::string::npos) << out;
  EXPECT_NE(out.find("val_loss="), std::string::npos) << out;
  auto err = read_file(dir + "/err.txt");
  ASSERT_TRUE(err.ok());
  EXPECT_NE(err->find("resuming at step 15"), std::string::npos) << *err;
  EXPECT_NE(err->find("val "), std::string::npos) << *err;  // a line per evaluation (stderr is not a terminal)
  for (const char* f : {"checkpoint.safetensors", "loss.csv", "loss.svg", "model.gguf"})
    EXPECT_TRUE(file_exists(dir + "/out/" + f)) << f;
  auto csv = read_file(dir + "/out/loss.csv");
  ASSERT_TRUE(csv.ok());
  EXPECT_EQ(csv->rfind("step,lr,train_loss,val_loss\n", 0), 0u);
  EXPECT_NE(csv->find("\n30,"), std::string::npos) << *csv;

  ASSERT_EQ(test::run_command(test::slm_binary() + " run " + dir + "/out/model.gguf -p \"the \" -n 20 --seed 1 2>&1 >" +
                                  dir + "/gen.txt", &out), 0) << out;
  auto gen = read_file(dir + "/gen.txt");
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(gen->size(), 21u) << "20 byte tokens, each one byte, and the newline run ends with: " << *gen;
  ASSERT_EQ(test::run_command(test::slm_binary() + " info " + dir + "/out/model.gguf", &out), 0);
  EXPECT_NE(out.find("kv 2"), std::string::npos) << out;
}

TEST(TrainCli, RunWithoutAModelUsesTheCachedDefault) {
  // A cache that already holds the default model: slm run takes it without training.
  const std::string model = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(model);
  const std::string cache = (fs::temp_directory_path() / ("slm_cache_" + std::to_string(getpid()))).string();
  fs::create_directories(cache);
  fs::copy_file(model, cache + "/default-fortunes-v1.gguf", fs::copy_options::overwrite_existing);
  std::string out;
  EXPECT_EQ(test::run_command("SLM_CACHE_DIR=" + cache + " " + test::slm_binary() +
                                  " run --prompt-ids 1 -n 10 --temp 0 --print-ids --ignore-eos 2>/dev/null", &out), 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), ' '), 9) << out;
  fs::remove_all(cache);
}

TEST(TrainCli, ASecondRunWaitsForTheFirstToFinishTheDefault) {
  // While one slm holds the default model's lock (here: flock(1), which then
  // puts a model in place), another waits and runs what the first made.
  const std::string model = test::shared_data("models/stories260K/stories260K.gguf");
  SLM_REQUIRE_DATA(model);
  // Without the corpus slm stops before it takes the lock.
  if (!file_exists("/usr/share/games/fortunes/fortunes")) GTEST_SKIP() << "the fortunes package is not installed";
  const std::string cache = (fs::temp_directory_path() / ("slm_cache_lock_" + std::to_string(getpid()))).string();
  fs::remove_all(cache);
  fs::create_directories(cache + "/default-fortunes-v1");
  std::string out;
  const std::string cmd = "(flock " + cache + "/default-fortunes-v1/lock -c 'sleep 1; cp " + model + " " + cache +
                          "/default-fortunes-v1.gguf') & sleep 0.3; SLM_CACHE_DIR=" + cache + " " + test::slm_binary() +
                          " run --prompt-ids 1 -n 5 --temp 0 --print-ids --ignore-eos 2>" + cache + "/err; wait";
  EXPECT_EQ(test::run_command(cmd, &out), 0) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), ' '), 4) << out;
  auto err = read_file(cache + "/err");
  EXPECT_NE(err->find("waiting"), std::string::npos) << *err;
  fs::remove_all(cache);
}

}  // namespace
}  // namespace slm
