#include "dist/mpi_bootstrap.h"

#include <mpi.h>

#include <climits>

#include "absl/strings/str_cat.h"
#include "dist/world.h"

namespace la3::dist {

absl::Status broadcast_bytes(void* data, size_t bytes, int root) {
  if (!world().mpi) {
    return absl::FailedPreconditionError(
        "the NCCL communicator needs a distributed world: launch with mpirun or srun (dist/world.h)");
  }
  if (bytes > static_cast<size_t>(INT_MAX)) return absl::InvalidArgumentError("broadcast_bytes: too many bytes");
  const int code = MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
  if (code != MPI_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("MPI_Bcast of ", bytes, " bytes from rank ", root, " failed (code ", code, ")"));
  }
  return absl::OkStatus();
}

}  // namespace la3::dist
