#include "slm/train/default_model.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "slm/core/mapped_file.h"

namespace slm::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kCorpusDir = "/usr/share/games/fortunes";
constexpr const char* kName = "default-fortunes-v1";  // bump when the recipe changes

std::string cache_dir() {
  if (const char* d = std::getenv("SLM_CACHE_DIR"); d != nullptr && *d != '\0') return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d != nullptr && *d != '\0') return std::string(d) + "/slm";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.cache/slm";
  return (fs::temp_directory_path() / "slm-cache").string();
}

}  // namespace

TrainOptions default_model_recipe(const std::vector<std::string>& corpus, const std::string& dir) {
  TrainOptions o;
  o.data = corpus;
  o.out_dir = dir;
  o.tokenizer = "byte";
  model::ModelConfig& c = o.model;
  c.n_vocab = 256;
  c.n_embd = 128;
  c.n_layer = 4;
  c.n_head = 4;
  c.n_head_kv = 4;
  c.head_dim = 32;
  c.n_rot = 32;
  c.n_ff = 352;
  c.n_ctx_train = 256;
  o.seq = 256;
  o.batch = 8;
  o.schedule.kind = ScheduleKind::kCosine;
  o.schedule.total = 1200;
  o.schedule.warmup = 100;
  o.schedule.lr = 2e-3;
  o.schedule.min_lr = 2e-4;
  o.adam.beta2 = 0.99;
  o.val_frac = 0.05;
  o.eval_every = 200;
  o.eval_batches = 10;
  o.ckpt_every = 200;
  o.seed = 1;
  return o;
}

Result<std::vector<std::string>> default_corpus() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kCorpusDir, ec)) {
    if (e.is_regular_file() && !e.path().has_extension()) files.push_back(e.path().string());
  }
  if (files.empty())
    return Status::NotFound(fmt::format(
        "no model given, and the default model's corpus ({}, Debian package 'fortunes') is not installed: run "
        "scripts/setup.sh (or apt-get install fortunes), or give a MODEL", kCorpusDir));
  std::sort(files.begin(), files.end());
  return files;
}

Result<std::string> ensure_default_model(int threads) {
  const std::string root = cache_dir(), gguf = root + "/" + kName + ".gguf", dir = root + "/" + kName;
  if (file_exists(gguf)) return gguf;
  SLM_ASSIGN_OR_RETURN(std::vector<std::string> corpus, default_corpus());
  // One trainer at a time: a second `slm run` waits for the first, then finds the model.
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IoError(fmt::format("cannot create {}: {}", dir, ec.message()));
  const int lock = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) return Status::IoError(fmt::format("cannot open {}/lock: {}", dir, std::strerror(errno)));
  const std::unique_ptr<int, void (*)(int*)> unlock(new int(lock), [](int* fd) { ::close(*fd); delete fd; });
  if (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    std::fprintf(stderr, "slm: another slm is training the default model; waiting for it\n");
    if (::flock(lock, LOCK_EX) != 0) return Status::IoError(fmt::format("cannot lock {}/lock", dir));
  }
  if (file_exists(gguf)) return gguf;
  TrainOptions o = default_model_recipe(corpus, dir);
  o.threads = threads;
  o.resume = file_exists(dir + "/checkpoint.safetensors");
  std::fprintf(stderr, "slm: training the default model on the fortunes corpus into %s (once; about two minutes on "
               "2 cores; resumes if interrupted)\n", dir.c_str());
  SLM_ASSIGN_OR_RETURN(TrainResult r, train(o));
  std::fprintf(stderr, "slm: default model ready: validation loss %.3f nats/byte, %.0f tokens/s\n", r.val_loss,
               r.tokens_per_s);
  fs::rename(r.gguf_path, gguf, ec);
  if (ec) return Status::IoError(fmt::format("cannot move {} to {}: {}", r.gguf_path, gguf, ec.message()));
  return gguf;
}

}  // namespace slm::train
