// try_register_cuda_backend for builds without the CUDA toolkit (LA3_WITH_CUDA=OFF or no
// nvcc): the `cuda` device does not exist in them.
#include "engine/cuda/cuda_devices.h"

namespace la3 {

bool try_register_cuda_backend(std::string* why_not) {
  if (why_not != nullptr) *why_not = "this build has no CUDA support (configured without the CUDA toolkit)";
  return false;
}

}  // namespace la3
