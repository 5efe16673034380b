// Export of a trained model to GGUF (llama architecture, F32 weights, the
// tokenizer inside), written atomically, so `slm run` and other GGUF readers
// load it. Byte-level training vocabularies become a GPT-2 style vocabulary
// of the 256 byte symbols with no merges (id = byte); other tokenizers go in
// as tokenizer/gguf_export.h writes them.
#pragma once

#include <string>

#include "slm/core/status.h"
#include "slm/train/data.h"
#include "slm/train/transformer.h"

namespace slm::train {

Status export_gguf(const Transformer<float>& model, const TrainTokenizer& tok, const std::string& path,
                   const std::string& name = "slm trained");

}  // namespace slm::train
