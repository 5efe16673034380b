// `slm train`: its flags and the call into libslm's trainer.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "slm/train/trainer.h"

class TrainCommand {
 public:
  explicit TrainCommand(CLI::App& app);
  bool chosen() const { return sub_->parsed(); }
  int run();

 private:
  CLI::App* sub_;
  slm::train::TrainOptions o_;
  std::string config_path_, schedule_ = "cosine";
  int64_t dim_ = 128, layers_ = 4, heads_ = 4, kv_heads_ = 0, ffn_ = 0, ctx_ = 0;
};
