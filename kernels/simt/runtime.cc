#include "kernels/simt/runtime.h"

#include "kernels/simt/asan.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace {

struct DeviceMemory {
  std::mutex mutex;
  std::map<uintptr_t, size_t> live;  // start -> bytes
  size_t in_use = 0;
  size_t peak = 0;
  size_t capacity = 0;
  DeviceMemory() {
    capacity = size_t{8} << 30;
    if (const char* text = std::getenv("LA3_EMU_DEVICE_BYTES"); text != nullptr && *text != '\0') {
      capacity = static_cast<size_t>(std::strtoull(text, nullptr, 10));
    }
  }
  // The live allocation containing `pointer`: its start and size, or false.
  bool find(const void* pointer, uintptr_t* start, size_t* bytes) {
    const auto address = reinterpret_cast<uintptr_t>(pointer);
    std::lock_guard<std::mutex> lock(mutex);
    auto it = live.upper_bound(address);
    if (it == live.begin()) return false;
    --it;
    // A zero-byte allocation still owns its start address.
    if (address < it->first || address >= it->first + std::max<size_t>(it->second, 1)) return false;
    *start = it->first;
    *bytes = it->second;
    return true;
  }
  // True when [pointer, pointer + bytes) lies inside one live allocation.
  bool contains(const void* pointer, size_t bytes) {
    uintptr_t start = 0;
    size_t size = 0;
    if (!find(pointer, &start, &size)) return false;
    return reinterpret_cast<uintptr_t>(pointer) + bytes <= start + size;
  }
};

DeviceMemory& memory() {
  static DeviceMemory instance;
  return instance;
}

// la3::simt::runtime_counters(): relaxed atomics, since tests read them after the work.
struct Counters {
  std::atomic<uint64_t> stream_synchronizations{0}, event_synchronizations{0}, device_synchronizations{0},
      synchronous_copies{0}, synchronizing_frees{0}, device_to_host_copies{0}, device_to_host_bytes{0},
      host_to_device_copies{0}, host_to_device_bytes{0};
};
Counters& counters() {
  static Counters instance;
  return instance;
}
void count(std::atomic<uint64_t>& counter, uint64_t by = 1) { counter.fetch_add(by, std::memory_order_relaxed); }

thread_local cudaError_t last_error = cudaSuccess;
thread_local std::string last_detail;

cudaError_t record(cudaError_t error, std::string detail = {}) {
  if (error != cudaSuccess) {
    last_error = error;
    last_detail = std::move(detail);
  }
  return error;
}

bool is_device(cudaMemcpyKind kind, bool destination) {
  switch (kind) {
    case cudaMemcpyHostToDevice: return destination;
    case cudaMemcpyDeviceToHost: return !destination;
    case cudaMemcpyDeviceToDevice: return true;
    default: return false;
  }
}

std::string hex(uintptr_t address) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(address));
  return text;
}
std::string hex(const void* pointer) { return hex(reinterpret_cast<uintptr_t>(pointer)); }

// ---- Stream order ----

// A vector clock over agents: agent 0 is the host (and the legacy default stream), every
// created stream gets the next index. clock[a] = how many operations of agent a are known to
// have been queued before (and so, in stream order, completed before) the clock's owner.
using Clock = std::vector<uint64_t>;

uint64_t at(const Clock& clock, size_t agent) { return agent < clock.size() ? clock[agent] : 0; }
void merge(Clock& into, const Clock& from) {
  if (from.size() > into.size()) into.resize(from.size(), 0);
  for (size_t i = 0; i < from.size(); ++i) into[i] = std::max(into[i], from[i]);
}

constexpr size_t kHost = 0;

struct Agent {
  std::string name;
  bool blocking = false;  // orders with the legacy default stream
  Clock clock;
  uint64_t ops = 0;
};

// One use of an allocation: by which agent, its position there, and what it was.
struct Use {
  size_t agent = 0;
  uint64_t op = 0;
  std::string what;  // "ncclAllReduce #0 (1000 x ncclFloat32, sum), recvbuff"
};

struct BufferState {
  std::optional<Use> write;
  std::vector<Use> reads;  // since the last write, at most one per agent
};

struct PendingWork {
  size_t agent = 0;
  uint64_t op = 0;
  Clock depends;  // the stream's clock when it was queued, its own position excluded
  std::shared_ptr<la3::simt::AsyncWork> work;
};

struct StreamOrder {
  std::mutex mutex;
  std::vector<Agent> agents;
  std::map<uintptr_t, BufferState> buffers;  // by allocation start
  std::vector<PendingWork> pending;          // in queueing order
  std::function<std::string(cudaStream_t, const char*)> use_check;
  bool log_enabled = false;
  uint64_t sequence = 0;
  std::vector<la3::simt::StreamLogEntry> log;

  StreamOrder() {
    agents.push_back(Agent{"host (legacy default stream)", true, Clock(1, 0), 0});
    const char* text = std::getenv("LA3_EMU_STREAM_LOG");
    log_enabled = text != nullptr && std::strcmp(text, "1") == 0;
  }
};

StreamOrder& order() {
  // Never destroyed: streams and buffers may be released during static destruction.
  static auto* instance = new StreamOrder;
  return *instance;
}

}  // namespace

struct CUstream_st {
  size_t agent = 0;
};

struct CUevent_st {
  bool recorded = false;
  Clock clock;
  std::string where;  // "stream 'nccl comm' after op #3"
};

namespace {

size_t agent_of(cudaStream_t stream) { return stream == nullptr ? kHost : stream->agent; }

std::string quoted(const StreamOrder& o, size_t agent) {
  return agent == kHost ? o.agents[kHost].name : "stream '" + o.agents[agent].name + "'";
}

// The clock work queued now on `agent` runs under: the host's program order (everything the
// host has seen complete happens before what it queues next), and for the legacy default
// stream, everything queued on blocking streams.
Clock& current_clock(StreamOrder& o, size_t agent) {
  Agent& a = o.agents[agent];
  if (agent == kHost) {
    for (size_t i = 1; i < o.agents.size(); ++i) {
      if (o.agents[i].blocking) merge(a.clock, o.agents[i].clock);
    }
  } else {
    merge(a.clock, o.agents[kHost].clock);
  }
  if (a.clock.size() <= agent) a.clock.resize(agent + 1, 0);
  return a.clock;
}

struct ResolvedUse {
  uintptr_t start = 0;
  size_t bytes = 0;
  bool reads = false, writes = false;
  std::string role;
  const void* pointer = nullptr;
};

std::vector<ResolvedUse> resolve(const std::vector<la3::simt::BufferUse>& uses) {
  std::vector<ResolvedUse> resolved;
  for (const la3::simt::BufferUse& use : uses) {
    uintptr_t start = 0;
    size_t bytes = 0;
    if (use.pointer == nullptr || !memory().find(use.pointer, &start, &bytes)) continue;
    const bool reads = use.access != la3::simt::Access::kWrite;
    const bool writes = use.access != la3::simt::Access::kRead;
    auto same = std::find_if(resolved.begin(), resolved.end(), [&](const ResolvedUse& r) { return r.start == start; });
    if (same != resolved.end()) {  // two arguments in one allocation: one use, both roles
      same->reads |= reads;
      same->writes |= writes;
      same->role += " and " + use.role;
      continue;
    }
    resolved.push_back(ResolvedUse{start, bytes, reads, writes, use.role, use.pointer});
  }
  return resolved;
}

std::string violation(const StreamOrder& o, size_t agent, uint64_t op, const std::string& what, const ResolvedUse& use,
                      const Use& earlier, bool earlier_wrote) {
  const char* verb = use.reads && use.writes ? "reads and writes" : (use.writes ? "writes" : "reads");
  std::string message = what + " on " + quoted(o, agent) + " (op #" + std::to_string(op) + ") " + verb + " " + use.role +
                        " " + hex(use.pointer) + " (allocation " + hex(use.start) + ", " + std::to_string(use.bytes) +
                        " bytes), last " + (earlier_wrote ? "written" : "read") + " by " + earlier.what + " on " +
                        quoted(o, earlier.agent) + " (op #" + std::to_string(earlier.op) + "), which " +
                        (agent == kHost ? std::string("the host") : quoted(o, agent)) + " has not waited for: ";
  if (agent == kHost) {
    message += "synchronize with " + quoted(o, earlier.agent) +
               " first (cudaStreamSynchronize, or cudaEventSynchronize on an event recorded after that op)";
  } else {
    message += "record an event on " + quoted(o, earlier.agent) + " after op #" + std::to_string(earlier.op) +
               " and cudaStreamWaitEvent(" + quoted(o, agent) + ", event) before this work";
  }
  return message;
}

// The stream-order check of work on `agent` (its clock already current).
std::string check_locked(StreamOrder& o, size_t agent, const std::string& what, const std::vector<ResolvedUse>& uses) {
  const Clock& clock = o.agents[agent].clock;
  const uint64_t op = o.agents[agent].ops + 1;
  for (const ResolvedUse& use : uses) {
    auto found = o.buffers.find(use.start);
    if (found == o.buffers.end()) continue;
    const BufferState& state = found->second;
    if (state.write && state.write->agent != agent && at(clock, state.write->agent) < state.write->op) {
      return violation(o, agent, op, what, use, *state.write, true);
    }
    if (use.writes) {
      for (const Use& read : state.reads) {
        if (read.agent != agent && at(clock, read.agent) < read.op) return violation(o, agent, op, what, use, read, false);
      }
    }
  }
  return {};
}

bool covers_pending(const StreamOrder& o, const Clock& clock, const PendingWork* except) {
  for (const PendingWork& work : o.pending) {
    if (&work != except && work.op <= at(clock, work.agent)) return true;
  }
  return false;
}

void progress_locked(StreamOrder& o) {
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < o.pending.size();) {
      const bool may_start = !covers_pending(o, o.pending[i].depends, &o.pending[i]);
      if (o.pending[i].work->poll(may_start)) {
        o.pending.erase(o.pending.begin() + static_cast<std::ptrdiff_t>(i));
        changed = true;
      } else {
        ++i;
      }
    }
  }
}

// Blocks until no pending work that `clock` covers is left (a GPU stream would wait so).
void wait_for_locked(std::unique_lock<std::mutex>& lock, StreamOrder& o, const Clock& clock) {
  progress_locked(o);
  while (covers_pending(o, clock, nullptr)) {
    lock.unlock();
    std::this_thread::yield();
    lock.lock();
    progress_locked(o);
  }
}

std::string enqueue_locked(std::unique_lock<std::mutex>& lock, StreamOrder& o, size_t agent, const std::string& what,
                           const std::vector<la3::simt::BufferUse>& uses, std::shared_ptr<la3::simt::AsyncWork> async) {
  const std::vector<ResolvedUse> resolved = resolve(uses);
  Clock& clock = current_clock(o, agent);
  if (std::string bad = check_locked(o, agent, what, resolved); !bad.empty()) return bad;
  Agent& a = o.agents[agent];
  const uint64_t op = ++a.ops;
  Clock depends = clock;
  clock[agent] = op;
  for (const ResolvedUse& use : resolved) {
    BufferState& state = o.buffers[use.start];
    Use entry{agent, op, what + ", " + use.role};
    if (use.writes) {
      state.write = entry;
      state.reads.clear();
    } else {
      auto mine = std::find_if(state.reads.begin(), state.reads.end(), [&](const Use& r) { return r.agent == agent; });
      if (mine != state.reads.end()) {
        *mine = entry;
      } else {
        state.reads.push_back(entry);
      }
    }
  }
  if (o.log_enabled) {
    la3::simt::StreamLogEntry entry;
    entry.sequence = ++o.sequence;
    entry.stream = a.name;
    entry.op = op;
    entry.what = what;
    for (const la3::simt::BufferUse& use : uses) entry.buffers.push_back(use.pointer);
    o.log.push_back(std::move(entry));
  }
  if (async) {
    o.pending.push_back(PendingWork{agent, op, std::move(depends), std::move(async)});
  } else {
    // The caller runs the work now: what it depends on must have completed.
    wait_for_locked(lock, o, depends);
  }
  return {};
}

// Host-side waits on a stream / event / the device merge into the host's clock.
void host_observes(StreamOrder& o, const Clock& clock) { merge(o.agents[kHost].clock, clock); }

std::string use_check(cudaStream_t stream, const char* call) {
  std::function<std::string(cudaStream_t, const char*)> check;
  {
    std::lock_guard<std::mutex> lock(order().mutex);
    check = order().use_check;
  }
  return check ? check(stream, call) : std::string();
}

const char* kind_name(cudaMemcpyKind kind) {
  switch (kind) {
    case cudaMemcpyHostToHost: return "host to host";
    case cudaMemcpyHostToDevice: return "host to device";
    case cudaMemcpyDeviceToHost: return "device to host";
    case cudaMemcpyDeviceToDevice: return "device to device";
    default: return "default";
  }
}

}  // namespace

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "operation not permitted in this state (cuda-emu stream-order checker)";
    case cudaErrorNotReady: return "device not ready";
  }
  return "unrecognized error code";
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotReady: return "cudaErrorNotReady";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (std::string bad = use_check(nullptr, "cudaDeviceSynchronize"); !bad.empty()) {
    return record(cudaErrorIllegalState, std::move(bad));
  }
  StreamOrder& o = order();
  std::unique_lock<std::mutex> lock(o.mutex);
  Clock all;
  for (const Agent& agent : o.agents) merge(all, agent.clock);
  wait_for_locked(lock, o, all);
  host_observes(o, all);
  count(counters().device_synchronizations);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return record(cudaErrorInvalidValue);
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  *total_bytes = m.capacity;
  *free_bytes = m.capacity > m.in_use ? m.capacity - m.in_use : 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  if (pointer == nullptr) return record(cudaErrorInvalidValue);
  *pointer = nullptr;
  DeviceMemory& m = memory();
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (bytes > m.capacity - std::min(m.capacity, m.in_use)) return record(cudaErrorMemoryAllocation);
    m.in_use += bytes;
    m.peak = std::max(m.peak, m.in_use);
  }
  // cudaMalloc returns 256-byte aligned memory. Under AddressSanitizer the block is exactly
  // `bytes` long, so a kernel running past the end of its buffer is a heap-buffer-overflow
  // report instead of a silent read of the rounding slack.
#if LA3_SIMT_ASAN
  void* memory_block = nullptr;
  if (posix_memalign(&memory_block, 256, bytes == 0 ? 1 : bytes) != 0) memory_block = nullptr;
#else
  void* memory_block = std::aligned_alloc(256, ((bytes + 255) / 256) * 256 + (bytes == 0 ? 256 : 0));
#endif
  if (memory_block == nullptr) {
    std::lock_guard<std::mutex> lock(m.mutex);
    m.in_use -= bytes;
    return record(cudaErrorMemoryAllocation);
  }
  std::lock_guard<std::mutex> lock(m.mutex);
  m.live[reinterpret_cast<uintptr_t>(memory_block)] = bytes;
  *pointer = memory_block;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  DeviceMemory& m = memory();
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (m.live.find(reinterpret_cast<uintptr_t>(pointer)) == m.live.end()) {
      return record(cudaErrorInvalidValue, "cudaFree of " + hex(pointer) + ", which cudaMalloc did not return");
    }
  }
  {
    // cudaFree synchronises the device: no pending work may still use the memory.
    StreamOrder& o = order();
    std::unique_lock<std::mutex> lock(o.mutex);
    Clock all;
    for (const Agent& agent : o.agents) merge(all, agent.clock);
    wait_for_locked(lock, o, all);
    o.buffers.erase(reinterpret_cast<uintptr_t>(pointer));
  }
  count(counters().synchronizing_frees);
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    const auto it = m.live.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == m.live.end()) return record(cudaErrorInvalidValue);
    m.in_use -= it->second;
    m.live.erase(it);
  }
  std::free(pointer);
  return cudaSuccess;
}

namespace {
// cudaMemcpy is cudaMemcpyAsync on the legacy default stream that returns once the copy is
// done: a host synchronisation whenever the device is involved.
cudaError_t memcpy_on(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream,
                      bool synchronous) {
  if (bytes == 0) return cudaSuccess;
  if (dst == nullptr || src == nullptr) return record(cudaErrorInvalidValue);
  DeviceMemory& m = memory();
  const bool dst_device = kind == cudaMemcpyDefault ? m.contains(dst, 1) : is_device(kind, true);
  const bool src_device = kind == cudaMemcpyDefault ? m.contains(src, 1) : is_device(kind, false);
  if (dst_device && !m.contains(dst, bytes)) {
    return record(cudaErrorInvalidValue, "cudaMemcpy destination " + la3::simt::check_device_range(dst, bytes));
  }
  if (src_device && !m.contains(src, bytes)) {
    return record(cudaErrorInvalidValue, "cudaMemcpy source " + la3::simt::check_device_range(src, bytes));
  }
  std::vector<la3::simt::BufferUse> uses;
  if (src_device) uses.push_back({src, la3::simt::Access::kRead, "source"});
  if (dst_device) uses.push_back({dst, la3::simt::Access::kWrite, "destination"});
  const std::string what = std::string(synchronous ? "cudaMemcpy" : "cudaMemcpyAsync") + " " + kind_name(kind) +
                           " (" + std::to_string(bytes) + " bytes)";
  if (std::string bad = la3::simt::enqueue_stream_work(stream, what, uses); !bad.empty()) {
    return record(cudaErrorIllegalState, std::move(bad));
  }
  std::memmove(dst, src, bytes);
  if (src_device && !dst_device) {
    count(counters().device_to_host_copies);
    count(counters().device_to_host_bytes, bytes);
  } else if (dst_device && !src_device) {
    count(counters().host_to_device_copies);
    count(counters().host_to_device_bytes, bytes);
  }
  if (synchronous && (src_device || dst_device)) count(counters().synchronous_copies);
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  return memcpy_on(dst, src, bytes, kind, stream, false);
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return memcpy_on(dst, src, bytes, kind, nullptr, true);
}
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!memory().contains(pointer, bytes)) {
    return record(cudaErrorInvalidValue, "cudaMemsetAsync " + la3::simt::check_device_range(pointer, bytes));
  }
  const std::string what = "cudaMemsetAsync (" + std::to_string(bytes) + " bytes)";
  if (std::string bad = la3::simt::enqueue_stream_work(stream, what, {{pointer, la3::simt::Access::kWrite, "buffer"}});
      !bad.empty()) {
    return record(cudaErrorIllegalState, std::move(bad));
  }
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (stream == nullptr) return record(cudaErrorInvalidValue);
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  const size_t agent = o.agents.size();
  Agent created;
  created.name = "stream " + std::to_string(agent);
  created.blocking = (flags & cudaStreamNonBlocking) == 0;
  created.clock = o.agents[kHost].clock;  // created after everything the host has seen
  o.agents.push_back(std::move(created));
  *stream = new CUstream_st{agent};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  // Pending work still completes (as on a GPU); the agent's clock outlives the handle.
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (std::string bad = use_check(stream, "cudaStreamSynchronize"); !bad.empty()) {
    return record(cudaErrorIllegalState, std::move(bad));
  }
  StreamOrder& o = order();
  std::unique_lock<std::mutex> lock(o.mutex);
  const Clock clock = current_clock(o, agent_of(stream));
  wait_for_locked(lock, o, clock);
  host_observes(o, clock);
  count(counters().stream_synchronizations);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  progress_locked(o);
  const Clock clock = current_clock(o, agent_of(stream));
  if (covers_pending(o, clock, nullptr)) return cudaErrorNotReady;
  host_observes(o, clock);
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int /*flags*/) {
  if (event == nullptr) return record(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent on a null event");
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  const size_t agent = agent_of(stream);
  Clock& clock = current_clock(o, agent);
  // An event never recorded is complete: waiting for it orders nothing (as on a GPU).
  if (event->recorded) merge(clock, event->clock);
  if (o.log_enabled) {
    la3::simt::StreamLogEntry entry;
    entry.sequence = ++o.sequence;
    entry.stream = o.agents[agent].name;
    entry.op = o.agents[agent].ops;
    entry.what = "cudaStreamWaitEvent: waits for " + (event->recorded ? event->where : std::string("an unrecorded event"));
    entry.is_wait = true;
    o.log.push_back(std::move(entry));
  }
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int /*flags*/) {
  if (event == nullptr) return record(cudaErrorInvalidValue);
  *event = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return record(cudaErrorInvalidResourceHandle, "cudaEventDestroy of a null event");
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return record(cudaErrorInvalidResourceHandle, "cudaEventRecord of a null event");
  if (std::string bad = use_check(stream, "cudaEventRecord"); !bad.empty()) {
    return record(cudaErrorIllegalState, std::move(bad));
  }
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  const size_t agent = agent_of(stream);
  event->clock = current_clock(o, agent);
  event->recorded = true;
  event->where = quoted(o, agent) + " after op #" + std::to_string(o.agents[agent].ops);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  if (event == nullptr) return record(cudaErrorInvalidResourceHandle, "cudaEventQuery of a null event");
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  if (!event->recorded) return cudaSuccess;
  progress_locked(o);
  if (covers_pending(o, event->clock, nullptr)) return cudaErrorNotReady;
  host_observes(o, event->clock);
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return record(cudaErrorInvalidResourceHandle, "cudaEventSynchronize of a null event");
  StreamOrder& o = order();
  std::unique_lock<std::mutex> lock(o.mutex);
  count(counters().event_synchronizations);  // the host blocks even when nothing is pending
  if (!event->recorded) return cudaSuccess;
  const Clock clock = event->clock;
  wait_for_locked(lock, o, clock);
  host_observes(o, clock);
  return cudaSuccess;
}

namespace la3::simt {
size_t emulated_device_bytes_in_use() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  return m.in_use;
}
size_t emulated_device_capacity() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  return m.capacity;
}
void set_emulated_device_capacity(size_t bytes) {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.capacity = bytes;
}
size_t emulated_device_peak_bytes() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  return m.peak;
}
void reset_emulated_device_peak() {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.peak = m.in_use;
}

RuntimeCounters runtime_counters() {
  Counters& c = counters();
  auto get = [](const std::atomic<uint64_t>& counter) { return counter.load(std::memory_order_relaxed); };
  RuntimeCounters r;
  r.stream_synchronizations = get(c.stream_synchronizations);
  r.event_synchronizations = get(c.event_synchronizations);
  r.device_synchronizations = get(c.device_synchronizations);
  r.synchronous_copies = get(c.synchronous_copies);
  r.synchronizing_frees = get(c.synchronizing_frees);
  r.host_synchronizations = r.stream_synchronizations + r.event_synchronizations + r.device_synchronizations +
                            r.synchronous_copies + r.synchronizing_frees;
  r.device_to_host_copies = get(c.device_to_host_copies);
  r.device_to_host_bytes = get(c.device_to_host_bytes);
  r.host_to_device_copies = get(c.host_to_device_copies);
  r.host_to_device_bytes = get(c.host_to_device_bytes);
  return r;
}

void reset_runtime_counters() {
  Counters& c = counters();
  for (std::atomic<uint64_t>* counter :
       {&c.stream_synchronizations, &c.event_synchronizations, &c.device_synchronizations, &c.synchronous_copies,
        &c.synchronizing_frees, &c.device_to_host_copies, &c.device_to_host_bytes, &c.host_to_device_copies,
        &c.host_to_device_bytes}) {
    counter->store(0, std::memory_order_relaxed);
  }
}

std::string last_error_detail() { return last_error == cudaSuccess ? std::string() : last_detail; }

std::string check_device_range(const void* pointer, size_t bytes) {
  uintptr_t start = 0;
  size_t size = 0;
  if (!memory().find(pointer, &start, &size)) {
    return hex(pointer) + " is not device memory (no live cudaMalloc allocation contains it)";
  }
  const uintptr_t end = reinterpret_cast<uintptr_t>(pointer) + bytes;
  if (end <= start + size) return {};
  return hex(pointer) + " + " + std::to_string(bytes) + " bytes runs past the end of its allocation " + hex(start) +
         " (" + std::to_string(size) + " bytes) by " + std::to_string(end - (start + size)) + " bytes";
}

std::string check_kernel_pointer(const void* pointer) {
  if (pointer == nullptr) return {};
  uintptr_t start = 0;
  size_t size = 0;
  if (memory().find(pointer, &start, &size)) return {};
  // One past the end: the byte before it is the allocation's last.
  const auto address = reinterpret_cast<uintptr_t>(pointer);
  if (memory().find(reinterpret_cast<const void*>(address - 1), &start, &size) && address == start + size) return {};
  return hex(pointer) + " is not device memory (no live cudaMalloc allocation contains it)";
}

std::string check_kernel_pointers(const void* const* pointers, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (std::string bad = check_kernel_pointer(pointers[i]); !bad.empty()) {
      return "pointer argument " + std::to_string(i) + ": " + bad +
             "; every pointer a kernel receives must be null or inside a live device allocation";
    }
  }
  return {};
}

std::string check_stream_work(cudaStream_t stream, const std::string& what, const std::vector<BufferUse>& uses) {
  const std::vector<ResolvedUse> resolved = resolve(uses);
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  const size_t agent = agent_of(stream);
  current_clock(o, agent);
  return check_locked(o, agent, what, resolved);
}

std::string enqueue_stream_work(cudaStream_t stream, const std::string& what, const std::vector<BufferUse>& uses,
                                std::shared_ptr<AsyncWork> async) {
  StreamOrder& o = order();
  std::unique_lock<std::mutex> lock(o.mutex);
  return enqueue_locked(lock, o, agent_of(stream), what, uses, std::move(async));
}

void progress_async_work() {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  progress_locked(o);
}

void set_stream_use_check(std::function<std::string(cudaStream_t, const char*)> check) {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  o.use_check = std::move(check);
}

void set_stream_name(cudaStream_t stream, const std::string& name) {
  if (stream == nullptr) return;
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  o.agents[stream->agent].name = name;
}

std::string stream_name(cudaStream_t stream) {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  return o.agents[agent_of(stream)].name;
}

void set_stream_log_enabled(bool enabled) {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  o.log_enabled = enabled;
}

std::vector<StreamLogEntry> stream_log() {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  return o.log;
}

void clear_stream_log() {
  StreamOrder& o = order();
  std::lock_guard<std::mutex> lock(o.mutex);
  o.log.clear();
}

std::string format_stream_log(const std::vector<StreamLogEntry>& entries) {
  std::string text;
  std::vector<std::pair<std::string, uint64_t>> latest;  // stream -> its last op so far
  for (const StreamLogEntry& entry : entries) {
    text += "stream '" + entry.stream + "' " + (entry.is_wait ? "after op #" : "op #") + std::to_string(entry.op) + ": " +
            entry.what;
    std::string after;
    for (const auto& [stream, op] : latest) {
      if (stream != entry.stream) after += (after.empty() ? "" : ", ") + ("'" + stream + "' op #" + std::to_string(op));
    }
    if (!after.empty()) text += " (queued after " + after + ")";
    text += "\n";
    if (!entry.is_wait) {
      auto it = std::find_if(latest.begin(), latest.end(), [&](const auto& p) { return p.first == entry.stream; });
      if (it == latest.end()) {
        latest.emplace_back(entry.stream, entry.op);
      } else {
        it->second = entry.op;
      }
    }
  }
  return text;
}

}  // namespace la3::simt
