// The MPI communicator: host buffers, non-blocking MPI collectives (MPI_Iallreduce,
// MPI_Ibcast, MPI_Ireduce_scatter_block, MPI_Iallgather, MPI_Ibarrier) on a private
// duplicate of MPI_COMM_WORLD.
//
// Why a progress thread: Open MPI advances a non-blocking collective only inside MPI calls,
// so a collective started while backward computes would sit idle until the next wait. Each
// communicator owns one thread that starts the collectives in submission order (every rank
// submits them in the same order, as MPI requires) and polls them with MPI_Test, sleeping a
// few microseconds between polls instead of spinning (ranks may share cores). All MPI calls
// of a communicator happen on its thread; two communicators need MPI_THREAD_MULTIPLE, which
// initialize_world() requests.
#pragma once

#include <memory>

#include "dist/communicator.h"

namespace la3::dist {

// Requires an initialised distributed World (dist/world.h). Every wait gives up after
// timeout_seconds with DeadlineExceeded naming the collective.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_seconds);

}  // namespace la3::dist
