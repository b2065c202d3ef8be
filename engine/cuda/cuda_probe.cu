#include "engine/cuda/cuda_probe.h"

#include <cuda_runtime.h>

namespace la3 {

CudaProbe probe_cuda_devices() {
  CudaProbe probe;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    probe.message = cudaGetErrorString(status);
    cudaGetLastError();  // clear the sticky error so later runtime calls start clean
    return probe;
  }
  probe.device_count = count;
  if (count == 0) probe.message = "no CUDA device";
  return probe;
}

const char* cuda_compiled_architectures() { return LA3_CUDA_ARCHS_STRING; }

}  // namespace la3
