// The CPU backend: the readable fp32 reference every other backend is checked against.
// GEMM goes to OpenBLAS; each op's loops live in engine/cpu/<op>_cpu.cc.
#pragma once

#include "engine/backend.h"
#include "engine/error.h"

namespace la3 {

class CpuBackend final : public Backend {
 public:
  Device device() const override;
  std::string name() const override;
  // The kernel methods (engine/backend_ops.h), one file per op: engine/cpu/<op>_cpu.cc.
#define LA3_BACKEND_OP(return_type, name, parameters) return_type name parameters override;
#include "engine/backend_ops.h"
  using Backend::sum_of_squares;
};

// The CPU backend computes activations in f32 (bf16 activations are a feature of the CUDA
// devices, docs/ARCHITECTURE.md, Precision): a method given another activation type refuses
// it, naming itself, instead of reading bf16 bits as floats.
inline void require_f32_activations(const char* op, DType act) {
  if (act != DType::kF32) {
    Fail(ErrorKind::kUnimplemented, op, ": the cpu backend computes activations in f32, got ", dtype_name(act),
         " (bf16 activations run on cuda and cuda-emu)");
  }
}

// Threads OpenBLAS and the OpenMP loops may use (0 = leave the library defaults).
void set_cpu_threads(int threads);

}  // namespace la3
