// The emulated NCCL over MPI (see nccl.h for what it checks and how it runs).
#include "dist/nccl_emu/nccl.h"

#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr char kMagic[16] = "la3-nccl-emu-01";
constexpr int kAbortTag = 77;

// What ncclGetUniqueId puts in the id: rank 0 makes it, the caller broadcasts it, and
// ncclCommInitRank checks that every rank passed the same one.
struct IdPayload {
  char magic[16];
  uint64_t counter;
  uint64_t pid;
  uint64_t nonce;
};
static_assert(sizeof(IdPayload) <= NCCL_UNIQUE_ID_BYTES);

enum class Kind : int32_t { kAllReduce, kBroadcast, kReduceScatter, kAllGather };

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kAllReduce: return "ncclAllReduce";
    case Kind::kBroadcast: return "ncclBroadcast";
    case Kind::kReduceScatter: return "ncclReduceScatter";
    case Kind::kAllGather: return "ncclAllGather";
  }
  return "?";
}

bool reduces(Kind kind) { return kind == Kind::kAllReduce || kind == Kind::kReduceScatter; }

const char* type_name(int type) {
  static const char* const names[] = {"ncclInt8",    "ncclUint8",   "ncclInt32",    "ncclUint32",
                                      "ncclInt64",   "ncclUint64",  "ncclFloat16",  "ncclFloat32",
                                      "ncclFloat64", "ncclBfloat16", "ncclFloat8e4m3", "ncclFloat8e5m2"};
  return type >= 0 && type < ncclNumTypes ? names[type] : "unknown datatype";
}

const char* op_name(int op) {
  static const char* const names[] = {"sum", "prod", "max", "min", "avg"};
  return op >= 0 && op < ncclNumOps ? names[op] : "unknown op";
}

// Bytes per element of the emulated types (0: not emulated).
size_t type_size(ncclDataType_t type) {
  switch (type) {
    case ncclInt8:
    case ncclUint8: return 1;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32: return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64: return 8;
    default: return 0;
  }
}

MPI_Datatype mpi_type(ncclDataType_t type) {
  switch (type) {
    case ncclInt8: return MPI_INT8_T;
    case ncclUint8: return MPI_UINT8_T;
    case ncclInt32: return MPI_INT32_T;
    case ncclUint32: return MPI_UINT32_T;
    case ncclInt64: return MPI_INT64_T;
    case ncclUint64: return MPI_UINT64_T;
    case ncclFloat32: return MPI_FLOAT;
    case ncclFloat64: return MPI_DOUBLE;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpi_op(ncclRedOp_t op) {
  switch (op) {
    case ncclSum: return MPI_SUM;
    case ncclProd: return MPI_PROD;
    case ncclMax: return MPI_MAX;
    case ncclMin: return MPI_MIN;
    default: return MPI_OP_NULL;
  }
}

std::string hex(const void* pointer) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", pointer);
  return text;
}

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

// A collective's parameters, exchanged by every rank before any data moves.
struct Descriptor {
  uint64_t sequence = 0;  // position among this communicator's collectives
  uint64_t count = 0;
  int32_t kind = 0, datatype = 0, op = -1, root = -1;
  int32_t group_size = 1, group_index = 0;
};

// "ncclAllReduce #3 of 1000 x ncclFloat32, sum" (without the number before it is known).
std::string describe(const Descriptor& d, bool with_sequence = true) {
  std::string text = std::string(kind_name(static_cast<Kind>(d.kind))) +
                     (with_sequence ? " #" + std::to_string(d.sequence) : std::string()) + " of " +
                     std::to_string(d.count) + " x " + type_name(d.datatype);
  if (d.op >= 0) text += std::string(", ") + op_name(d.op);
  if (d.root >= 0) text += ", root " + std::to_string(d.root);
  if (d.group_size > 1) text += ", " + std::to_string(d.group_index + 1) + " of a group of " + std::to_string(d.group_size);
  return text;
}

// Guards every CommState, Op and the graveyard. Taken after the runtime's lock (Op::poll runs
// under it), never before.
std::mutex& emu_mutex() {
  static auto* mutex = new std::mutex;
  return *mutex;
}

std::atomic<int> pending_count{0};

struct Op;

struct CommState {
  MPI_Comm descriptors = MPI_COMM_NULL, data = MPI_COMM_NULL, control = MPI_COMM_NULL;
  int rank = 0, size = 1;
  uint64_t issued = 0;   // descriptors sent
  uint64_t started = 0;  // data transfers started, in issue order (the same on every rank)
  ncclResult_t async_error = ncclSuccess;
  std::string last_error;
  bool aborted = false;
  int abort_notice = 0;  // the payload of the abort notices this rank sends (its rank)
  std::vector<std::shared_ptr<Op>> outstanding;
};

// What an abort or a failure leaves behind: MPI requests that may still complete (their
// buffers must stay alive) and the MPI communicators they use. Swept opportunistically; what
// is left at exit is leaked on purpose (MPI_Finalize does not wait for it).
struct Graveyard {
  std::vector<std::shared_ptr<Op>> ops;
  std::vector<MPI_Request> requests;
  std::vector<std::shared_ptr<CommState>> comms;
};
Graveyard& graveyard() {
  static auto* instance = new Graveyard;
  return *instance;
}

struct Op final : la3::simt::AsyncWork {
  std::shared_ptr<CommState> comm;
  Descriptor mine;
  std::vector<Descriptor> all;
  std::string what;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t element_bytes = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Op reduction = MPI_OP_NULL;
  MPI_Request descriptor_request = MPI_REQUEST_NULL, data_request = MPI_REQUEST_NULL;
  std::vector<unsigned char> staging_send, staging_recv;
  enum class Phase { kExchanging, kAgreed, kRunning, kDone } phase = Phase::kExchanging;

  bool poll(bool may_start) override;
  std::string agree() const;
  int start_transfer();
  void finish_transfer();
};

void remove_outstanding(CommState& comm, const Op* op) {
  for (size_t i = 0; i < comm.outstanding.size(); ++i) {
    if (comm.outstanding[i].get() == op) {
      comm.outstanding.erase(comm.outstanding.begin() + static_cast<std::ptrdiff_t>(i));
      --pending_count;
      return;
    }
  }
}

// The streams go on without these collectives (as after a killed kernel); MPI may still
// complete their transfers into the staging buffers, which the graveyard keeps alive.
void abandon_all_locked(CommState& comm) {
  for (std::shared_ptr<Op>& op : comm.outstanding) {
    op->phase = Op::Phase::kDone;
    graveyard().ops.push_back(op);
    --pending_count;
  }
  comm.outstanding.clear();
}

void fail_comm_locked(CommState& comm, ncclResult_t code, const std::string& message) {
  if (comm.async_error == ncclSuccess) {
    comm.async_error = code;
    comm.last_error = message;
  }
  abandon_all_locked(comm);
}

void sweep_graveyard_locked() {
  Graveyard& g = graveyard();
  for (size_t i = 0; i < g.ops.size();) {
    Op& op = *g.ops[i];
    int flag = 0;
    if (op.descriptor_request != MPI_REQUEST_NULL) MPI_Test(&op.descriptor_request, &flag, MPI_STATUS_IGNORE);
    if (op.data_request != MPI_REQUEST_NULL) MPI_Test(&op.data_request, &flag, MPI_STATUS_IGNORE);
    if (op.descriptor_request == MPI_REQUEST_NULL && op.data_request == MPI_REQUEST_NULL) {
      g.ops.erase(g.ops.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  for (size_t i = 0; i < g.requests.size();) {
    int flag = 0;
    MPI_Test(&g.requests[i], &flag, MPI_STATUS_IGNORE);
    if (g.requests[i] == MPI_REQUEST_NULL) {
      g.requests.erase(g.requests.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

// Another rank's ncclCommAbort: this communicator fails with ncclRemoteError.
void check_abort_notice_locked(CommState& comm) {
  if (comm.aborted || comm.control == MPI_COMM_NULL) return;
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, kAbortTag, comm.control, &flag, &status);
  if (!flag) return;
  int who = -1;
  MPI_Recv(&who, 1, MPI_INT, status.MPI_SOURCE, kAbortTag, comm.control, MPI_STATUS_IGNORE);
  fail_comm_locked(comm, ncclRemoteError,
                   "rank " + std::to_string(comm.rank) + ": rank " + std::to_string(who) +
                       " aborted the communicator (ncclCommAbort), so its collectives will not complete");
}

bool Op::poll(bool may_start) {
  std::lock_guard<std::mutex> lock(emu_mutex());
  if (phase == Phase::kDone) return true;
  CommState& c = *comm;
  check_abort_notice_locked(c);
  if (phase == Phase::kDone) return true;  // abandoned just now
  if (phase == Phase::kExchanging) {
    int done = 0;
    MPI_Test(&descriptor_request, &done, MPI_STATUS_IGNORE);
    if (!done) return false;
    if (std::string bad = agree(); !bad.empty()) {
      fail_comm_locked(c, ncclInvalidUsage, bad);
      return true;
    }
    phase = Phase::kAgreed;
  }
  if (phase == Phase::kAgreed) {
    // Only when the stream has reached it, and in issue order: every rank then starts the
    // same MPI collectives in the same order.
    if (!may_start || c.started != mine.sequence) return false;
    if (const int code = start_transfer(); code != MPI_SUCCESS) {
      fail_comm_locked(c, ncclSystemError, "rank " + std::to_string(c.rank) + ": " + what + ": " + mpi_error_text(code));
      return true;
    }
    ++c.started;
    phase = Phase::kRunning;
  }
  int done = 0;
  MPI_Test(&data_request, &done, MPI_STATUS_IGNORE);
  if (!done) return false;
  finish_transfer();
  phase = Phase::kDone;
  remove_outstanding(c, this);
  return true;
}

std::string Op::agree() const {
  for (int r = 0; r < static_cast<int>(all.size()); ++r) {
    const Descriptor& d = all[static_cast<size_t>(r)];
    if (d.kind != mine.kind || d.count != mine.count || d.datatype != mine.datatype || d.op != mine.op ||
        d.root != mine.root || d.group_size != mine.group_size || d.group_index != mine.group_index ||
        d.sequence != mine.sequence) {
      return "rank " + std::to_string(comm->rank) + ": " + describe(mine) + " does not match rank " + std::to_string(r) +
             "'s " + describe(d) +
             ": every rank must issue the same collectives in the same order with the same count, datatype, op and "
             "root (a real NCCL would hang or corrupt memory)";
    }
  }
  return {};
}

int Op::start_transfer() {
  const size_t count = mine.count;
  const int n = comm->size;
  const Kind kind = static_cast<Kind>(mine.kind);
  const int int_count = static_cast<int>(count);
  // Device memory is host memory under the emulation: the staging copies are plain copies.
  switch (kind) {
    case Kind::kAllReduce:
      staging_recv.assign(static_cast<const unsigned char*>(send), static_cast<const unsigned char*>(send) + count * element_bytes);
      return MPI_Iallreduce(MPI_IN_PLACE, staging_recv.data(), int_count, type, reduction, comm->data, &data_request);
    case Kind::kBroadcast:
      staging_recv.resize(count * element_bytes);
      if (comm->rank == mine.root && count > 0) std::memcpy(staging_recv.data(), send, count * element_bytes);
      return MPI_Ibcast(staging_recv.data(), int_count, type, mine.root, comm->data, &data_request);
    case Kind::kReduceScatter:
      staging_send.assign(static_cast<const unsigned char*>(send),
                          static_cast<const unsigned char*>(send) + static_cast<size_t>(n) * count * element_bytes);
      staging_recv.resize(count * element_bytes);
      return MPI_Ireduce_scatter_block(staging_send.data(), staging_recv.data(), int_count, type, reduction, comm->data,
                                       &data_request);
    case Kind::kAllGather:
      staging_send.assign(static_cast<const unsigned char*>(send), static_cast<const unsigned char*>(send) + count * element_bytes);
      staging_recv.resize(static_cast<size_t>(n) * count * element_bytes);
      return MPI_Iallgather(staging_send.data(), int_count, type, staging_recv.data(), int_count, type, comm->data,
                            &data_request);
  }
  return MPI_ERR_OTHER;
}

void Op::finish_transfer() {
  if (!staging_recv.empty()) std::memcpy(recv, staging_recv.data(), staging_recv.size());
  staging_send.clear();
  staging_recv.clear();
}

}  // namespace

struct ncclComm {
  std::shared_ptr<CommState> state;
};

namespace {

// A collective as issued (held by an open group until ncclGroupEnd).
struct Call {
  Kind kind = Kind::kAllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  size_t count = 0;
  ncclDataType_t type = ncclFloat32;
  int op = -1;
  int root = -1;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
};

thread_local int group_depth = 0;
thread_local std::vector<Call> group_calls;
thread_local std::string thread_error;

std::string describe(const Call& call, int64_t sequence) {
  Descriptor d;
  d.sequence = sequence >= 0 ? static_cast<uint64_t>(sequence) : 0;
  d.count = call.count;
  d.kind = static_cast<int32_t>(call.kind);
  d.datatype = call.type;
  d.op = call.op;
  d.root = call.root;
  return describe(d, sequence >= 0);
}

ncclResult_t set_error(ncclComm_t comm, ncclResult_t code, const std::string& message) {
  thread_error = message;
  if (comm != nullptr) {
    std::lock_guard<std::mutex> lock(emu_mutex());
    comm->state->last_error = message;
  }
  return code;
}

// Collectives still held by this thread's open group are not on their stream yet: an event
// recorded there, or a synchronisation of it, would not cover them.
std::string group_use_check(cudaStream_t stream, const char* call) {
  if (group_depth == 0) return {};
  for (const Call& held : group_calls) {
    if (stream != nullptr && held.stream != stream) continue;
    return std::string(call) + " on stream '" + la3::simt::stream_name(held.stream) + "' while " + describe(held, -1) +
           " issued on it inside ncclGroupStart (depth " + std::to_string(group_depth) +
           ") is not queued yet: NCCL queues grouped collectives only at the outermost ncclGroupEnd, so this does "
           "not order after it (a missing or unbalanced ncclGroupEnd)";
  }
  return {};
}

void install_group_check() {
  static std::once_flag once;
  std::call_once(once, [] { la3::simt::set_stream_use_check(group_use_check); });
}

struct Sizes {
  size_t send = 0, recv = 0;  // bytes each side spans
};

Sizes sizes_of(const Call& call, int nranks) {
  const size_t bytes = call.count * type_size(call.type);
  switch (call.kind) {
    case Kind::kAllReduce:
    case Kind::kBroadcast: return {bytes, bytes};
    case Kind::kReduceScatter: return {bytes * static_cast<size_t>(nranks), bytes};
    case Kind::kAllGather: return {bytes, bytes * static_cast<size_t>(nranks)};
  }
  return {};
}

// The checks at the call: arguments, buffer ranges, overlap.
ncclResult_t validate(const Call& call) {
  const char* name = kind_name(call.kind);
  if (call.comm == nullptr) return set_error(nullptr, ncclInvalidArgument, std::string(name) + ": comm is NULL");
  CommState& state = *call.comm->state;
  {
    std::lock_guard<std::mutex> lock(emu_mutex());
    if (state.async_error != ncclSuccess) {
      thread_error = std::string(name) + ": the communicator has failed: " + state.last_error;
      return state.async_error;
    }
  }
  const std::string where = std::string(name) + " (rank " + std::to_string(state.rank) + ")";
  if (type_size(call.type) == 0) {
    return set_error(call.comm, ncclInvalidArgument,
                     where + ": datatype " + type_name(call.type) + " is not emulated (int8/32/64, uint8/32/64, float32/64)");
  }
  if (reduces(call.kind) && mpi_op(static_cast<ncclRedOp_t>(call.op)) == MPI_OP_NULL) {
    return set_error(call.comm, ncclInvalidArgument, where + ": op " + op_name(call.op) + " is not emulated (sum, prod, max, min)");
  }
  if (call.kind == Kind::kBroadcast && (call.root < 0 || call.root >= state.size)) {
    return set_error(call.comm, ncclInvalidArgument,
                     where + ": root " + std::to_string(call.root) + " is not a rank of " + std::to_string(state.size));
  }
  if (call.count > static_cast<size_t>(INT_MAX)) {
    return set_error(call.comm, ncclInvalidArgument,
                     where + ": count " + std::to_string(call.count) + " exceeds the emulation's MPI count range");
  }
  const Sizes sizes = sizes_of(call, state.size);
  const std::string shape = " (" + std::to_string(call.count) + " x " + type_name(call.type) + ")";
  const bool reads_send = call.kind != Kind::kBroadcast || state.rank == call.root;
  if (sizes.send > 0 && reads_send) {
    if (std::string bad = la3::simt::check_device_range(call.send, sizes.send); !bad.empty()) {
      return set_error(call.comm, ncclInvalidArgument, where + ": sendbuff " + bad + shape);
    }
  }
  if (sizes.recv > 0) {
    if (std::string bad = la3::simt::check_device_range(call.recv, sizes.recv); !bad.empty()) {
      return set_error(call.comm, ncclInvalidArgument, where + ": recvbuff " + bad + shape);
    }
  }
  // In place is allowed only in NCCL's layout; any other overlap is undefined.
  if (reads_send && sizes.send > 0 && sizes.recv > 0) {
    const auto s = reinterpret_cast<uintptr_t>(call.send), r = reinterpret_cast<uintptr_t>(call.recv);
    const bool overlap = s < r + sizes.recv && r < s + sizes.send;
    const size_t shard = call.count * type_size(call.type) * static_cast<size_t>(state.rank);
    bool in_place = s == r;
    if (call.kind == Kind::kReduceScatter) in_place = r == s + shard;
    if (call.kind == Kind::kAllGather) in_place = s == r + shard;
    if (overlap && !in_place) {
      return set_error(call.comm, ncclInvalidArgument,
                       where + ": sendbuff " + hex(call.send) + " and recvbuff " + hex(call.recv) +
                           " overlap without NCCL's in-place layout" + shape);
    }
  }
  return ncclSuccess;
}

std::vector<la3::simt::BufferUse> uses_of(const Call& call) {
  std::vector<la3::simt::BufferUse> uses;
  const bool reads_send = call.kind != Kind::kBroadcast || call.comm->state->rank == call.root;
  if (call.count > 0 && reads_send) uses.push_back({call.send, la3::simt::Access::kRead, "sendbuff"});
  if (call.count > 0) uses.push_back({call.recv, la3::simt::Access::kWrite, "recvbuff"});
  return uses;
}

// Queues `calls` (one collective, or a whole group) on their streams: checked all first,
// then each sends its descriptor and becomes asynchronous work on its stream.
ncclResult_t enqueue(const std::vector<Call>& calls) {
  std::vector<int64_t> sequence(calls.size());
  std::vector<int32_t> group_size(calls.size()), group_index(calls.size());
  {
    std::lock_guard<std::mutex> lock(emu_mutex());
    for (size_t i = 0; i < calls.size(); ++i) {
      int32_t before = 0, total = 0;
      for (size_t j = 0; j < calls.size(); ++j) {
        if (calls[j].comm != calls[i].comm) continue;
        if (j < i) ++before;
        ++total;
      }
      sequence[i] = static_cast<int64_t>(calls[i].comm->state->issued) + before;
      group_size[i] = total;
      group_index[i] = before;
    }
  }
  std::vector<std::string> what(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    Descriptor d;
    d.sequence = static_cast<uint64_t>(sequence[i]);
    d.count = calls[i].count;
    d.kind = static_cast<int32_t>(calls[i].kind);
    d.datatype = calls[i].type;
    d.op = calls[i].op;
    d.root = calls[i].root;
    d.group_size = group_size[i];
    d.group_index = group_index[i];
    what[i] = describe(d);
    const std::string bad = la3::simt::check_stream_work(calls[i].stream, what[i], uses_of(calls[i]));
    if (!bad.empty()) {
      return set_error(calls[i].comm, ncclInvalidUsage, "rank " + std::to_string(calls[i].comm->state->rank) + ": " + bad);
    }
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    const Call& call = calls[i];
    auto op = std::make_shared<Op>();
    op->comm = call.comm->state;
    op->mine.count = call.count;
    op->mine.kind = static_cast<int32_t>(call.kind);
    op->mine.datatype = call.type;
    op->mine.op = call.op;
    op->mine.root = call.root;
    op->mine.group_size = group_size[i];
    op->mine.group_index = group_index[i];
    op->what = what[i];
    op->send = call.send;
    op->recv = call.recv;
    op->element_bytes = type_size(call.type);
    op->type = mpi_type(call.type);
    op->reduction = reduces(call.kind) ? mpi_op(static_cast<ncclRedOp_t>(call.op)) : MPI_OP_NULL;
    {
      std::lock_guard<std::mutex> lock(emu_mutex());
      CommState& state = *op->comm;
      op->mine.sequence = state.issued++;
      op->all.resize(static_cast<size_t>(state.size));
      const int code = MPI_Iallgather(&op->mine, sizeof(Descriptor), MPI_BYTE, op->all.data(), sizeof(Descriptor),
                                      MPI_BYTE, state.descriptors, &op->descriptor_request);
      if (code != MPI_SUCCESS) {
        const std::string message = "rank " + std::to_string(state.rank) + ": " + op->what + ": " + mpi_error_text(code);
        fail_comm_locked(state, ncclSystemError, message);
        thread_error = message;
        return ncclSystemError;
      }
      state.outstanding.push_back(op);
      ++pending_count;
    }
    const std::string bad = la3::simt::enqueue_stream_work(call.stream, op->what, uses_of(call), op);
    if (!bad.empty()) {  // checked above; only another thread's work can get here
      std::lock_guard<std::mutex> lock(emu_mutex());
      fail_comm_locked(*op->comm, ncclInvalidUsage, bad);
      thread_error = bad;
      return ncclInvalidUsage;
    }
  }
  return ncclSuccess;
}

ncclResult_t issue(const Call& call) {
  if (const ncclResult_t bad = validate(call); bad != ncclSuccess) return bad;
  install_group_check();
  if (group_depth > 0) {
    group_calls.push_back(call);
    return ncclSuccess;
  }
  return enqueue({call});
}

}  // namespace

ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return ncclInvalidArgument;
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id) {
  if (unique_id == nullptr) return set_error(nullptr, ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
  static std::atomic<uint64_t> counter{0};
  IdPayload payload{};
  std::memcpy(payload.magic, kMagic, sizeof kMagic);
  payload.counter = ++counter;
  payload.pid = static_cast<uint64_t>(getpid());
  payload.nonce = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::memset(unique_id->internal, 0, sizeof unique_id->internal);
  std::memcpy(unique_id->internal, &payload, sizeof payload);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank) {
  if (comm == nullptr) return set_error(nullptr, ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
  *comm = nullptr;
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return set_error(nullptr, ncclInvalidUsage,
                     "ncclCommInitRank: the emulated NCCL runs over MPI: initialise the distributed world "
                     "(dist/world.h) in a process launched by mpirun first");
  }
  if (group_depth > 0) {
    return set_error(nullptr, ncclInvalidUsage, "ncclCommInitRank inside ncclGroupStart is not emulated");
  }
  IdPayload payload;
  std::memcpy(&payload, comm_id.internal, sizeof payload);
  if (std::memcmp(payload.magic, kMagic, sizeof kMagic) != 0) {
    return set_error(nullptr, ncclInvalidArgument, "ncclCommInitRank: commId was not made by ncclGetUniqueId");
  }
  int world_size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  if (nranks != world_size) {
    return set_error(nullptr, ncclInvalidArgument,
                     "ncclCommInitRank: nranks " + std::to_string(nranks) + ": an emulated communicator spans every MPI rank (" +
                         std::to_string(world_size) + ")");
  }
  if (rank < 0 || rank >= nranks) {
    return set_error(nullptr, ncclInvalidArgument,
                     "ncclCommInitRank: rank " + std::to_string(rank) + " is not in [0, " + std::to_string(nranks) + ")");
  }
  auto state = std::make_shared<CommState>();
  // Ordered by the NCCL rank; private duplicates, so nothing else matches these collectives.
  MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &state->data);
  MPI_Comm_set_errhandler(state->data, MPI_ERRORS_RETURN);
  MPI_Comm_dup(state->data, &state->descriptors);
  MPI_Comm_dup(state->data, &state->control);
  state->rank = rank;
  state->size = nranks;
  state->abort_notice = rank;
  // Every rank must have passed the same id and a distinct rank.
  struct Hello {
    IdPayload id;
    int32_t rank, nranks;
  } mine{payload, rank, nranks};
  std::vector<Hello> everyone(static_cast<size_t>(nranks));
  MPI_Allgather(&mine, sizeof(Hello), MPI_BYTE, everyone.data(), sizeof(Hello), MPI_BYTE, state->data);
  std::string bad;
  for (int r = 0; r < nranks && bad.empty(); ++r) {
    const Hello& h = everyone[static_cast<size_t>(r)];
    if (std::memcmp(&h.id, &payload, sizeof payload) != 0) {
      bad = "ncclCommInitRank: rank " + std::to_string(h.rank) + " passed a different unique id than rank " +
            std::to_string(rank) + " (broadcast rank 0's ncclGetUniqueId to every rank)";
    } else if (h.rank != r || h.nranks != nranks) {
      bad = "ncclCommInitRank: the ranks passed are not 0.." + std::to_string(nranks - 1) + " once each";
    }
  }
  if (!bad.empty()) {
    MPI_Comm_free(&state->control);
    MPI_Comm_free(&state->descriptors);
    MPI_Comm_free(&state->data);
    return set_error(nullptr, ncclInvalidArgument, bad);
  }
  install_group_check();
  *comm = new ncclComm{std::move(state)};
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return set_error(nullptr, ncclInvalidArgument, "ncclCommDestroy: comm is NULL");
  for (const Call& held : group_calls) {
    if (held.comm == comm) {
      return set_error(comm, ncclInvalidUsage,
                       "ncclCommDestroy while " + describe(held, -1) + " is held by an open ncclGroupStart");
    }
  }
  // Like NCCL, let what was queued finish first.
  for (;;) {
    la3::simt::progress_async_work();
    {
      std::lock_guard<std::mutex> lock(emu_mutex());
      if (comm->state->outstanding.empty()) break;
    }
    std::this_thread::yield();
  }
  {
    std::lock_guard<std::mutex> lock(emu_mutex());
    CommState& state = *comm->state;
    if (state.async_error == ncclSuccess) {
      MPI_Comm_free(&state.control);
      MPI_Comm_free(&state.descriptors);
      MPI_Comm_free(&state.data);
    } else {
      graveyard().comms.push_back(comm->state);  // abandoned transfers may still use them
    }
  }
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  std::erase_if(group_calls, [&](const Call& held) { return held.comm == comm; });
  {
    std::lock_guard<std::mutex> lock(emu_mutex());
    CommState& state = *comm->state;
    state.aborted = true;
    abandon_all_locked(state);
    // Tell the others (their communicators fail with ncclRemoteError, as when a peer's
    // connections close).
    for (int peer = 0; peer < state.size; ++peer) {
      if (peer == state.rank) continue;
      MPI_Request request = MPI_REQUEST_NULL;
      MPI_Isend(&state.abort_notice, 1, MPI_INT, peer, kAbortTag, state.control, &request);
      graveyard().requests.push_back(request);
    }
    graveyard().comms.push_back(comm->state);
    sweep_graveyard_locked();
  }
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (comm == nullptr || async_error == nullptr) {
    return set_error(comm, ncclInvalidArgument, "ncclCommGetAsyncError: comm or asyncError is NULL");
  }
  la3::simt::progress_async_work();
  std::lock_guard<std::mutex> lock(emu_mutex());
  check_abort_notice_locked(*comm->state);
  sweep_graveyard_locked();
  *async_error = comm->state->async_error;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (comm == nullptr || count == nullptr) return ncclInvalidArgument;
  *count = comm->state->size;
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (comm == nullptr || rank == nullptr) return ncclInvalidArgument;
  *rank = comm->state->rank;
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) {
  if (comm == nullptr) return thread_error.c_str();
  std::lock_guard<std::mutex> lock(emu_mutex());
  return comm->state->last_error.c_str();
}

ncclResult_t ncclGroupStart() {
  ++group_depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (group_depth == 0) {
    return set_error(nullptr, ncclInvalidUsage, "ncclGroupEnd without a matching ncclGroupStart");
  }
  if (--group_depth > 0) return ncclSuccess;
  std::vector<Call> calls;
  calls.swap(group_calls);
  if (calls.empty()) return ncclSuccess;
  const ncclResult_t result = enqueue(calls);
  // NCCL reports a failed group on the communicators too.
  if (result != ncclSuccess) {
    for (const Call& call : calls) set_error(call.comm, result, thread_error);
  }
  return result;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  return issue(Call{Kind::kAllReduce, sendbuff, recvbuff, count, datatype, static_cast<int>(op), -1, comm, stream});
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  return issue(Call{Kind::kBroadcast, sendbuff, recvbuff, count, datatype, -1, root, comm, stream});
}

ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  return issue(Call{Kind::kReduceScatter, sendbuff, recvbuff, recvcount, datatype, static_cast<int>(op), -1, comm, stream});
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream) {
  return issue(Call{Kind::kAllGather, sendbuff, recvbuff, sendcount, datatype, -1, -1, comm, stream});
}

namespace la3::nccl_emu {
int pending_collectives() { return pending_count.load(); }
}  // namespace la3::nccl_emu
