// MPI calls the NCCL communicator needs at start-up, compiled by g++ so that <mpi.h> stays out
// of the nvcc-compiled source (dist/nccl_communicator.cc).
#pragma once

#include <cstddef>

#include "absl/status/status.h"

namespace la3::dist {

// MPI_Bcast of `bytes` bytes from `root` over MPI_COMM_WORLD (the NCCL unique id).
// FailedPrecondition when the World is not distributed (dist/world.h).
absl::Status broadcast_bytes(void* data, size_t bytes, int root);

}  // namespace la3::dist
