// The emulated NCCL of the cuda-emu device: the subset of <nccl.h> (NCCL 2.28) that
// dist/nccl_communicator.cc calls, with the real names, types and values, implemented over MPI
// on the emulated device memory and streams (kernels/simt/runtime.h). The NCCL communicator is
// one source: nvcc compiles it against the real <nccl.h> for the `cuda` device, g++ against
// this header for `cuda-emu`, so its buffer offsets, counts, stream/event ordering and group
// usage run in CI on machines without a GPU.
//
// What the emulation checks (each is an error naming the collective, the buffer and the rank):
//   - every buffer lies inside a live cudaMalloc allocation for its whole length
//     (count x type size; nranks x count for the larger side of reduce-scatter / all-gather);
//   - stream order: a collective is queued on its stream like a kernel, so the runtime's
//     happens-before checker refuses it when its buffers were last touched by work on another
//     stream it has not waited for (an event recorded there + cudaStreamWaitEvent), and refuses
//     later work (kernels, copies, the host) touching them before it waited for the collective;
//   - groups: ncclGroupEnd without ncclGroupStart, and a stream used for an event record or a
//     synchronisation while a collective issued on it is still held by an open group;
//   - agreement across ranks: each collective's descriptor (kind, count, type, op, root, group
//     shape, sequence number) is exchanged over MPI before any data moves, so collectives whose
//     parameters differ between ranks fail on every rank with ncclInvalidUsage instead of
//     hanging or corrupting memory as a real NCCL would.
//
// How it runs: each communicator owns three duplicates of MPI_COMM_WORLD (descriptors, data,
// control). A collective is queued as asynchronous work on its stream; it exchanges its
// descriptor at once, and starts its data transfer (a non-blocking MPI collective over staging
// copies of its buffers) once the stream reaches it, i.e. once everything it depends on has
// completed. Results are copied into the receive buffer at completion. Progress happens when
// the runtime or this API is polled (cudaEventQuery, cudaStreamSynchronize, ncclCommGetAsyncError
// ...), so a rank that never joins leaves the others' collectives pending, not the host stuck.
// ncclCommAbort abandons its pending collectives (the streams go on) and tells the other ranks,
// whose communicators then fail with ncclRemoteError.
//
// Emulation limits: a communicator spans every MPI rank (nranks = MPI world size); counts fit
// in an int (MPI's count type); types int8/uint8/int32/uint32/int64/uint64/float32/float64 and
// ops sum/prod/max/min. The functions have C++ linkage, so a binary can also hold the real NCCL.
#pragma once

#if defined(__CUDACC__)
#error "dist/nccl_emu/nccl.h is the emulation; nvcc builds use the real <nccl.h>"
#endif

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/simt/runtime.h"

#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_PATCH 9
#define NCCL_VERSION(X, Y, Z) (((X) <= 2 && (Y) <= 8) ? (X) * 1000 + (Y) * 100 + (Z) : (X) * 10000 + (Y) * 100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)

typedef struct ncclComm* ncclComm_t;
#define NCCL_COMM_NULL nullptr

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclNumResults = 8
} ncclResult_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4, ncclNumOps = 5 } ncclRedOp_t;

typedef enum {
  ncclInt8 = 0,
  ncclChar = 0,
  ncclUint8 = 1,
  ncclInt32 = 2,
  ncclInt = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6,
  ncclHalf = 6,
  ncclFloat32 = 7,
  ncclFloat = 7,
  ncclFloat64 = 8,
  ncclDouble = 8,
  ncclBfloat16 = 9,
  ncclFloat8e4m3 = 10,
  ncclFloat8e5m2 = 11,
  ncclNumTypes = 12
} ncclDataType_t;

ncclResult_t ncclGetVersion(int* version);
ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id);
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error);
ncclResult_t ncclCommCount(const ncclComm_t comm, int* count);
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank);
const char* ncclGetErrorString(ncclResult_t result);
// The message of the last error on `comm` (nullptr: of this thread's last call without a comm).
const char* ncclGetLastError(ncclComm_t comm);

ncclResult_t ncclGroupStart();
ncclResult_t ncclGroupEnd();

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream);

namespace la3::nccl_emu {
// Collectives queued but not complete, over every communicator of this process (tests).
int pending_collectives();
}  // namespace la3::nccl_emu
