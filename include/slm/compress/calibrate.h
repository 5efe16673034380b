// Calibration: what every linear layer of a model reads over a calibration
// text, as the statistics GPTQ, SparseGPT and Wanda need: per input site
// (the input shared by the weights that read it, e.g. attn_q/k/v) the
// Hessian H = sum over tokens of x x^T; Wanda's ||X_j||_2 is sqrt(H_jj).
//
// The text is cut into windows of n_ctx tokens (BOS first, as perplexity
// does), run through the model with an observer on its matrix products.
// Thread safety: calibrate sets the model's observer for its duration (and
// clears it): no other call may use the model meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "slm/core/status.h"
#include "slm/model/llama.h"

namespace slm::compress {

struct InputStats {
  int64_t n = 0;            // input width
  int64_t n_tok = 0;        // tokens seen
  std::vector<double> xtx;  // (n, n): sum of x x^T over the tokens
  std::vector<float> norms() const;  // (n): ||X_j||_2 = sqrt(H_jj)
};

struct Calibration {
  // By site: "blk.L.attn_in", "blk.L.attn_output", "blk.L.ffn_in", "blk.L.ffn_down",
  // and "output" (the output projection's input, after the final norm).
  std::map<std::string, InputStats> sites;
  int64_t n_tokens = 0;
  // Per layer, 1 - the mean cosine similarity of its input and output
  // hidden states (ShortGPT's Block Influence, arXiv:2403.03853).
  std::vector<double> layer_influence;
  // The statistics of the input that GGUF weight `tensor` reads
  // ("blk.3.attn_q.weight" -> "blk.3.attn_in", "output.weight" -> "output");
  // nullptr for the others (embeddings, norms).
  const InputStats* for_weight(const std::string& tensor) const;
};

// The site whose input GGUF weight `tensor` reads ("blk.3.attn_q.weight" ->
// "blk.3.attn_in"), or "" for tensors outside the blocks' matrix products.
std::string input_site(const std::string& tensor);

struct CalibrationOptions {
  int64_t n_ctx = 256;        // window length
  int64_t max_tokens = 8192;  // stop after this many
};

using CalibrationCallback = std::function<void(int64_t layers_done, int64_t layers_total)>;

// tokens as tokenize_file gives them; bos replaces each window's first token
// (< 0: keep it). Needs at least one whole window. The model runs layer by
// layer over all windows; with compress, compress(l, cal) is called once
// layer l's statistics are in, and may change that layer's weights (the
// model's Weights must be the caller's, mutable): the later layers are then
// calibrated on the outputs of the compressed ones (sequential GPTQ / SparseGPT).
Result<Calibration> calibrate(model::Model& m, const std::vector<int32_t>& tokens, int32_t bos,
                              const CalibrationOptions& opt, const CalibrationCallback& cb = {},
                              const std::function<Status(int64_t layer, const Calibration& cal)>& compress = {});

// Called with layer l's statistics and that layer's weights (views), which it
// may point at its own compressed values (F32) for the layers after it.
using LayerCompressor = std::function<Status(int64_t layer, const Calibration& cal, model::LayerWeights& w)>;

// Opens the model at model_path (its own tokenizer), tokenizes calib_path and
// calibrates; errors name the file.
Result<Calibration> calibrate_file(const std::string& model_path, const std::string& calib_path,
                                   const CalibrationOptions& opt, const CalibrationCallback& cb = {},
                                   const LayerCompressor& compress = {});

}  // namespace slm::compress
