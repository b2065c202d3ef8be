// All-reduce bus bandwidth over message sizes, in the convention of NVIDIA's nccl-tests so
// the figures compare with published NCCL numbers (docs/DISTRIBUTED.md):
//   algbw = bytes / time,  busbw = algbw * 2 (n - 1) / n   (n ranks; a ring moves that much
//   per link, whatever n is).
// Two rows per size: LA3's communicator for the device (--device cpu: dist/mpi_communicator,
// non-blocking MPI on a progress thread, what CPU training uses; --device cuda: the NCCL
// communicator on cuda:<local rank>, what GPU training uses; --device cuda-emu: the same NCCL
// code against the emulated NCCL, a dry run whose times mean nothing) and a plain blocking
// MPI_Allreduce on host memory (the MPI transport's own cost).
// Run under a launcher:  mpirun -np 2 build/bench/la3_bench_allreduce [--device D] [--max-mib 64] [--iters N]
// Not Google Benchmark: every rank must run the same number of collectives, so the iteration
// count is fixed per size instead of adaptive. Times are the median of per-iteration maxima
// across ranks (the slowest rank finishes a collective).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/nccl_communicator.h"
#include "dist/world.h"
#include "engine/backend.h"
#include "engine/device_selection.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Median over iterations of the slowest rank's time for one collective.
template <typename Collective>
double time_collective(int iterations, Collective&& collective) {
  std::vector<double> times;
  for (int i = 0; i < iterations + 2; ++i) {  // two warm-up iterations
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = Clock::now();
    collective();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (i >= 2) times.push_back(seconds);
  }
  return median(times);
}

}  // namespace

int main(int argc, char** argv) {
  double max_mib = 64.0;
  int fixed_iterations = 0;
  std::string device_name = "cpu";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--max-mib" && i + 1 < argc) {
      max_mib = std::atof(argv[++i]);
    } else if (arg == "--iters" && i + 1 < argc) {
      fixed_iterations = std::atoi(argv[++i]);
    } else if (arg == "--device" && i + 1 < argc) {
      device_name = argv[++i];
    } else {
      std::fprintf(stderr, "usage: mpirun -np N la3_bench_allreduce [--device cpu|cuda|cuda-emu] [--max-mib M] [--iters N]\n");
      return 2;
    }
  }
  absl::StatusOr<la3::dist::World> world = la3::dist::initialize_world();
  if (!world.ok() || !world->mpi) {
    std::fprintf(stderr, "la3_bench_allreduce: run it under mpirun or srun (%s)\n",
                 world.ok() ? "no launcher detected" : std::string(world.status().message()).c_str());
    return 2;
  }
  // The device and its communicator: host memory and MPI, or device memory and NCCL.
  la3::Device device = la3::Device::cpu();
  std::unique_ptr<la3::dist::Communicator> comm;
  if (device_name == "cpu") {
    comm = la3::dist::make_world_communicator(600.0);
  } else {
    const std::string requested = device_name == "cuda" ? "cuda:" + std::to_string(world->local_rank) : device_name;
    absl::StatusOr<la3::DeviceChoice> choice = la3::activate_device(requested);
    if (!choice.ok()) {
      if (world->rank == 0) {
        std::fprintf(stderr, "la3_bench_allreduce: %s\n", std::string(choice.status().message()).c_str());
      }
      la3::dist::finalize_world();
      return 2;
    }
    device = choice->device;
    absl::Status made = la3::CaptureStatus(
        [&] { comm = la3::dist::make_nccl_communicator(la3::backend_for(device), 600.0); });
    if (!made.ok()) {
      std::fprintf(stderr, "la3_bench_allreduce: %s\n", std::string(made.message()).c_str());
      la3::dist::abort_world(2);
    }
  }
  const int n = world->size;
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  if (world->rank == 0) {
    std::printf("all-reduce (sum, f32), %d ranks (%s), %s communicator on %s, median of the slowest rank per iteration\n",
                n, world->launcher.c_str(), comm->name().c_str(), device_name.c_str());
    std::printf("%12s %8s | %10s %10s %10s | %10s %10s %10s\n", "bytes", "iters", "la3 us", "algbw GB/s", "busbw GB/s",
                "MPI us", "algbw GB/s", "busbw GB/s");
  }
  const size_t max_bytes = static_cast<size_t>(max_mib * 1024.0 * 1024.0);
  for (size_t bytes = 8; bytes <= max_bytes; bytes *= 4) {
    const int64_t count = static_cast<int64_t>(bytes / 4);
    std::vector<float> buffer(static_cast<size_t>(count), 1.0f);
    // The communicator's buffer lives on its device (host memory for mpi).
    const la3::Tensor device_buffer = la3::Tensor::full({count}, 1.0, la3::DType::kF32, device);
    void* comm_buffer = device_name == "cpu" ? static_cast<void*>(buffer.data()) : device_buffer.raw_data();
    // Fewer iterations for large messages keeps the whole sweep to seconds.
    const int iterations = fixed_iterations > 0 ? fixed_iterations : bytes <= (1 << 20) ? 50 : bytes <= (16 << 20) ? 10 : 4;
    const double ours = time_collective(iterations, [&] {
      absl::Status s = comm->all_reduce_sum(comm_buffer, count, la3::dist::ElementType::kF32)->wait();
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
        la3::dist::abort_world(1);
      }
    });
    const double plain = time_collective(iterations, [&] {
      MPI_Allreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    });
    if (world->rank == 0) {
      const double b = static_cast<double>(bytes);
      std::printf("%12zu %8d | %10.1f %10.3f %10.3f | %10.1f %10.3f %10.3f\n", bytes, iterations, ours * 1e6,
                  b / ours / 1e9, b / ours / 1e9 * bus_factor, plain * 1e6, b / plain / 1e9, b / plain / 1e9 * bus_factor);
    }
  }
  comm.reset();
  la3::dist::finalize_world();
  return 0;
}
