// Post-training quantization of a GGUF model into the formats of format.h
// (GGUF block types, and int4 / int8 with group size G stored in GGUF blocks).
//
// Methods: rtn (round to nearest; ggml's reference rounding for Q8_0, Q4_0,
// Q4_1, Q5_0, so that the blocks are byte-identical to llama-quantize's;
// the k-quants' scale search of kquant.h); imatrix (the k-quants' search
// weighted by each input channel's mean square on a calibration text,
// llama.cpp's importance matrix); gptq (obs.h) for the blocks' matrix
// products and the output projection, from Hessians of a calibration text
// (calibrate.h), the embeddings round to nearest; awq (awq.h) scales and
// clips before rounding to nearest. Type choice per tensor, as llama-quantize
// --pure does it (and as the reference files in
// ../shared/data/models/quant-ref were made): every 2-D weight whose row
// length is a multiple of the block size gets the target type, token
// embedding and output projection included; 1-D tensors (norms, biases)
// keep their type (F32); a type no matrix can take is an error. All metadata is copied; general.file_type and
// general.quantization_version are set for the new type. Keys and tensors are
// written in llama-quantize's order (tensors outside the blocks, then block by
// block, by name), so the files equal its output byte for byte. The output is
// written atomically (temp file, fsync, rename).
//
// Thread safety: no shared state; rows are quantized in parallel (OpenMP).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "slm/compress/calibrate.h"
#include "slm/compress/format.h"
#include "slm/compress/obs.h"
#include "slm/core/dtype.h"
#include "slm/core/status.h"

namespace slm::compress {

struct QuantizeOptions {
  QuantFormat format;          // format.h (gptq: not the k-quants; imatrix: only the k-quants)
  std::string method = "rtn"; // rtn, imatrix, gptq (block weights from calibration; the rest rtn) or awq (awq.h)
  std::string calib;          // imatrix, gptq, awq: calibration text (rtn: for the error report)
  CalibrationOptions calib_opt;
  CalibrationCallback calib_cb;
  ObsOptions obs;
  // Tensors kept as they are (mixed types): names starting with any of
  // these, e.g. "token_embd", "output." (output.weight), "blk.0.".
  std::vector<std::string> keep;
};

// What happened to one tensor (for the summary table).
struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // outermost first
  std::string from, to;        // type names
  uint64_t bytes_in = 0, bytes_out = 0;
  double rmse = 0;             // of the dequantized weights against the source (0 if kept)
  // With calibration, the layer's relative output error on it
  // (tr(D H D^T) / tr(W H W^T), obs.h): of this method and of rtn; -1 without.
  double err = -1, err_rtn = -1;
  double zeros = 0;            // share of zero weights written (pruning)
};

struct QuantizeReport {
  std::vector<TensorPlan> tensors;
  uint64_t bytes_in = 0, bytes_out = 0;  // tensor data
};

// llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*) for a target type.
uint32_t llama_file_type(DType t);

// Called after each tensor with (tensors done, tensors in all).
using QuantizeCallback = std::function<void(int64_t done, int64_t total)>;

Result<QuantizeReport> quantize_gguf(const std::string& in_path, const std::string& out_path,
                                     const QuantizeOptions& opt, const QuantizeCallback& cb = {});

}  // namespace slm::compress
