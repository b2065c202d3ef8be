// CudaBackend: ReLU, gelu_new and the gated-GELU product on f32 or bf16 activations
// (kernels/activation.cuh).
#include "engine/cuda/act_dispatch.h"
#include "engine/cuda/cuda_backend.h"
// Kernel sources last: under g++ they bring the SIMT keyword macros.
#include "kernels/activation.cuh"
#include "engine/cuda/launch.h"

namespace la3::LA3_CUDA_FLAVOUR {

namespace {
template <typename T> const T* as(const void* p) { return static_cast<const T*>(p); }
template <typename T> T* as(void* p) { return static_cast<T*>(p); }
}  // namespace

void CudaBackend::relu_forward(int64_t count, DType act, const void* x, void* out) {
  with_act_type("relu_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_relu_forward(StreamLaunch{stream_}, count, as<T>(x), as<T>(out));
  });
}
void CudaBackend::relu_backward(int64_t count, DType act, const void* dout, const void* x, void* dx) {
  with_act_type("relu_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_relu_backward(StreamLaunch{stream_}, count, as<T>(dout), as<T>(x), as<T>(dx));
  });
}
void CudaBackend::gelu_new_forward(int64_t count, DType act, const void* x, void* out) {
  with_act_type("gelu_new_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_gelu_new_forward(StreamLaunch{stream_}, count, as<T>(x), as<T>(out));
  });
}
void CudaBackend::gelu_new_backward(int64_t count, DType act, const void* dout, const void* x, void* dx) {
  with_act_type("gelu_new_backward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_gelu_new_backward(StreamLaunch{stream_}, count, as<T>(dout), as<T>(x), as<T>(dx));
  });
}
void CudaBackend::gated_gelu_forward(int64_t count, DType act, const void* gate, const void* linear, void* out) {
  with_act_type("gated_gelu_forward", act, [&](auto tag) {
    using T = decltype(tag);
    kernels::launch_gated_gelu_forward(StreamLaunch{stream_}, count, as<T>(gate), as<T>(linear), as<T>(out));
  });
}
void CudaBackend::gated_gelu_backward(int64_t count, DType act, const void* dout, const void* gate,
                                      const void* linear, void* dgate, void* dlinear) {
  if (count == 0) return;
  with_act_type("gated_gelu_backward", act, [&](auto tag) {
    using T = decltype(tag);
    // The kernel writes both gradients; route an unwanted one to device scratch.
    DeviceScratch scratch(*allocator_,
                          dgate == nullptr || dlinear == nullptr ? static_cast<size_t>(count) * sizeof(T) : 0);
    kernels::launch_gated_gelu_backward(StreamLaunch{stream_}, count, as<T>(dout), as<T>(gate), as<T>(linear),
                                        dgate != nullptr ? as<T>(dgate) : scratch.as<T>(),
                                        dlinear != nullptr ? as<T>(dlinear) : scratch.as<T>());
  });
}

}  // namespace la3::LA3_CUDA_FLAVOUR
