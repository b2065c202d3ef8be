// The CPU backend: the readable fp32 reference every other backend is checked against.
// GEMM goes to OpenBLAS; each op's loops live in engine/cpu/<op>_cpu.cc.
#pragma once

#include "engine/backend.h"

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

// Threads OpenBLAS and the OpenMP loops may use (0 = leave the library defaults).
void set_cpu_threads(int threads);

}  // namespace la3
