// The CUDA runtime API the CUDA backend's host code calls, for the cuda-emu device.
//
// Under nvcc the backend includes <cuda_runtime.h>; under g++ it includes this header, which
// declares the same names with the same contracts, backed by host memory. So the host code of
// engine/cuda/ (allocation, copies, streams, error checks, workspace sizing) is compiled and
// exercised on a machine without a GPU. Device memory is host memory, but the emulation keeps
// a table of live allocations: a copy or memset that runs past the end of its device buffer,
// or a free of a pointer that cudaMalloc did not return, fails with cudaErrorInvalidValue like
// the real runtime would (or worse, silently) on a GPU.
//
// Streams and events. Kernels run synchronously under the emulation, but work may also be
// asynchronous (the emulated NCCL's collectives, dist/nccl_emu/): every stream keeps a logical
// clock (a vector clock over the streams and the host), an event captures its stream's clock,
// cudaStreamWaitEvent merges it, and host synchronisation (cudaStreamSynchronize,
// cudaEventSynchronize, cudaDeviceSynchronize, a successful query) merges it into the host's.
// Each device allocation remembers its last writer and its readers since (stream, position on
// that stream). Work that touches an allocation last written (or read, if it writes) by work
// on another stream that it is not ordered after is a stream-order error: kernel launches
// (every pointer argument counts as a read and write of its whole allocation), copies,
// memsets, the GEMM stand-in and the emulated collectives are checked, deterministically, at
// the moment they are queued. A runtime call reports it as cudaErrorIllegalState with the
// message in la3::simt::last_error_detail(); a kernel launch throws StreamOrderError
// (kernels/simt/simt.h), which engine/cuda/launch.h turns into an EngineError.
#pragma once

#if defined(__CUDACC__)
#error "kernels/simt/runtime.h is the host emulation; nvcc builds use <cuda_runtime.h>"
#endif

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,  // the emulation's stream-order checker (la3::simt::last_error_detail())
  cudaErrorNotReady = 600,
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct CUstream_st;  // opaque, as in the real runtime
using cudaStream_t = CUstream_st*;

struct CUevent_st;
using cudaEvent_t = CUevent_st*;

constexpr unsigned int cudaStreamDefault = 0x00;
constexpr unsigned int cudaStreamNonBlocking = 0x01;
constexpr unsigned int cudaEventDefault = 0x00;
constexpr unsigned int cudaEventBlockingSync = 0x01;
constexpr unsigned int cudaEventDisableTiming = 0x02;

const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

// One emulated device (ordinal 0).
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);

cudaError_t cudaMalloc(void** pointer, size_t bytes);
cudaError_t cudaFree(void* pointer);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream);

// Streams: nullptr is the legacy default stream, which the emulation treats as the host's
// (it orders with blocking streams, not with cudaStreamNonBlocking ones, as on a GPU).
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);  // cudaErrorNotReady while asynchronous work is pending
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags = 0);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventQuery(cudaEvent_t event);  // cudaErrorNotReady while work it covers is pending
cudaError_t cudaEventSynchronize(cudaEvent_t event);

namespace la3::simt {
// Bytes currently allocated with the emulated cudaMalloc (for leak checks in tests).
size_t emulated_device_bytes_in_use();
// The emulated device's capacity (LA3_EMU_DEVICE_BYTES, default 8 GiB): cudaMalloc beyond it
// returns cudaErrorMemoryAllocation, so out-of-memory handling can be tested.
size_t emulated_device_capacity();
void set_emulated_device_capacity(size_t bytes);
// The most bytes allocated at once since the start (or the last reset, which starts it at the
// bytes in use): what a capacity must hold for the same work to succeed.
size_t emulated_device_peak_bytes();
void reset_emulated_device_peak();

// What the host waited for and what it copied, counted since the start of the process (or
// the last reset), over every thread. A host synchronisation is a call that blocks the host
// until device work it covers has completed: cudaStreamSynchronize, cudaEventSynchronize,
// cudaDeviceSynchronize, a synchronous cudaMemcpy to or from the device (legacy default
// stream) and cudaFree (which synchronises the device). On a GPU each one drains the queue
// the host was keeping ahead of the device, so tests count them to keep a training step at
// one. Byte counters are what copies moved, whatever stream they were queued on.
struct RuntimeCounters {
  uint64_t host_synchronizations = 0;  // the sum of the five below
  uint64_t stream_synchronizations = 0;
  uint64_t event_synchronizations = 0;
  uint64_t device_synchronizations = 0;
  uint64_t synchronous_copies = 0;
  uint64_t synchronizing_frees = 0;
  uint64_t device_to_host_copies = 0;
  uint64_t device_to_host_bytes = 0;
  uint64_t host_to_device_copies = 0;
  uint64_t host_to_device_bytes = 0;
};
RuntimeCounters runtime_counters();
void reset_runtime_counters();

// Why this thread's last failing runtime call failed, in words (the stream-order checker's
// message for cudaErrorIllegalState, the range for a copy outside its buffer), or "".
std::string last_error_detail();

// "" when [pointer, pointer + bytes) lies inside one live allocation, else what is wrong
// ("runs past the end of its allocation 0x... (4000 bytes) by 4 bytes", "is not device memory").
std::string check_device_range(const void* pointer, size_t bytes);

// A kernel's pointer argument as a GPU sees it: "" when null, inside a live allocation or one
// past its end (an empty range at its end), else why not ("0x... is not device memory ...": a
// host pointer, which the emulation would read and a GPU kernel would fault on).
std::string check_kernel_pointer(const void* pointer);
// The first of `count` pointer arguments that fails check_kernel_pointer, as "pointer argument
// <i>: <why>; every pointer ...", or "".
std::string check_kernel_pointers(const void* const* pointers, size_t count);

// ---- The stream-order checker (see the top of this file) ----

enum class Access { kRead, kWrite, kReadWrite };

struct BufferUse {
  const void* pointer = nullptr;  // anywhere inside a device allocation (others are ignored)
  Access access = Access::kReadWrite;
  std::string role;  // "recvbuff", "pointer argument 2", for messages
};

// Asynchronous work on a stream (the emulated NCCL's collectives). The runtime polls it,
// with its lock held (poll must not call the runtime), until it reports completion; it may
// touch its buffers only once `may_start` is true: every work it depends on (earlier work on
// its stream, work its stream waited for through events) has completed.
class AsyncWork {
 public:
  virtual ~AsyncWork() = default;
  virtual bool poll(bool may_start) = 0;
};

// Checks that `what` (e.g. "ncclAllReduce #3 (1000 x ncclFloat32)") may run on `stream` now:
// "" or the stream-order violation. Records nothing.
std::string check_stream_work(cudaStream_t stream, const std::string& what, const std::vector<BufferUse>& uses);

// Checks as above; when ordered, queues the work on the stream and records its buffer uses.
// Synchronous work (no `async`) is then run by the caller: this call first completes any
// asynchronous work the stream depends on, as a GPU would before starting it.
std::string enqueue_stream_work(cudaStream_t stream, const std::string& what, const std::vector<BufferUse>& uses,
                                 std::shared_ptr<AsyncWork> async = nullptr);

// Advances every pending asynchronous work (the emulated NCCL calls it when polled).
void progress_async_work();

// Called (before the runtime's lock is taken) by cudaEventRecord, cudaStreamSynchronize and
// cudaDeviceSynchronize (stream nullptr): a non-empty answer fails the call with
// cudaErrorIllegalState. The emulated NCCL uses it to report collectives still held by an
// open ncclGroupStart.
void set_stream_use_check(std::function<std::string(cudaStream_t stream, const char* call)> check);

// Names used in messages and in the log ("compute", "nccl comm"); default "stream <n>".
void set_stream_name(cudaStream_t stream, const std::string& name);
std::string stream_name(cudaStream_t stream);

// The order in which work was queued, per stream (off by default; LA3_EMU_STREAM_LOG=1 turns
// it on at start): how a test shows that a gradient bucket's all-reduce was queued on the
// communication stream while backward kernels were still being launched on the compute stream.
struct StreamLogEntry {
  uint64_t sequence = 0;   // global order of queueing
  std::string stream;      // the stream's name
  uint64_t op = 0;         // position on that stream (1-based; for a wait: the ops so far)
  std::string what;
  std::vector<const void*> buffers;  // the device pointers it touches (as passed)
  bool is_wait = false;    // a cudaStreamWaitEvent, not work
};
void set_stream_log_enabled(bool enabled);
std::vector<StreamLogEntry> stream_log();
void clear_stream_log();
// One line per entry: "stream 'nccl comm' op #1: ncclAllReduce ... (after 'compute' op #57)".
std::string format_stream_log(const std::vector<StreamLogEntry>& entries);
}  // namespace la3::simt
