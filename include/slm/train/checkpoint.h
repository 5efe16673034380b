// Training checkpoints: one safetensors file holding the weights (F32, GGUF
// names), the AdamW moments ("adam.m.<name>", "adam.v.<name>") and, in its
// metadata under "slm.train_state", a JSON object with the model config, the
// step, the data sampler's RNG state and the run's options. One file, written
// atomically (temp, fsync, rename): a crash while writing leaves the previous
// checkpoint whole. See docs/formats/checkpoint.md.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "slm/core/status.h"
#include "slm/train/optim.h"
#include "slm/train/transformer.h"

namespace slm::train {

// model::ModelConfig <-> the JSON the checkpoint and `slm train --config` use:
// {"vocab", "dim", "layers", "heads", "kv_heads", "ffn", "ctx", "rope_theta", "norm_eps"}.
nlohmann::json config_to_json(const model::ModelConfig& cfg);
Result<model::ModelConfig> config_from_json(const nlohmann::json& j);

Status save_checkpoint(const std::string& path, const Transformer<float>& model, AdamW& opt,
                       const nlohmann::json& state);
// The state JSON of a checkpoint, validated as far as the file goes.
Result<nlohmann::json> read_checkpoint_state(const std::string& path);
// Fills a model built from the checkpoint's config, and the optimizer's moments and step count.
Status load_checkpoint(const std::string& path, Transformer<float>& model, AdamW& opt);

}  // namespace slm::train
