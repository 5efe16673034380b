// `slm train`: pretraining a Llama decoder from scratch on text files.
//
// Packed fixed-length sequences are drawn at random offsets (a seeded RNG)
// from the first (1 - val_frac) of the token stream; validation loss is the
// mean over a fixed set of windows from the rest. Each step accumulates
// `accum` micro-batches, clips the global gradient norm, and takes an AdamW
// step at the schedule's learning rate. Every ckpt_every steps (and at the
// end) the checkpoint, loss.csv, loss.svg and model.gguf are written
// atomically into out_dir; --resume continues bit-identically from the
// checkpoint (same thread count).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/config.h"
#include "slm/train/optim.h"
#include "slm/train/schedule.h"

namespace slm::train {

struct TrainOptions {
  std::vector<std::string> data;
  std::string out_dir;
  std::string tokenizer = "byte";  // "byte", tokenizer.json, or a .gguf model
  model::ModelConfig model;        // n_vocab 0: taken from the tokenizer
  int64_t batch = 12, seq = 64, accum = 1;
  Schedule schedule;               // total = the number of steps
  AdamWOptions adam;
  double clip = 1.0;
  double val_frac = 0.1;
  int64_t eval_every = 250, eval_batches = 20, ckpt_every = 500, log_every = 10;
  bool bf16 = false, recompute = false, resume = false;
  int64_t stop_at = 0;  // > 0: stop after this step (with a checkpoint), to resume later
  uint64_t seed = 1337;
  int threads = 0;      // 0: all cores
};

struct TrainResult {
  int64_t step = 0;
  double train_loss = 0, val_loss = 0;
  double tokens_per_s = 0;  // this run's training tokens / wall time of its steps
  std::string gguf_path;
};

Status validate(const TrainOptions& opt);
Result<TrainResult> train(TrainOptions opt);

}  // namespace slm::train
