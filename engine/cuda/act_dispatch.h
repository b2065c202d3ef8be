// The activation element type a CUDA backend method was given (engine/backend_ops.h, `DType act`)
// turned into the kernel template argument: f32 -> float, bf16 -> uint16_t (bf16 bits, what
// cuBLASLt's CUDA_R_16BF and __nv_bfloat16 store). Usage:
//   with_act_type("add_forward", act, [&](auto tag) {
//     using T = decltype(tag);
//     kernels::launch_add(StreamLaunch{stream_}, p, static_cast<const T*>(a), ...);
//   });
#pragma once

#include <cstdint>

#include "engine/dtype.h"
#include "engine/error.h"

namespace la3 {

template <typename F>
void with_act_type(const char* op, DType act, F&& body) {
  switch (act) {
    case DType::kF32: body(float{}); return;
    case DType::kBF16: body(uint16_t{}); return;
    default: break;
  }
  Fail(ErrorKind::kInvalidArgument, op, ": activations must be f32 or bf16, got ", dtype_name(act));
}

}  // namespace la3
