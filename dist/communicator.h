// The collective-communication interface of data-parallel training (issue 11).
//
// One interface, three implementations:
//   single  world size 1: every collective is the identity (or a copy); no MPI is touched,
//           so a run that was not launched by mpirun/srun behaves exactly as before.
//   mpi     host buffers, non-blocking MPI collectives driven by one progress thread per
//           communicator (dist/mpi_communicator.h): the CPU training path and the control
//           plane (scalars, barriers) of every device.
//   nccl    device buffers on the cuda / cuda-emu backends (dist/nccl_communicator.h).
//
// Collectives are asynchronous where the transport is: they return a Work handle, and the
// buffers must stay alive and untouched until wait() returns. wait() gives up after the
// communicator's timeout with DeadlineExceeded (a stuck or dead peer), so no rank hangs
// forever; the caller then aborts the job (dist/world.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace la3::dist {

enum class ElementType { kF32, kF64, kI64 };

size_t element_size(ElementType type);
const char* element_type_name(ElementType type);

// A collective in flight.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective has completed on this rank (buffers usable again), or the
  // communicator's timeout passed (DeadlineExceeded), or the transport failed.
  virtual absl::Status wait() = 0;
};

// A Work that is already complete (with `status`).
std::unique_ptr<Work> completed_work(absl::Status status = absl::OkStatus());

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"

  // buffer[i] = sum over ranks of buffer[i], in place; count elements.
  virtual std::unique_ptr<Work> all_reduce_sum(void* buffer, int64_t count, ElementType type) = 0;
  // buffer (count elements) of `root` copied to every rank.
  virtual std::unique_ptr<Work> broadcast(void* buffer, int64_t count, ElementType type, int root) = 0;
  // send holds size() * recv_count elements; rank r receives the sum over ranks of
  // send[r * recv_count, (r + 1) * recv_count).
  virtual std::unique_ptr<Work> reduce_scatter_sum(const void* send, void* recv, int64_t recv_count,
                                                   ElementType type) = 0;
  // recv (size() * send_count elements) = the concatenation of every rank's send, in rank order.
  virtual std::unique_ptr<Work> all_gather(const void* send, void* recv, int64_t send_count, ElementType type) = 0;
  // Returns when every rank has entered the barrier (or the timeout passed).
  virtual absl::Status barrier() = 0;

  // Typed conveniences (blocking).
  absl::Status all_reduce_sum(double* values, int64_t count) {
    return all_reduce_sum(values, count, ElementType::kF64)->wait();
  }
  absl::Status all_reduce_sum(int64_t* values, int64_t count) {
    return all_reduce_sum(values, count, ElementType::kI64)->wait();
  }
};

// The world-size-1 communicator: all-reduce and broadcast leave the buffer as is,
// reduce-scatter and all-gather copy send to recv (host memory).
std::unique_ptr<Communicator> make_single_communicator();

}  // namespace la3::dist
