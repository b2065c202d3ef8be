// Element types of a Tensor and the bf16 <-> f32 conversion the CPU backend uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace la3 {

enum class DType : uint8_t { kF32, kBF16, kI32, kI64 };

// Size of one element in bytes.
constexpr size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
  }
  return 0;
}

// "f32", "bf16", "i32", "i64" (the names safetensors uses are F32, BF16, I32, I64).
const char* dtype_name(DType dtype);

constexpr bool is_floating(DType dtype) { return dtype == DType::kF32 || dtype == DType::kBF16; }
constexpr bool is_integer(DType dtype) { return dtype == DType::kI32 || dtype == DType::kI64; }

// bfloat16 storage: the upper 16 bits of an IEEE float32.
struct bf16 {
  uint16_t bits;
};

// Round-to-nearest-even, as torch and __float2bfloat16_rn do; NaN stays a quiet NaN.
inline bf16 float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return bf16{static_cast<uint16_t>((bits >> 16) | 0x0040u)};
  }
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return bf16{static_cast<uint16_t>((bits + rounding_bias) >> 16)};
}

inline float bf16_to_float(bf16 value) {
  const uint32_t bits = static_cast<uint32_t>(value.bits) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

// Maps a C++ element type to its DType (used by Tensor::data<T>() checks).
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::kF32; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::kBF16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::kI32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::kI64; };

}  // namespace la3
