// bf16 storage for the CUDA kernels (device functions only: every kernel family includes it;
// the cast kernels live in kernels/cast.cuh, which only gemm_cuda.cc includes): conversions written with integer bit operations so the
// same source gives the same bits under nvcc and under the SIMT emulation (and matches
// engine/dtype.h's float_to_bf16: round to nearest even, NaN kept quiet). A bf16 value is a
// uint16_t in memory, which is what cuBLASLt's CUDA_R_16BF and __nv_bfloat16 store.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"
#include "kernels/simt/simt.h"

namespace la3::kernels {

LA3_HOST_DEVICE uint32_t float_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

LA3_HOST_DEVICE float bits_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

LA3_HOST_DEVICE uint16_t to_bf16_bits(float value) {
  const uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

LA3_HOST_DEVICE float from_bf16_bits(uint16_t bits) { return bits_float(static_cast<uint32_t>(bits) << 16); }

// The value a bf16 round trip leaves (what a bf16 GEMM input holds).
LA3_HOST_DEVICE float round_to_bf16(float value) { return from_bf16_bits(to_bf16_bits(value)); }

// Activation storage (engine/backend_ops.h, `DType act`): a kernel that touches activations is
// a template over their element type T, float (f32) or uint16_t (bf16 bits), and does all of
// its arithmetic in fp32 between one load_act and one store_act per element, so the bf16
// instantiation rounds once per stored value (what torch.autocast's bf16 kernels do).
LA3_HOST_DEVICE float load_act(const float* p, int64_t i) { return p[i]; }
LA3_HOST_DEVICE float load_act(const uint16_t* p, int64_t i) { return from_bf16_bits(p[i]); }
LA3_HOST_DEVICE void store_act(float* p, int64_t i, float value) { p[i] = value; }
LA3_HOST_DEVICE void store_act(uint16_t* p, int64_t i, float value) { p[i] = to_bf16_bits(value); }

}  // namespace la3::kernels
