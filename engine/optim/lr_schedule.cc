#include "engine/optim/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace la3 {

double LrSchedule::lr_at(int64_t step) const {
  const double n = static_cast<double>(step + 1);  // steps counted from 1
  if (warmup_steps > 0 && step < warmup_steps) return peak_lr * n / static_cast<double>(warmup_steps);
  switch (kind) {
    case ScheduleKind::kConstant:
    case ScheduleKind::kConstantWithWarmup:
      return peak_lr;
    case ScheduleKind::kInverseSqrt:
      return peak_lr * std::sqrt(static_cast<double>(std::max<int64_t>(warmup_steps, 1)) / n);
    case ScheduleKind::kLinearDecay: {
      const double span = static_cast<double>(std::max<int64_t>(total_steps - warmup_steps, 1));
      return peak_lr * std::max(0.0, 1.0 - (static_cast<double>(step - warmup_steps)) / span);
    }
  }
  return peak_lr;
}

absl::StatusOr<ScheduleKind> parse_schedule_kind(const std::string& name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "constant_with_warmup") return ScheduleKind::kConstantWithWarmup;
  if (name == "inverse_sqrt") return ScheduleKind::kInverseSqrt;
  if (name == "linear") return ScheduleKind::kLinearDecay;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown schedule '", name, "': expected constant, constant_with_warmup, inverse_sqrt or linear"));
}

std::string schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::kConstant:
      return "constant";
    case ScheduleKind::kConstantWithWarmup:
      return "constant_with_warmup";
    case ScheduleKind::kInverseSqrt:
      return "inverse_sqrt";
    case ScheduleKind::kLinearDecay:
      return "linear";
  }
  return "linear";
}

}  // namespace la3
