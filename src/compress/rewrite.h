// Internal to compress: a GGUF model rewritten tensor by tensor (quantize,
// prune), keeping all metadata and llama-quantize's tensor order, written
// atomically. Not installed: the public calls are quantize_gguf and prune_gguf.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "slm/compress/calibrate.h"
#include "slm/compress/quantize.h"
#include "slm/io/gguf.h"

namespace slm::compress {

struct NewTensor {
  uint32_t ggml_type = 0;
  std::vector<uint8_t> bytes;
  std::vector<int64_t> shape;  // outermost first; empty: unchanged
  std::string name;            // empty: unchanged
  bool drop = false;           // leave the tensor out
};

// x as an F32 tensor (shape outermost first; empty: the source's).
NewTensor f32_tensor(const std::vector<float>& x, std::vector<int64_t> shape = {});

// Called per tensor (in writing order) with its stored view; returns the new
// type and bytes, or nullopt to copy it unchanged. It may fill p.rmse and p.err.
using TensorRewrite =
    std::function<Result<std::optional<NewTensor>>(const std::string& name, const TensorView& v, TensorPlan& p)>;

// set_u32: keys written last (in this order) with these values, instead of their copies.
Result<QuantizeReport> rewrite_gguf(const io::GgufFile& in, const std::string& out_path,
                                    const std::vector<std::pair<std::string, uint32_t>>& set_u32,
                                    const TensorRewrite& fn, const QuantizeCallback& cb);

// A tensor's values as F32 (rows * cols, row-major); an error names a
// quantized tensor (compress reads F32, F16 or BF16 weights).
Result<std::vector<float>> float_weights(const std::string& name, const TensorView& v);

// One tensor's rewrite given the statistics of its input (nullptr: none);
// when values is not null and the tensor is rewritten, its new values as F32
// (rows * cols) go there, for the layers calibrated after it.
using WeightRewrite = std::function<Result<std::optional<NewTensor>>(
    const std::string& name, const TensorView& v, const InputStats* s, TensorPlan& p, std::vector<float>* values)>;

// Results of a sequential calibration, by tensor name.
struct Sequential {
  std::map<std::string, std::pair<NewTensor, TensorPlan>> done;
  std::map<std::string, std::vector<float>> values;  // what the model read meanwhile
};

// Calibrates layer by layer, rewriting each layer's matrix products with
// `one` as soon as their statistics are in (into seq), so that each layer's
// statistics come from the outputs of the rewritten layers before it.
Result<Calibration> calibrate_sequential(const io::GgufFile& in, const std::string& in_path, const std::string& calib,
                                         const CalibrationOptions& opt, const CalibrationCallback& cb,
                                         const WeightRewrite& one, Sequential* seq);

// For rewrite_gguf: the tensors in seq as they were rewritten, the others through one.
TensorRewrite with_sequential(Sequential& seq, const Calibration& cal, const WeightRewrite& one);

}  // namespace slm::compress
