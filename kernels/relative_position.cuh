// T5 relative position buckets, as transformers' T5Attention._relative_position_bucket.
//
// relative_position = key_position - query_position. Bidirectional (encoder): half the
// buckets for keys after the query, half for keys before. Causal (decoder): only keys at or
// before the query get distinct buckets (future keys land in bucket 0 and are masked anyway).
// The first half of the buckets of each side are exact distances; the rest grow
// logarithmically up to max_distance, beyond which everything shares the last bucket.
//
// The log term is evaluated in float32 with the same operation order as the PyTorch code
// (float division, logf, division by a float32-rounded log(max_distance / max_exact),
// multiplication, truncation) so bucket boundaries agree exactly with transformers.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"

namespace la3::kernels {

LA3_HOST_DEVICE int t5_relative_position_bucket(int relative_position, bool bidirectional,
                                                int num_buckets, int max_distance) {
  int bucket = 0;
  int distance;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    distance = relative_position < 0 ? -relative_position : relative_position;
  } else {
    distance = relative_position < 0 ? -relative_position : 0;
  }
  const int max_exact = num_buckets / 2;
  if (distance < max_exact) return bucket + distance;
  // torch: log(rp.float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact)
  // The Python float math.log(...) is a double that torch rounds to float32 for the division.
  const float log_ratio = static_cast<float>(
      std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)));
  const float scaled = logf(static_cast<float>(distance) / static_cast<float>(max_exact)) / log_ratio *
                       static_cast<float>(num_buckets - max_exact);
  int large = max_exact + static_cast<int>(scaled);
  if (large > num_buckets - 1) large = num_buckets - 1;
  return bucket + large;
}

}  // namespace la3::kernels
