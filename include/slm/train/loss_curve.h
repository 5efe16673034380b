// The loss curve of a training run: rows of (step, lr, train loss, val loss),
// kept as a CSV beside the checkpoint and drawn as an SVG line chart (train
// and validation loss against the step). Pure functions of their inputs.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "slm/core/status.h"

namespace slm::train {

struct LossPoint {
  int64_t step = 0;
  double lr = 0;
  double train_loss = NAN;  // NAN where not measured
  double val_loss = NAN;
};

std::string loss_csv(const std::vector<LossPoint>& pts);
// Parses what loss_csv wrote (a resumed run continues its curve).
Result<std::vector<LossPoint>> parse_loss_csv(const std::string& text);
std::string loss_svg(const std::vector<LossPoint>& pts, const std::string& title);

}  // namespace slm::train
