// Device selection and process setup, for the code above the engine (model/, apps/, bench/,
// dist/): which device a command runs on (docs/CUDA.md) and how many threads the CPU backend
// uses. It is the whole of what those layers need from the backends besides engine/backend.h,
// so none of them includes engine/cpu/ or engine/cuda/ internals.
//
// `auto` picks `cuda` when a GPU is usable and `cpu` otherwise; `cpu`, `cuda`, `cuda:N` and
// `cuda-emu` are taken as asked. Asking for `cuda` without a GPU (or in a build without CUDA)
// is a clear error naming the runtime's reason, never a crash.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/device.h"

namespace la3 {

struct DeviceChoice {
  Device device;
  std::string note;  // why `auto` chose what it chose ("" when the device was explicit)
};

// Parses `requested` and registers the backend of the chosen device (library la3_devices,
// which links the CUDA backends, so code that only computes on the cpu need not).
absl::StatusOr<DeviceChoice> activate_device(std::string_view requested);

// The same for one rank of a data-parallel run of `world_size` processes: one GPU per rank,
// so `cuda` (or `auto` finding a GPU) means cuda:<local_rank>, the rank's place on its node.
absl::StatusOr<DeviceChoice> activate_rank_device(std::string_view requested, int world_size, int local_rank);

// Threads OpenBLAS and the OpenMP loops of the CPU backend may use (0 = leave the library
// defaults). Defined with the CPU backend, in la3_engine; declared here so that callers
// need not include the backend's own header.
void set_cpu_threads(int threads);

}  // namespace la3
