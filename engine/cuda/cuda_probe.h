// Asks the CUDA runtime which GPUs this process can use. Compiled only when CUDA is built;
// the header needs no CUDA include so CPU-only code can call it behind LA3_HAVE_CUDA_BUILD.
#pragma once

#include <string>

namespace la3 {

struct CudaProbe {
  int device_count = 0;
  std::string message;  // the runtime's error text when no device is usable
};

// Never throws: without a GPU or a driver, device_count is 0 and message says why
// (docs/BUILD.md pitfall 5: cudaGetDeviceCount fails and leaves its output untouched).
CudaProbe probe_cuda_devices();

// The architectures the CUDA code of this build was compiled for, e.g. "80-real;90-real;90-virtual".
const char* cuda_compiled_architectures();

}  // namespace la3
