// IEEE half -> float for the checkpoint readers: weights saved in f16 (safetensors F16,
// torch.HalfStorage) are widened to f32 on load. Exact: every half is a float.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace la3 {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  float magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // zero or subnormal
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  }
  uint32_t bits;
  std::memcpy(&bits, &magnitude, sizeof bits);
  bits |= sign;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

}  // namespace la3
