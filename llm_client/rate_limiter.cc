#include "llm_client/rate_limiter.h"

#include <algorithm>

namespace la3::llm {

RateLimiter::RateLimiter(double per_minute, double burst) {
  if (per_minute <= 0) return;
  rate_per_second_ = per_minute / 60.0;
  burst_ = burst > 0 ? burst : std::max(1.0, rate_per_second_);
  level_ = burst_;
}

void RateLimiter::refill(Clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  const double seconds = std::chrono::duration<double>(now - last_).count();
  if (seconds > 0) {
    level_ = std::min(burst_, level_ + seconds * rate_per_second_);
    last_ = now;
  }
}

double RateLimiter::level(Clock::time_point now) {
  refill(now);
  return level_;
}

bool RateLimiter::try_acquire(double cost, Clock::time_point now) {
  if (unlimited()) return true;
  refill(now);
  if (level_ < std::min(cost, burst_)) return false;
  level_ -= cost;
  return true;
}

double RateLimiter::seconds_until_available(double cost, Clock::time_point now) {
  if (unlimited()) return 0;
  refill(now);
  const double needed = std::min(cost, burst_) - level_;
  return needed <= 0 ? 0 : needed / rate_per_second_;
}

void RateLimiter::adjust(double units) {
  if (unlimited()) return;
  level_ = std::min(burst_, level_ + units);
}

}  // namespace la3::llm
