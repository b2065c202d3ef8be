// Who this process is in a multi-process run, and the job-wide exits.
//
// A run is distributed when a launcher started it: mpirun (OMPI_COMM_WORLD_SIZE), or srun
// with a PMIx / PMI-2 plugin (PMIX_RANK, PMI_RANK). Then initialize_world() initialises MPI
// (thread level MPI_THREAD_MULTIPLE: each communicator has its own progress thread) and reads
// rank, world size and the node-local rank (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)).
// Without a launcher nothing touches MPI and the world is one rank: a plain `engine train`
// behaves exactly as before.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dist/communicator.h"

namespace la3::dist {

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;  // rank among the processes of this node (selects cuda:<local_rank>)
  int local_size = 1;
  bool mpi = false;    // MPI was initialised (a launcher started the job)
  std::string launcher;  // "none", "mpirun", "pmix", "pmi2"

  // "rank 1/4" (or "" for a single process), for messages.
  std::string label() const;
};

// Which launcher (if any) started this process, from its environment. Also detects
// `srun` without an MPI plugin (SLURM_NTASKS > 1 but no PMI variables), an error: every task
// would train alone.
absl::StatusOr<std::string> detect_launcher();

// Initialises MPI when launched (once per process; later calls return the same World).
absl::StatusOr<World> initialize_world();

// The World of initialize_world() (a single process when it was never called).
const World& world();

// A communicator over every rank, host buffers, for the control plane (scalars, barriers)
// and the CPU gradient path: mpi when the world is distributed, single otherwise.
// `timeout_seconds` bounds every wait.
std::unique_ptr<Communicator> make_world_communicator(double timeout_seconds);

// Ends the whole job from this rank with `exit_code` (MPI_Abort when distributed: mpirun
// then stops every rank; std::exit otherwise). For errors after which the ranks cannot
// agree any more (a collective timed out, one rank failed).
[[noreturn]] void abort_world(int exit_code);

// MPI_Finalize when MPI was initialised (call once, at a clean exit).
void finalize_world();

}  // namespace la3::dist
