// AWQ (Lin et al. 2023, arXiv:2306.00978): activation-aware scaling before
// round-to-nearest. For each input site whose producer can absorb a
// per-channel scale, the weights reading it are quantized as Q(W diag(s))
// and the producer divides by s: attn_in and ffn_in fold into the RMSNorm
// weight before them, ffn_down into ffn_up's rows (h = silu(gate) * up).
// s_j = rms(x_j)^alpha (normalized by sqrt(max * min)), alpha searched on a
// grid of 20 for the smallest summed relative output error on the
// calibration Hessians (obs.h output_error); alpha = 0 is plain RTN, so the
// search never does worse than RTN on the calibration text.
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

}  // namespace slm::compress
