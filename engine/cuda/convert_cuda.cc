// CudaBackend: f32 <-> bf16 conversion on the device (kernels/cast.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/cast.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

void CudaBackend::convert(int64_t count, DType from, const void* in, DType to, void* out) {
  with_act_type("convert", from, [&](auto from_tag) {
    using From = decltype(from_tag);
    with_act_type("convert", to, [&](auto to_tag) {
      using To = decltype(to_tag);
      kernels::launch_convert(StreamLaunch{stream_}, count, static_cast<const From*>(in), static_cast<To*>(out));
    });
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
