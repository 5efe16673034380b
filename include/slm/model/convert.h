// Writes a model slm has opened (a Hugging Face folder, a llama2.c file or a
// GGUF) as a GGUF file that llama.cpp's conventions describe: metadata keys
// `<arch>.embedding_length`, `<arch>.attention.head_count`, ...; tensors
// named token_embd.weight, blk.N.attn_q.weight, ...; Llama/Mistral q and k
// rows permuted to interleaved rotary pairs; Gemma's norm weights stored as
// 1 + w; GPT-2's Conv1D weights transposed to (out, in); fused projections
// (Phi-3 qkv and gate/up, GPT-2 c_attn) kept fused, as llama.cpp names them.
// Tensor types are kept (F32, F16, BF16; quantized GGUF tensors as they are),
// norms become F32. A tokenizer file beside the model goes in as GGUF
// tokenizer keys (tokenizer/gguf_export.h) when GGUF can describe it. The file
// is written atomically.
// Thread-safe: reads the source only.
#pragma once

#include <string>

#include "slm/core/status.h"
#include "slm/model/model_source.h"

namespace slm::model {

struct ConvertReport {
  int64_t n_tensors = 0;
  int64_t bytes = 0;
  std::string tokenizer_path;     // the tokenizer file beside the model, if any
  std::string tokenizer_skipped;  // why it is not embedded ("" when it is)
};

Result<ConvertReport> convert_to_gguf(const ModelSource& src, const std::string& out_path);

}  // namespace slm::model
