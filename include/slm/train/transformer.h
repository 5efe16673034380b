// The trainable Llama decoder: the parameters of a ModelConfig as autograd
// leaves, named as GGUF names them (token_embd.weight, blk.N.attn_q.weight,
// ...), and the forward pass of model/llama.h expressed in autograd ops:
// RMSNorm -> q/k/v -> rotary (GGUF's interleaved pairs) -> causal grouped-query
// attention -> output projection -> residual -> RMSNorm -> SwiGLU -> residual,
// final norm, output projection. tests/train holds its logits equal to the
// inference Model's on the same weights, so training and inference agree.
// TODO: this restates model/llama.cpp's block in autograd ops; the equality
// test guards it, but one definition both paths trace would remove the copy.
//
// Not thread-safe; the ops use OpenMP threads internally.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/config.h"
#include "slm/train/autograd.h"

namespace slm::train {

// Checks that a config is one this trainer builds: a plain Llama decoder
// (untied output, no biases, rotary over the whole head, no window).
Status check_trainable(const model::ModelConfig& cfg);

template <class T>
class Transformer {
 public:
  // Fresh weights: N(0, 0.02), the residual output projections scaled by
  // 1/sqrt(2 * n_layer) (GPT-2), norms at 1. Deterministic in seed.
  static Result<Transformer> create(const model::ModelConfig& cfg, uint64_t seed);

  const model::ModelConfig& config() const { return cfg_; }
  // Every parameter with its GGUF name, in a fixed order.
  const std::vector<std::pair<std::string, Var<T>>>& params() const { return params_; }
  int64_t n_params() const;

  // tokens (batch * seq): `batch` sequences of `seq` tokens, each at positions
  // 0..seq-1. recompute: keep only each block's input, recompute the rest in
  // the backward pass (activation checkpointing).
  Var<T> logits(Tape<T>& tape, const std::vector<int32_t>& tokens, int64_t batch, int64_t seq,
                bool recompute = false) const;
  // Mean next-token cross-entropy; targets[i] < 0 is ignored.
  Var<T> loss(Tape<T>& tape, const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, int64_t batch,
              int64_t seq, bool recompute = false) const;
  // One block on x (batch * seq, n_embd).
  Var<T> block(Tape<T>& tape, int64_t layer, const Var<T>& x, int64_t batch, int64_t seq) const;

 private:
  explicit Transformer(const model::ModelConfig& cfg) : cfg_(cfg), freqs_(cfg.rope_freqs()) {}
  const Var<T>& p(const std::string& name) const;

  model::ModelConfig cfg_;
  std::vector<float> freqs_;
  std::vector<std::pair<std::string, Var<T>>> params_;
};

}  // namespace slm::train
