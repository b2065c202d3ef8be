// The NCCL communicator: collectives on device memory of the `cuda` and `cuda-emu` devices.
//
// One source (dist/nccl_communicator.cc) compiled twice, like engine/cuda/*.cc: nvcc against
// the real <nccl.h> (NCCL from the CUDA toolkit) for `cuda`, g++ against the emulated NCCL
// (dist/nccl_emu/nccl.h, over MPI on the emulated device memory and streams) for `cuda-emu`.
// The two compiled copies live in la3::dist::cuda_device and la3::dist::cuda_emu, so one
// binary can hold both.
//
// How it orders with the model's kernels: collectives run on a communication stream of their
// own. Before each one, an event recorded on the compute stream (the backend's stream()) is
// waited for by the communication stream, so the collective sees every kernel queued before it
// (the gradients backward wrote). After it, an event is recorded on the communication stream;
// Work::wait() makes the compute stream wait for that event (cudaStreamWaitEvent: the
// dependency is on the device, so kernels queued after wait() see the reduced data), then
// polls the event and ncclCommGetAsyncError until the collective has completed or the
// communicator's timeout passed. On an asynchronous error or a timeout the communicator is
// aborted (ncclCommAbort) and wait() returns a Status naming the collective and the rank:
// DeadlineExceeded for the timeout. Every later call on an aborted communicator fails.
//
// Threading: one thread issues and waits (the training loop; the gradient-bucket hook runs
// inside backward on that thread).
#pragma once

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "dist/communicator.h"
#include "engine/backend.h"

namespace la3::dist {

// A communicator whose collectives can be fused into one launch (NCCL groups).
class GroupingCommunicator : public Communicator {
 public:
  // Collectives issued between begin_group() and end_group() are queued together at
  // end_group() (ncclGroupStart / ncclGroupEnd); their Work handles are valid after it.
  virtual void begin_group() = 0;
  virtual absl::Status end_group() = 0;
};

// The NCCL communicator of `backend` (a `cuda` or `cuda-emu` CudaBackend), over every rank of
// the distributed World (dist/world.h, initialised under mpirun/srun): rank 0 makes the NCCL
// unique id and broadcasts it over MPI, every rank calls ncclCommInitRank. Each wait gives up
// after `timeout_seconds`. Throws EngineError when the device is not a CUDA device, the
// world is not distributed, the build has no NCCL (`cuda`) or NCCL refuses to initialise.
std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, double timeout_seconds);

// Whether this build has the real-NCCL flavour (the `cuda` device).
bool nccl_device_flavour_built();

// Runs `issue`, which starts collectives on `communicator`, as one group when the
// communicator supports it (NCCL), or as is. The returned status is end_group()'s.
absl::Status issue_grouped(Communicator& communicator, const std::function<void()>& issue);

namespace cuda_emu {
std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, double timeout_seconds);
}  // namespace cuda_emu
namespace cuda_device {
std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, double timeout_seconds);
}  // namespace cuda_device

}  // namespace la3::dist
