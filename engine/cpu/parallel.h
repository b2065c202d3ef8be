// When a CPU kernel's loop is worth an OpenMP team. Why a threshold: every parallel region
// costs a fork/join, and when another process holds a core an OpenMP barrier waits for a
// descheduled worker -- a 0.2 s tiny-model training test took 80 s that way. Loops over
// fewer elements than this run on the calling thread.
#pragma once

#include <cstdint>

namespace la3 {

constexpr int64_t kMinParallelElements = int64_t{1} << 16;

inline bool worth_parallel(int64_t elements) { return elements >= kMinParallelElements; }

}  // namespace la3
