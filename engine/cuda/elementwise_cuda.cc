// CudaBackend: elementwise arithmetic, scale, axpy and fill on f32 or bf16 activations
// (kernels/elementwise.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/elementwise.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

template <typename T> const T* as(const void* p) { return static_cast<const T*>(p); }
template <typename T> T* as(void* p) { return static_cast<T*>(p); }

void CudaBackend::add_forward(const kernels::BinaryParams& p, DType act, const void* a, const void* b, void* out) {
  with_act_type("add_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_add(StreamLaunch{stream_}, p, as<T>(a), as<T>(b), as<T>(out));
  });
}
void CudaBackend::add_backward(const kernels::BinaryParams& p, DType act, const void* dout, void* da, void* db) {
  with_act_type("add_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_binary_backward(StreamLaunch{stream_}, p, as<T>(dout), static_cast<const T*>(nullptr),
                                    static_cast<const T*>(nullptr), as<T>(da), as<T>(db));
  });
}
void CudaBackend::mul_forward(const kernels::BinaryParams& p, DType act, const void* a, const void* b, void* out) {
  with_act_type("mul_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_mul(StreamLaunch{stream_}, p, as<T>(a), as<T>(b), as<T>(out));
  });
}
void CudaBackend::mul_backward(const kernels::BinaryParams& p, DType act, const void* dout, const void* a,
                               const void* b, void* da, void* db) {
  with_act_type("mul_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_binary_backward(StreamLaunch{stream_}, p, as<T>(dout), as<T>(a), as<T>(b), as<T>(da), as<T>(db));
  });
}
void CudaBackend::scale(int64_t count, DType act, float alpha, const void* x, void* out) {
  with_act_type("scale", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_scale(StreamLaunch{stream_}, count, alpha, as<T>(x), as<T>(out));
  });
}
void CudaBackend::axpy(int64_t count, DType act, float alpha, const void* x, void* y) {
  with_act_type("axpy", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_axpy(StreamLaunch{stream_}, count, alpha, as<T>(x), as<T>(y));
  });
}
void CudaBackend::fill(int64_t count, DType act, float value, void* out) {
  with_act_type("fill", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_fill(StreamLaunch{stream_}, count, value, as<T>(out));
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
