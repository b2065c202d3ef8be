// CudaBackend: device binding, stream, memory and copies, and registration of the two
// devices this source builds (see cuda_backend.h).
#include "engine/cuda/cuda_backend.h"

#include <mutex>

#include "engine/cuda/cuda_devices.h"
#include "engine/cuda/gemm_engine.h"

namespace la3::LA3_CUDA_FLAVOUR {

CudaBackend::CudaBackend(DeviceType type, int ordinal) : type_(type), ordinal_(ordinal) {
  LA3_CUDA_CHECK(cudaSetDevice(ordinal));
  LA3_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
#if !defined(__CUDACC__)
  simt::set_stream_name(stream_, "compute");  // in the stream-order checker's messages and log
#endif
  const int device = ordinal;
  allocator_ = std::make_unique<CachingAllocator>(
      device_name(Device{type, ordinal}),
      CachingAllocator::RawMemory{
          [device](size_t bytes) -> void* {
            LA3_CUDA_CHECK(cudaSetDevice(device));
            void* pointer = nullptr;
            const cudaError_t status = cudaMalloc(&pointer, bytes);
            if (status == cudaErrorMemoryAllocation) {
              cudaGetLastError();  // clear it: the caller may free its cache and retry
              return nullptr;
            }
            LA3_CUDA_CHECK(status);
            return pointer;
          },
          [](void* pointer) { cudaFree(pointer); }});
  gemm_engine_ = std::make_unique<GemmEngine>(*allocator_, stream_);
}

CudaBackend::~CudaBackend() {
  gemm_engine_.reset();
  // Queued uploads still read their host memory, which pending_uploads_ frees after this body.
  if (stream_ != nullptr && !pending_uploads_.empty()) cudaStreamSynchronize(stream_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
#if defined(__CUDACC__)
  return "cuda (hand-written kernels, cuBLASLt GEMM)";
#else
  return "cuda-emu (the CUDA backend under the SIMT emulation, CPU GEMM)";
#endif
}

void CudaBackend::stream_synchronize_and_release_uploads() {
  // Taken before the wait: every owner taken has its copy queued (copy_from_host_async holds
  // the lock across both), so the wait covers it; an upload queued during the wait is not
  // covered and stays pending.
  std::vector<std::shared_ptr<const void>> released;
  {
    std::lock_guard<std::mutex> lock(uploads_mutex_);
    released.swap(pending_uploads_);
  }
  LA3_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  LA3_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, stream_));
  stream_synchronize_and_release_uploads();
  device_to_host_bytes_ += bytes;
}
void CudaBackend::copy_from_host(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  LA3_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  // The host buffer may be freed as soon as we return (pageable memory: the runtime has
  // staged it by then, but we do not rely on that).
  stream_synchronize_and_release_uploads();
}
void CudaBackend::copy_from_host_async(void* device_dst, const void* host_src, size_t bytes,
                                       std::shared_ptr<const void> host_owner) {
  if (bytes == 0) return;
  // From pageable memory a GPU's driver may stage the bytes (and even wait) inside the call;
  // the contract does not depend on either: the memory lives and stays unchanged until the
  // next synchronisation whatever the driver does. Owner and copy go in under the lock, so a
  // synchronisation that releases the owner was started after the copy was queued.
  std::lock_guard<std::mutex> lock(uploads_mutex_);
  pending_uploads_.push_back(std::move(host_owner));
  LA3_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
}
void CudaBackend::copy_on_device(void* device_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  LA3_CUDA_CHECK(cudaMemcpyAsync(device_dst, device_src, bytes, cudaMemcpyDeviceToDevice, stream_));
}
void CudaBackend::synchronize() { stream_synchronize_and_release_uploads(); }

}  // namespace la3::LA3_CUDA_FLAVOUR

namespace la3 {

#if defined(__CUDACC__)

bool try_register_cuda_backend(std::string* why_not) {
  static std::mutex mutex;
  // Never destroyed: tensors on the device may be freed during static destruction.
  static cuda_device::CudaBackend* backend = nullptr;
  static std::string failure;
  std::lock_guard<std::mutex> lock(mutex);
  if (backend == nullptr && failure.empty()) {
    int count = 0;
    // docs/BUILD.md pitfall 5: without a GPU this fails and leaves count untouched.
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0) {
      failure = status != cudaSuccess ? std::string(cudaGetErrorString(status)) : std::string("no CUDA device");
      cudaGetLastError();
    } else {
      try {
        auto created = std::make_unique<cuda_device::CudaBackend>(DeviceType::kCuda, 0);
        backend = created.release();
        register_allocator(DeviceType::kCuda, &backend->allocator());
        register_backend(DeviceType::kCuda, backend);
      } catch (const std::exception& error) {
        failure = error.what();
      }
    }
  }
  if (backend == nullptr && why_not != nullptr) *why_not = failure;
  return backend != nullptr;
}

#else

void register_cuda_emu_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Lives for the whole process: tensors on the device may be destroyed at static
    // destruction time, after any local owner would be gone.
    static auto* backend = new cuda_emu::CudaBackend(DeviceType::kCudaEmu, 0);
    register_allocator(DeviceType::kCudaEmu, &backend->allocator());
    register_backend(DeviceType::kCudaEmu, backend);
  });
}

#endif

}  // namespace la3
