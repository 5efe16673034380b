// Pruning of a GGUF model's block weights (attention and feed-forward
// matrices; embeddings, output and norms are kept):
//
// - magnitude: drop the smallest |W| of each output row;
// - wanda: drop the smallest |W_ij| * ||X_j|| of each output row (Sun et al.
//   2023), ||X_j|| from a calibration text;
// - sparsegpt: SparseGPT's reconstruction while pruning (obs.h);
// - ffn (structured): every layer drops the same share of feed-forward
//   channels, those of smallest ||X_c|| * ||W_down[:, c]||, which removes
//   rows of ffn_gate/ffn_up and columns of ffn_down: a smaller model with a
//   smaller feed_forward_length that runs faster. Where n_ff is whole blocks
//   of 32, so is the number kept (the model still quantizes);
// - heads (structured): every layer drops the same share of key/value heads,
//   each with its query heads, those whose attention outputs score lowest
//   (||X_c|| * ||W_o[:, c]|| summed over the group); head counts are set;
// - layers (structured): the share of whole layers of least Block Influence
//   (1 - cos(layer input, layer output) on the calibration text, ShortGPT)
//   leave; the rest are renumbered and block_count set.
//
// Unstructured at a sparsity in [0, 1), or N:M (n of every m consecutive
// inputs dropped, e.g. 2:4). Pruned tensors are written as F32 (zeros in
// place, the layout unchanged); everything else is copied. The output is
// written atomically. Thread safety: no shared state.
#pragma once

#include <string>

#include "slm/compress/calibrate.h"
#include "slm/compress/obs.h"
#include "slm/compress/quantize.h"
#include "slm/core/status.h"

namespace slm::compress {

struct PruneOptions {
  std::string method = "magnitude";  // magnitude, wanda, sparsegpt, ffn, heads, layers
  double sparsity = 0.5;             // unstructured; ignored with a pattern
  std::string pattern;               // "N:M" or "" (unstructured)
  std::string calib;                 // wanda, sparsegpt (magnitude: reports the output error with it)
  CalibrationOptions calib_opt;
  CalibrationCallback calib_cb;
  ObsOptions obs;
};

// "2:4" -> {2, 4}; an error unless 0 < n < m <= 64.
Result<std::pair<int, int>> parse_nm_pattern(const std::string& s);

Result<QuantizeReport> prune_gguf(const std::string& in_path, const std::string& out_path, const PruneOptions& opt,
                                  const QuantizeCallback& cb = {});

}  // namespace slm::compress
