// A token bucket for client-side rate limits (requests/minute, tokens/minute).
//
// The bucket holds at most `burst` units and refills at `per_minute / 60` units a second.
// A request is admitted while the level is at least min(cost, burst); its cost is then
// taken even if the level goes negative (a debt the refill pays back), so a single
// request larger than the burst still runs and the long-run rate holds. Costs that are
// only estimates (tokens before the reply is known) are corrected with adjust().
// Not thread-safe: the client's event loop owns it.
#pragma once

#include <chrono>

namespace la3::llm {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // per_minute <= 0: unlimited. burst <= 0: one second's worth (at least 1).
  explicit RateLimiter(double per_minute = 0, double burst = 0);

  bool unlimited() const { return rate_per_second_ <= 0; }
  // Whether a request of `cost` may start now; if so, charges it.
  bool try_acquire(double cost, Clock::time_point now);
  // Seconds until try_acquire(cost) would succeed (0 when it would now).
  double seconds_until_available(double cost, Clock::time_point now);
  // Adds `units` back (positive: the estimate was too high; negative: too low).
  void adjust(double units);
  double level(Clock::time_point now);

 private:
  void refill(Clock::time_point now);

  double rate_per_second_ = 0, burst_ = 0, level_ = 0;
  Clock::time_point last_{};
  bool started_ = false;
};

}  // namespace la3::llm
