#include "slm/train/schedule.h"

#include <cmath>

#include <fmt/format.h>

namespace slm::train {

double Schedule::at(int64_t step) const {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  switch (kind) {
    case ScheduleKind::kConstant: return lr;
    case ScheduleKind::kCosine: {
      if (step >= total) return min_lr;
      const double p = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
      return min_lr + 0.5 * (1 + std::cos(M_PI * p)) * (lr - min_lr);
    }
    case ScheduleKind::kWsd: {
      const int64_t decay_steps = std::max<int64_t>(1, static_cast<int64_t>(std::llround(decay_frac * total)));
      const int64_t decay_start = total - decay_steps;
      if (step < decay_start) return lr;
      if (step >= total - 1) return min_lr;
      const double p = static_cast<double>(step - decay_start) / static_cast<double>(decay_steps - 1);
      return lr * std::pow(min_lr / lr, p);
    }
  }
  return lr;
}

Status Schedule::validate() const {
  if (!(lr > 0 && std::isfinite(lr))) return Status::InvalidArgument(fmt::format("[train] lr is {}, expected > 0", lr));
  if (!(min_lr >= 0 && min_lr <= lr))
    return Status::InvalidArgument(fmt::format("[train] min lr is {}, expected 0..lr ({})", min_lr, lr));
  if (kind == ScheduleKind::kWsd && min_lr <= 0)
    return Status::InvalidArgument("[train] the wsd schedule decays exponentially: min lr must be > 0");
  if (total < 1) return Status::InvalidArgument(fmt::format("[train] steps is {}, expected >= 1", total));
  if (warmup < 0 || warmup > total)
    return Status::InvalidArgument(fmt::format("[train] warmup is {}, expected 0..steps ({})", warmup, total));
  if (!(decay_frac > 0 && decay_frac <= 1))
    return Status::InvalidArgument(fmt::format("[train] decay fraction is {}, expected (0, 1]", decay_frac));
  return Status::Ok();
}

Result<ScheduleKind> parse_schedule(const std::string& name) {
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "wsd") return ScheduleKind::kWsd;
  if (name == "constant") return ScheduleKind::kConstant;
  return Status::InvalidArgument(fmt::format("[train] unknown schedule '{}' (cosine, wsd, constant)", name));
}

}  // namespace slm::train
