// Learning-rate schedules, named as transformers names them: constant (no warmup),
// constant_with_warmup (linear ramp, then constant), inverse_sqrt (ramp, then T5's original
// 1/sqrt decay) and linear (ramp, then linear decay to 0 at total_steps).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace la3 {

enum class ScheduleKind { kConstant, kConstantWithWarmup, kInverseSqrt, kLinearDecay };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  double peak_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // for kLinearDecay: lr reaches 0 here

  // lr for optimizer step `step` (0-based): warmup ramps linearly from peak/warmup to peak.
  double lr_at(int64_t step) const;
};

// "constant", "constant_with_warmup", "inverse_sqrt", "linear".
absl::StatusOr<ScheduleKind> parse_schedule_kind(const std::string& name);
std::string schedule_kind_name(ScheduleKind kind);

}  // namespace la3
