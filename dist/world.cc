#include "dist/world.h"

#include <mpi.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "dist/mpi_communicator.h"

namespace la3::dist {

namespace {

World the_world;
bool initialized = false;
std::mutex init_mutex;

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

}  // namespace

std::string World::label() const { return size > 1 ? absl::StrCat("rank ", rank, "/", size) : ""; }

absl::StatusOr<std::string> detect_launcher() {
  if (env("OMPI_COMM_WORLD_SIZE") != nullptr) return std::string("mpirun");
  if (env("PMIX_RANK") != nullptr) return std::string("pmix");
  if (env("PMI_RANK") != nullptr || env("PMI_SIZE") != nullptr) return std::string("pmi2");
  const char* tasks = env("SLURM_NTASKS");
  if (tasks != nullptr && env("SLURM_STEP_ID") != nullptr && std::atoi(tasks) > 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "srun started ", tasks, " tasks without an MPI plugin, so each would train alone: launch with "
        "`srun --mpi=pmix` (see `srun --mpi=list`) or `mpirun` inside the allocation"));
  }
  return std::string("none");
}

absl::StatusOr<World> initialize_world() {
  std::lock_guard<std::mutex> lock(init_mutex);
  if (initialized) return the_world;
  absl::StatusOr<std::string> launcher = detect_launcher();
  if (!launcher.ok()) return launcher.status();
  World world;
  world.launcher = *launcher;
  if (*launcher != "none") {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
      return absl::UnavailableError(absl::StrCat("MPI_Init_thread failed (launched by ", *launcher, ")"));
    }
    if (provided < MPI_THREAD_MULTIPLE) {
      MPI_Finalize();
      return absl::FailedPreconditionError(
          "this MPI library does not provide MPI_THREAD_MULTIPLE, which the communicators' progress threads need");
    }
    world.mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &world.local_rank);
    MPI_Comm_size(node, &world.local_size);
    MPI_Comm_free(&node);
  }
  the_world = world;
  initialized = true;
  return the_world;
}

const World& world() { return the_world; }

std::unique_ptr<Communicator> make_world_communicator(double timeout_seconds) {
  if (!the_world.mpi) return make_single_communicator();
  return make_mpi_communicator(timeout_seconds);
}

void abort_world(int exit_code) {
  if (the_world.mpi) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

void finalize_world() {
  if (!the_world.mpi) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace la3::dist
