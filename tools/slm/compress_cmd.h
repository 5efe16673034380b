// `slm quantize` and `slm prune`: their flags, progress bars and summary
// tables around libslm's compress layer.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "slm/compress/prune.h"
#include "slm/compress/quantize.h"

class QuantizeCommand {
 public:
  explicit QuantizeCommand(CLI::App& app);
  bool chosen() const { return sub_->parsed(); }
  int run();

 private:
  CLI::App* sub_;
  std::string model_, type_, out_;
  int64_t group_ = -1;  // not given
  int threads_ = 0;
  slm::compress::QuantizeOptions o_;
};

class PruneCommand {
 public:
  explicit PruneCommand(CLI::App& app);
  bool chosen() const { return sub_->parsed(); }
  int run();

 private:
  CLI::App* sub_;
  std::string model_, out_;
  int threads_ = 0;
  slm::compress::PruneOptions o_;
};
