// make_nccl_communicator: the flavour of dist/nccl_communicator.cc that matches the device.
#include "dist/nccl_communicator.h"

#include "engine/error.h"

namespace la3::dist {

std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, double timeout_seconds) {
  switch (backend.device().type) {
    case DeviceType::kCudaEmu: return cuda_emu::make_nccl_communicator(backend, timeout_seconds);
    case DeviceType::kCuda:
#if defined(LA3_HAVE_NCCL)
      return cuda_device::make_nccl_communicator(backend, timeout_seconds);
#else
      Fail(ErrorKind::kUnimplemented,
           "this build has no NCCL (no CUDA toolkit with nccl.h and libnccl at configure time): "
           "use distributed.backend: mpi on the cpu");
#endif
    default: break;
  }
  Fail(ErrorKind::kInvalidArgument, "the nccl communicator needs a cuda or cuda-emu device, got ",
       device_name(backend.device()), ": use the mpi communicator (distributed.backend: mpi) on the cpu");
}

bool nccl_device_flavour_built() {
#if defined(LA3_HAVE_NCCL)
  return true;
#else
  return false;
#endif
}

absl::Status issue_grouped(Communicator& communicator, const std::function<void()>& issue) {
  auto* grouping = dynamic_cast<GroupingCommunicator*>(&communicator);
  if (grouping == nullptr) {
    issue();
    return absl::OkStatus();
  }
  grouping->begin_group();
  try {
    issue();
  } catch (...) {
    grouping->end_group().IgnoreError();  // never leave a group open
    throw;
  }
  return grouping->end_group();
}

}  // namespace la3::dist
