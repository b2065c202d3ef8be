// Learning-rate schedules: linear warmup, then constant or inverse square root
// (T5's original schedule shape).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace la3 {

enum class ScheduleKind { kConstant, kInverseSqrt, kLinearDecay };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  double peak_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // for kLinearDecay: lr reaches 0 here

  // lr for optimizer step `step` (0-based): warmup ramps linearly from peak/warmup to peak.
  double lr_at(int64_t step) const;
};

// "constant", "inverse_sqrt", "linear".
absl::StatusOr<ScheduleKind> parse_schedule_kind(const std::string& name);

}  // namespace la3
