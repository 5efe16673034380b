// The embedded default model: what `slm run` runs when no model is given. A
// small byte-level Llama trained by slm's own trainer on the Debian `fortunes`
// corpus (/usr/share/games/fortunes, installed by scripts/setup.sh) on first
// use, a couple of minutes on 2 cores, then cached as a GGUF in
// $SLM_CACHE_DIR (default $XDG_CACHE_HOME/slm, else ~/.cache/slm). An
// interrupted first run resumes from its last checkpoint.
#pragma once

#include <string>
#include <vector>

#include "slm/core/status.h"
#include "slm/train/trainer.h"

namespace slm::train {

// The recipe (model shape, schedule) for the given corpus files and folder.
TrainOptions default_model_recipe(const std::vector<std::string>& corpus, const std::string& dir);
// The corpus: every fortune file (the text ones, not the .dat indexes), sorted.
Result<std::vector<std::string>> default_corpus();
// Path of the cached default GGUF, training it first when it is absent.
Result<std::string> ensure_default_model(int threads = 0);

}  // namespace slm::train
