// Bringing up the CUDA devices. Plain C++ (no CUDA include), so any code can call it.
#pragma once

#include <string>

namespace la3 {

// The real `cuda` device (ordinal 0). Returns false, with the runtime's reason, when there is
// no usable GPU or the build has no CUDA; never throws, never exits. Only builds with
// LA3_HAVE_CUDA define it (engine/cuda/cuda_devices_stub.cc covers the others).
bool try_register_cuda_backend(std::string* why_not);

// The `cuda-emu` device: the same backend under the SIMT emulation. Idempotent.
void register_cuda_emu_backend();

}  // namespace la3
