// Learning-rate schedules, as a pure function of the step (so a resumed run
// continues on the same curve).
//   cosine:   linear warmup to lr, then half a cosine down to min_lr at
//             total steps (and min_lr after).
//   wsd:      warmup-stable-decay (MiniCPM, arXiv 2404.06395): linear warmup,
//             constant lr, then over the last decay_frac of the steps an
//             exponential decay that reaches min_lr at the end.
//   constant: linear warmup, then lr.
#pragma once

#include <cstdint>
#include <string>

#include "slm/core/status.h"

namespace slm::train {

enum class ScheduleKind { kCosine, kWsd, kConstant };

struct Schedule {
  ScheduleKind kind = ScheduleKind::kCosine;
  double lr = 1e-3, min_lr = 1e-4;
  int64_t warmup = 0, total = 1;
  double decay_frac = 0.2;  // wsd only

  // Learning rate for step (0-based).
  double at(int64_t step) const;
  Status validate() const;
};

Result<ScheduleKind> parse_schedule(const std::string& name);

}  // namespace slm::train
