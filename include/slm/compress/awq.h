// AWQ (Lin et al. 2023, arXiv:2306.00978): activation-aware scaling before
// round-to-nearest. For each input site whose producer can absorb a
// per-channel scale, the weights reading it are quantized as Q(W diag(s))
// and the producer divides by s: attn_in and ffn_in fold into the RMSNorm
// weight before them, ffn_down into ffn_up's rows (h = silu(gate) * up),
// output (the output projection) into the final RMSNorm weight.
// s_j = rms(x_j)^alpha (normalized by sqrt(max * min)), alpha searched on a
// grid of 20 for the smallest summed relative output error on the
// calibration Hessians (obs.h output_error); alpha = 0 is plain RTN, so the
// search never does worse than RTN on the calibration text. Then, as the
// reference implementation's auto_clip does, each group's weights are
// clipped to the ratio of their largest magnitude (1, 0.95, ..., 0.55) of
// least output error on the calibration inputs (awq_clip).
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "slm/compress/calibrate.h"
#include "slm/compress/format.h"
#include "slm/core/dtype.h"
#include "slm/core/status.h"
#include "slm/io/gguf.h"

namespace slm::compress {

struct AwqSite {
  std::vector<float> scale;  // (n): weights' columns are multiplied by it, the producer divided
  double alpha = 0;
};

// By site ("blk.L.attn_in", ...). Sites whose weights the blocks of f do not
// divide are left out. Only RMSNorm models without (1 + w) norms (Llama family).
Result<std::map<std::string, AwqSite>> awq_search(const io::GgufFile& in, const Calibration& cal, const QuantFormat& f);

// In place on w (rows, cols; as it will be rounded, i.e. already scaled): per
// row and group of f (f.group_size), clamps the weights to [-r a, r a], a
// their largest magnitude, r the ratio on the grid of least output error
// d^T H_g d (d: the group's weights minus their round to nearest; H_g: the
// group's block of h, the Hessian of w's inputs in w's terms). Formats
// without groups (the k-quants) are left as they are.
void awq_clip(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& h, const QuantFormat& f);

}  // namespace slm::compress
