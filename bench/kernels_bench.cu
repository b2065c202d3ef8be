// GPU kernel benchmarks (issue 6): every kernel family of the CUDA backend at MolT5-small
// shapes (d_model 512, d_ff 1024, 6 heads x 64, vocab 32128), timed with CUDA events on the
// backend's stream (warm-up launches, then the median of several repetitions), reported as
// achieved GB/s for the memory-bound kernels and TFLOP/s for attention and the GEMMs, each
// against the device's peak (see peak_of() for the formulas and the per-architecture table;
// docs/KERNELS.md has the byte/FLOP model behind every row).
//
// Kernels are launched through the backend (la3::cuda_device::CudaBackend), not through
// simt::launch directly: the rows then time exactly what a training step runs (the same
// launch configurations, the extra launches some ops make such as the zero fills before the
// attention backward and the two kernels of the RMSNorm backward, the bf16 operand casts
// before a cuBLASLt GEMM), and no kernel is defined twice in one binary (the kernels live in
// headers; la3_cuda already instantiates them). The one row that bypasses an op is "cuBLASLt
// only", which calls the backend's GemmEngine on operands cast beforehand.
//
// Attention is compared with cuDNN (bench/cudnn_attention.h: the multi-head attention API with
// projections disabled) where the problem allows it: without T5's additive relative-position
// bias, i.e. cross-attention and a bias-free causal self-attention. Our kernel runs the same
// bias-free problems, the outputs and gradients of both are compared (max difference printed
// with the rows), then both are timed. Without a GPU the program prints one line ("no CUDA device: <runtime reason>; nothing to
// benchmark") and exits 0 (ctest bench.kernels_without_gpu).
//
// g++ also compiles this file against the cuda-emu backend (la3_bench_kernels_emu, ctest
// bench.kernels_emu_dry_run): the same code then runs every row once on the SIMT emulation, so
// the benchmark's buffers, parameters and launches are exercised on machines without a GPU.
// Its times are CPU times, not GPU figures, and no peaks are printed.
//
//   la3_bench_kernels [--batch 8,16,32] [--seq 128,256,512] [--reps 20] [--warmup 3]
#if defined(__CUDACC__)
#include <cuda_runtime.h>
#else
#include <chrono>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/gemm_engine.h"
#include "engine/error.h"

#if defined(__CUDACC__) && defined(LA3_HAVE_CUDNN)
#include "bench/cudnn_attention.h"
#endif

namespace {

#if defined(__CUDACC__)
using la3::cuda_device::CudaBackend;
using la3::cuda_device::GemmEngine;
constexpr la3::DeviceType kDeviceType = la3::DeviceType::kCuda;
#else
using la3::cuda_emu::CudaBackend;
using la3::cuda_emu::GemmEngine;
constexpr la3::DeviceType kDeviceType = la3::DeviceType::kCudaEmu;
#endif

// MolT5-small (google/t5-v1_1-small layout).
constexpr int64_t kDModel = 512, kDFF = 1024, kHeads = 6, kHeadDim = 64, kVocab = 32128;
constexpr int64_t kParameters = 76961152;  // 8 + 8 layers, untied lm_head

struct Options {
  std::vector<int64_t> batches{8, 16, 32};
  std::vector<int64_t> seqs{128, 256, 512};
  int reps = 20;
  int warmup = 3;
};

std::vector<int64_t> parse_list(const char* text) {
  std::vector<int64_t> values;
  for (const char* p = text; *p != '\0';) {
    char* end = nullptr;
    const long long value = std::strtoll(p, &end, 10);
    if (end == p || value <= 0) {
      std::fprintf(stderr, "la3_bench_kernels: bad list '%s'\n", text);
      std::exit(2);
    }
    values.push_back(value);
    p = *end == ',' ? end + 1 : end;
  }
  return values;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "la3_bench_kernels: %s needs a value\n", arg.c_str());
      std::exit(2);
    }
    const char* value = argv[++i];
    if (arg == "--batch") o.batches = parse_list(value);
    else if (arg == "--seq") o.seqs = parse_list(value);
    else if (arg == "--reps") o.reps = std::max(1, std::atoi(value));
    else if (arg == "--warmup") o.warmup = std::max(0, std::atoi(value));
    else {
      std::fprintf(stderr, "la3_bench_kernels: unknown option %s\n", arg.c_str());
      std::exit(2);
    }
  }
  return o;
}

struct Peak {
  double bytes_per_s = 0, flops_per_s = 0;
};

#if defined(__CUDACC__)
// Dense bf16 tensor-core FLOPs (2 per FMA) per SM per clock with fp32 accumulation, from the
// vendors' whitepapers. peak = SMs x max clock x this. Checks: A100 108 x 1.41 GHz x 2048 =
// 312 TFLOP/s; H100 SXM 132 x 1.83 GHz x 4096 = 989 TFLOP/s (the max clock cudaDevAttrClockRate
// reports is the boost clock, 1.98 GHz, so the figure printed is ~7% above the datasheet);
// L40S 142 x 2.52 GHz x 1024 = 366; A6000 84 x 1.80 GHz x 1024 = 155.
struct ArchRate {
  int flops_per_clock_per_sm;
  const char* note;
};
ArchRate bf16_rate(int major, int minor) {
  if (major == 8 && minor == 0) return {2048, "GA100 (A100, A30)"};
  if (major == 8) return {1024, "GA10x/AD10x (sm_86/87/89; GeForce parts run fp32 accumulation at half this)"};
  if (major == 9) return {4096, "GH100 (H100, H200)"};
  if (major == 10) return {8192, "GB100/GB110 (B200, B300, estimate)"};
  if (major == 12) return {1024, "GB20x (RTX 50xx, RTX PRO Blackwell; estimate)"};
  return {0, "no bf16 tensor cores known for this architecture"};
}

Peak peak_of(int device, std::string* description) {
  cudaDeviceProp prop{};
  LA3_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int clock_khz = 0, memory_clock_khz = 0, bus_bits = 0;
  LA3_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, device));
  LA3_CUDA_CHECK(cudaDeviceGetAttribute(&memory_clock_khz, cudaDevAttrMemoryClockRate, device));
  LA3_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
  const ArchRate rate = bf16_rate(prop.major, prop.minor);
  Peak peak;
  // Double data rate: two transfers per memory clock over the whole bus.
  peak.bytes_per_s = 2.0 * memory_clock_khz * 1e3 * (bus_bits / 8.0);
  peak.flops_per_s = static_cast<double>(prop.multiProcessorCount) * clock_khz * 1e3 * rate.flops_per_clock_per_sm;
  char text[768];
  std::snprintf(text, sizeof text,
                "%s (sm_%d%d, %d SMs, %.0f MHz, %.1f GiB)\n"
                "peak memory bandwidth %.1f GB/s = 2 x %.0f MHz memory clock x %d-bit bus\n"
                "peak dense bf16 tensor %.1f TFLOP/s = %d SMs x %.0f MHz x %d FLOP/clock/SM [%s]",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, clock_khz / 1e3,
                static_cast<double>(prop.totalGlobalMem) / (1u << 30), peak.bytes_per_s / 1e9, memory_clock_khz / 1e3,
                bus_bits, peak.flops_per_s / 1e12, prop.multiProcessorCount, clock_khz / 1e3,
                rate.flops_per_clock_per_sm, rate.note);
  *description = text;
  return peak;
}
#else
Peak peak_of(int /*device*/, std::string* description) {
  *description = "cuda-emu (dry run: the kernels run once under the SIMT emulation on the CPU; times are CPU times)";
  return Peak{};  // no peaks: no GB/s or TFLOP/s percentages
}
#endif

#if defined(__CUDACC__)
class Timer {
 public:
  Timer(cudaStream_t stream, const Options& options) : stream_(stream), options_(options) {
    LA3_CUDA_CHECK(cudaEventCreate(&start_));
    LA3_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median milliseconds of `run` (enqueued on the stream) over the repetitions.
  double median_ms(const std::function<void()>& run) {
    for (int i = 0; i < options_.warmup; ++i) run();
    std::vector<float> times;
    for (int i = 0; i < options_.reps; ++i) {
      LA3_CUDA_CHECK(cudaEventRecord(start_, stream_));
      run();
      LA3_CUDA_CHECK(cudaEventRecord(stop_, stream_));
      LA3_CUDA_CHECK(cudaEventSynchronize(stop_));
      float ms = 0;
      LA3_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    const size_t n = times.size();
    return n % 2 == 1 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  }

 private:
  cudaStream_t stream_;
  const Options& options_;
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};
#else
// The emulation runs kernels synchronously: a host clock times them.
class Timer {
 public:
  Timer(cudaStream_t /*stream*/, const Options& options) : options_(options) {}
  double median_ms(const std::function<void()>& run) {
    for (int i = 0; i < options_.warmup; ++i) run();
    std::vector<double> times;
    for (int i = 0; i < options_.reps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      run();
      times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const size_t n = times.size();
    return n % 2 == 1 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
  }

 private:
  const Options& options_;
};
#endif

// Device buffers from the backend's caching allocator, freed at the end of a shape.
class Buffers {
 public:
  explicit Buffers(CudaBackend& backend) : backend_(backend) {}
  ~Buffers() {
    for (auto& [pointer, bytes] : blocks_) backend_.allocator().deallocate(pointer, bytes);
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
  float* floats(int64_t count, float value) {
    auto* p = static_cast<float*>(raw(static_cast<size_t>(count) * sizeof(float)));
    backend_.fill(count, la3::DType::kF32, value, p);
    return p;
  }
  template <typename T>
  T* from_host(const std::vector<T>& host) {
    T* p = static_cast<T*>(raw(host.size() * sizeof(T)));
    backend_.copy_from_host(p, host.data(), host.size() * sizeof(T));
    return p;
  }
  void* raw(size_t bytes) {
    void* p = backend_.allocator().allocate(bytes);
    blocks_.emplace_back(p, bytes);
    return p;
  }

 private:
  CudaBackend& backend_;
  std::vector<std::pair<void*, size_t>> blocks_;
};

struct Row {
  std::string kernel, shape;
  double bytes = 0, flops = 0;  // the model (docs/KERNELS.md); 0 = not reported
};

class Report {
 public:
  Report(Timer& timer, const Peak& peak) : timer_(timer), peak_(peak) {
    std::printf("%-42s %-20s %10s %9s %6s %9s %6s\n", "kernel", "shape", "median_us", "GB/s", "%bw", "TFLOP/s",
                "%peak");
  }
  void time(const Row& row, const std::function<void()>& run) {
    const double ms = timer_.median_ms(run);
    const double s = ms * 1e-3;
    char gbs[32] = "-", bw[32] = "-", tfs[32] = "-", fp[32] = "-";
    const bool gpu = peak_.bytes_per_s > 0;  // the emulation's CPU times are no GPU throughput
    if (row.bytes > 0 && gpu) {
      std::snprintf(gbs, sizeof gbs, "%.1f", row.bytes / s / 1e9);
      std::snprintf(bw, sizeof bw, "%.1f", 100.0 * row.bytes / s / peak_.bytes_per_s);
    }
    if (row.flops > 0 && gpu) {
      std::snprintf(tfs, sizeof tfs, "%.2f", row.flops / s / 1e12);
      if (peak_.flops_per_s > 0) std::snprintf(fp, sizeof fp, "%.1f", 100.0 * row.flops / s / peak_.flops_per_s);
    }
    std::printf("%-42s %-20s %10.1f %9s %6s %9s %6s\n", row.kernel.c_str(), row.shape.c_str(), ms * 1e3, gbs, bw, tfs,
                fp);
    std::fflush(stdout);
  }

 private:
  Timer& timer_;
  Peak peak_;
};

std::string dims(std::initializer_list<int64_t> values) {
  std::string text;
  for (int64_t v : values) {
    if (!text.empty()) text += 'x';
    text += std::to_string(v);
  }
  return text;
}

la3::kernels::GemmParams linear_params(int64_t tokens, int64_t in, int64_t out) {
  // y[tokens, out] = x[tokens, in] W^T with HF's [out, in] weight (what ops::linear runs).
  la3::kernels::GemmParams p;
  p.trans_b = true;
  p.m = tokens;
  p.n = out;
  p.k = in;
  p.lda = in;
  p.ldb = in;
  p.ldc = out;
  return p;
}

// Attention over [batch, seq, heads, head_dim]: T5 self-attention (relative-position bias,
// padding mask on the encoder, dropout 0.1 on the probabilities) or the bias-free problem cuDNN
// can also run (no mask, no dropout).
la3::kernels::AttentionParams attention_params(int64_t batch, int64_t seq, bool causal, bool t5_self_attention) {
  la3::kernels::AttentionParams p;
  p.batch = batch;
  p.heads = kHeads;
  p.q_len = seq;
  p.k_len = seq;
  p.head_dim = kHeadDim;
  p.causal = causal;
  p.bidirectional = !causal;
  p.has_bias = t5_self_attention;
  p.has_key_mask = t5_self_attention && !causal;
  p.dropout = t5_self_attention ? la3::kernels::DropoutParams{0.1f, 99, 1, 5} : la3::kernels::DropoutParams{};
  return p;
}

// Largest |a - b| over the largest |b| (0 when b is all zero).
[[maybe_unused]] double max_relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// Bias-free attention (T5 cross-attention; causal self-attention without the bias): our kernel
// and, with cuDNN, cudnnMultiHeadAttnForward/BackwardData on the same random inputs. The two
// are checked against each other before they are timed; a disagreement above 1e-4 (both fp32)
// is printed as MISMATCH and leaves the timings unreported.
void compare_attention_with_cudnn(CudaBackend& backend, Report& report, Buffers& buf, int64_t batch, int64_t seq) {
  const int64_t n = batch * seq * kHeads * kHeadDim;
  constexpr double f = sizeof(float);
  uint32_t state = 12345;
  auto random_values = [&] {
    std::vector<float> values(static_cast<size_t>(n));
    for (float& x : values) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    return values;
  };
  float* q = buf.from_host(random_values());
  float* k = buf.from_host(random_values());
  float* v = buf.from_host(random_values());
  float* dout = buf.from_host(random_values());
  float *out = buf.floats(n, 0.0f), *dq = buf.floats(n, 0.0f), *dk = buf.floats(n, 0.0f), *dv = buf.floats(n, 0.0f);
  // What the forward saves for the backward, as the backend chose it (the row log-sum-exp).
  float* saved = buf.floats(backend.attention_saved_elements(attention_params(batch, seq, false, false)), 0.0f);
  const std::string shape = dims({batch, seq, kHeads, kHeadDim});
  for (const bool causal : {false, true}) {
    const la3::kernels::AttentionParams p = attention_params(batch, seq, causal, /*t5_self_attention=*/false);
    const double core = static_cast<double>(batch) * kHeads * seq * seq * kHeadDim * (causal ? 0.5 : 1.0);
    const std::string name = causal ? "attention causal, no bias" : "attention cross (no bias)";
    auto ours_forward = [&] { backend.attention_forward(p, la3::DType::kF32, q, k, v, nullptr, nullptr, out, saved); };
    auto ours_backward = [&] {
      backend.attention_backward(p, la3::DType::kF32, dout, q, k, v, out, nullptr, nullptr, saved, dq, dk, dv, nullptr);
    };
#if defined(__CUDACC__) && defined(LA3_HAVE_CUDNN)
    try {
      la3::bench::CudnnAttention cudnn(la3::bench::CudnnAttentionShape{static_cast<int>(batch), static_cast<int>(kHeads),
                                                                       static_cast<int>(seq), static_cast<int>(seq),
                                                                       static_cast<int>(kHeadDim), causal},
                                       backend.stream());
      float *c_out = buf.floats(n, 0.0f), *c_dq = buf.floats(n, 0.0f), *c_dk = buf.floats(n, 0.0f),
            *c_dv = buf.floats(n, 0.0f);
      ours_forward();
      ours_backward();
      cudnn.forward(q, k, v, c_out);
      cudnn.backward(dout, q, k, v, c_dq, c_dk, c_dv);
      auto host = [&](const float* device) {
        std::vector<float> values(static_cast<size_t>(n));
        backend.copy_to_host(values.data(), device, values.size() * sizeof(float));
        return values;
      };
      const double worst = std::max({max_relative_difference(host(out), host(c_out)),
                                     max_relative_difference(host(dq), host(c_dq)),
                                     max_relative_difference(host(dk), host(c_dk)),
                                     max_relative_difference(host(dv), host(c_dv))});
      std::printf("%-42s %s %.2e (out, dq, dk, dv; cuDNN %s)\n", (name + ": ours vs cuDNN").c_str(),
                  worst <= 1e-4 ? "agree, max relative difference" : "MISMATCH, max relative difference", worst,
                  la3::bench::CudnnAttention::version().c_str());
      if (worst > 1e-4) continue;
      report.time({"cuDNN MHA " + name + " fwd", shape, 4 * n * f, 4 * core}, [&] { cudnn.forward(q, k, v, c_out); });
      report.time({"cuDNN MHA " + name + " bwd", shape, 7 * n * f, 10 * core},
                  [&] { cudnn.backward(dout, q, k, v, c_dq, c_dk, c_dv); });
    } catch (const std::exception& error) {
      std::printf("%-42s unavailable: %s\n", ("cuDNN attention, " + name).c_str(), error.what());
    }
#else
    std::printf("%-42s %s\n", ("cuDNN attention, " + name).c_str(),
#if defined(__CUDACC__)
                "not built (cuDNN not found at configure time)");
#else
                "not on the emulation (cuDNN needs a GPU)");
#endif
#endif
    report.time({"ours " + name + " fwd", shape, 4 * n * f, 4 * core}, ours_forward);
    report.time({"ours " + name + " bwd", shape, 7 * n * f, 10 * core}, ours_backward);
  }
}

void bench_shape(CudaBackend& backend, Timer& timer, const Peak& peak, int64_t batch, int64_t seq) {
  const int64_t tokens = batch * seq;
  constexpr double f = sizeof(float);
  std::printf("\nbatch %lld, seq %lld (%lld tokens)\n", static_cast<long long>(batch), static_cast<long long>(seq),
              static_cast<long long>(tokens));
  Buffers buf(backend);
  Report report(timer, peak);
  const std::string td = dims({tokens, kDModel}), tf = dims({tokens, kDFF});

  // Pointwise (T5 v1.1 feed-forward: gated GELU; residual adds; dropout).
  {
    const int64_t n = tokens * kDModel, nf = tokens * kDFF;
    float *a = buf.floats(n, 0.5f), *b = buf.floats(n, 0.25f), *out = buf.floats(n, 0.0f);
    float *gate = buf.floats(nf, 0.5f), *lin = buf.floats(nf, 0.25f), *hidden = buf.floats(nf, 0.0f);
    float *dgate = buf.floats(nf, 0.0f), *dlin = buf.floats(nf, 0.0f);
    la3::kernels::BinaryParams bp{n, n};
    report.time({"add_forward (residual)", td, 3 * n * f, 0}, [&] { backend.add_forward(bp, la3::DType::kF32, a, b, out); });
    la3::kernels::DropoutParams dp{0.1f, 1234, 7, 3};
    dp.positions = seq;  // hidden states [batch, seq, d_model]: keys by (row, position, column)
    dp.width = kDModel;
    report.time({"dropout_forward p=0.1", td, 2 * n * f, 0},
                [&] { backend.dropout_forward(dp, n, la3::DType::kF32, a, out); });
    report.time({"gated_gelu_forward", tf, 3 * nf * f, 0},
                [&] { backend.gated_gelu_forward(nf, la3::DType::kF32, gate, lin, hidden); });
    report.time({"gated_gelu_backward", tf, 5 * nf * f, 0},
                [&] { backend.gated_gelu_backward(nf, la3::DType::kF32, hidden, gate, lin, dgate, dlin); });
  }
  // RMSNorm (backward = the dx kernel + the dweight kernel: x and dout are read twice).
  {
    const int64_t n = tokens * kDModel;
    float *x = buf.floats(n, 0.5f), *w = buf.floats(kDModel, 1.0f), *y = buf.floats(n, 0.0f);
    float *rstd = buf.floats(tokens, 0.0f), *dx = buf.floats(n, 0.0f), *dw = buf.floats(kDModel, 0.0f);
    la3::kernels::RmsNormParams p{tokens, kDModel, 1e-6f};
    report.time({"rmsnorm_forward", td, 2 * n * f, 0},
                [&] { backend.rmsnorm_forward(p, la3::DType::kF32, x, w, y, rstd); });
    report.time({"rmsnorm_backward (dx + dweight)", td, 5 * n * f, 0},
                [&] { backend.rmsnorm_backward(p, la3::DType::kF32, y, x, w, rstd, dx, dw); });
    // The residual add fused into the norm: reads residual and branch, writes sum and out
    // (the unfused add + norm move 3 + 2 rows).
    float* branch = buf.floats(n, 0.25f);
    float* sum = buf.floats(n, 0.0f);
    report.time({"add_rmsnorm_forward (fused residual)", td, 4 * n * f, 0},
                [&] { backend.add_rmsnorm_forward(p, la3::DType::kF32, x, branch, w, sum, y, rstd); });
    // bf16 activations: half the bytes.
    auto* x16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(n) * 2));
    auto* y16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(n) * 2));
    auto* dx16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(n) * 2));
    backend.convert(n, la3::DType::kF32, x, la3::DType::kBF16, x16);
    backend.convert(n, la3::DType::kF32, x, la3::DType::kBF16, y16);
    report.time({"rmsnorm_forward bf16", td, 2 * n * 2.0, 0},
                [&] { backend.rmsnorm_forward(p, la3::DType::kBF16, x16, w, y16, rstd); });
    report.time({"rmsnorm_backward bf16 (dx + dweight)", td, 5 * n * 2.0, 0},
                [&] { backend.rmsnorm_backward(p, la3::DType::kBF16, y16, x16, w, rstd, dx16, dw); });
  }
  // Softmax over [batch * heads * seq, seq] rows (the unfused attention probabilities).
  {
    const int64_t rows = batch * kHeads * seq, n = rows * seq;
    float *x = buf.floats(n, 0.1f), *y = buf.floats(n, 0.0f), *dx = buf.floats(n, 0.0f);
    la3::kernels::SoftmaxParams p{rows, seq};
    const std::string shape = dims({rows, seq});
    report.time({"softmax_forward", shape, 2 * n * f, 0}, [&] { backend.softmax_forward(p, la3::DType::kF32, x, y); });
    report.time({"softmax_backward", shape, 3 * n * f, 0},
                [&] { backend.softmax_backward(p, la3::DType::kF32, x, y, dx); });
  }
  // Embedding gather / scatter-add and the cross-entropy over the vocabulary.
  {
    std::vector<int64_t> host_ids(static_cast<size_t>(tokens));
    for (int64_t i = 0; i < tokens; ++i) host_ids[static_cast<size_t>(i)] = (i * 7919) % kVocab;
    const int64_t* ids = buf.from_host(host_ids);
    float *table = buf.floats(kVocab * kDModel, 0.01f), *emb = buf.floats(tokens * kDModel, 0.0f);
    float* dtable = buf.floats(kVocab * kDModel, 0.0f);
    la3::kernels::EmbeddingParams ep{tokens, kVocab, kDModel};
    const double n = static_cast<double>(tokens * kDModel);
    report.time({"embedding_forward", td, 2 * n * f + tokens * 8.0, 0},
                [&] { backend.embedding_forward(ep, la3::DType::kF32, ids, table, emb); });
    report.time({"embedding_backward (atomics)", td, 3 * n * f + tokens * 8.0, 0},
                [&] { backend.embedding_backward(ep, la3::DType::kF32, ids, emb, dtable); });
    const int64_t nl = tokens * kVocab;
    float *logits = buf.floats(nl, 0.001f), *dlogits = buf.floats(nl, 0.0f);
    float *loss = buf.floats(tokens, 0.0f), *lse = buf.floats(tokens, 0.0f), *weight = buf.floats(tokens, 1.0f);
    la3::kernels::CrossEntropyParams cp{tokens, kVocab, -100};
    const std::string tv = dims({tokens, kVocab});
    report.time({"cross_entropy_forward", tv, nl * f, 0},
                [&] { backend.cross_entropy_forward(cp, la3::DType::kF32, logits, ids, loss, lse); });
    report.time({"cross_entropy_backward", tv, 2 * nl * f, 0},
                [&] { backend.cross_entropy_backward(cp, la3::DType::kF32, logits, ids, lse, weight, dlogits); });
    // bf16 logits and dlogits (bf16 activations): half the bytes of the vocabulary passes.
    auto* logits16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(nl) * 2));
    auto* dlogits16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(nl) * 2));
    LA3_CUDA_CHECK(cudaMemsetAsync(logits16, 0x3c, static_cast<size_t>(nl) * 2, backend.stream()));
    report.time({"cross_entropy_forward (bf16 logits)", tv, nl * 2.0, 0},
                [&] { backend.cross_entropy_forward(cp, la3::DType::kBF16, logits16, ids, loss, lse); });
    report.time({"cross_entropy_backward (bf16 logits)", tv, 2 * nl * 2.0, 0},
                [&] { backend.cross_entropy_backward(cp, la3::DType::kBF16, logits16, ids, lse, weight, dlogits16); });
  }
  // Fused T5 attention (fp32 CUDA cores; row per block). FLOPs: forward 4 B H Lq Lk d (QK^T,
  // PV), backward 10 B H Lq Lk d (recomputed QK^T, dO V^T, dV, dK, dQ); causal counts the
  // visible half only. Bytes: q, k, v (+ dout) read, out (+ dq, dk, dv) written once. The
  // "bf16" lines run the same kernels on bf16 activations (q, k, v, out, dout, dq, dk, dv: half
  // the bytes; the bias table and the saved log-sum-exp stay f32, arithmetic is fp32; the bf16
  // backward's f32 dq accumulator, zeroed, summed by atomics and rounded into dq, is not counted).
  {
    const int64_t n = tokens * kHeads * kHeadDim;
    float *q = buf.floats(n, 0.01f), *k = buf.floats(n, 0.02f), *v = buf.floats(n, 0.03f), *out = buf.floats(n, 0.0f);
    float *dq = buf.floats(n, 0.0f), *dk = buf.floats(n, 0.0f), *dv = buf.floats(n, 0.0f);
    float *table = buf.floats(32 * kHeads, 0.1f), *dtable = buf.floats(32 * kHeads, 0.0f);
    float* saved = buf.floats(backend.attention_saved_elements(attention_params(batch, seq, false, true)), 0.0f);
    std::vector<int32_t> host_mask(static_cast<size_t>(tokens), 1);
    const int32_t* mask = buf.from_host(host_mask);
    auto bf16_copy = [&](const float* x) {
      auto* y = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(n) * 2));
      backend.convert(n, la3::DType::kF32, x, la3::DType::kBF16, y);
      return y;
    };
    uint16_t *q16 = bf16_copy(q), *k16 = bf16_copy(k), *v16 = bf16_copy(v), *out16 = bf16_copy(out);
    uint16_t *dq16 = bf16_copy(dq), *dk16 = bf16_copy(dk), *dv16 = bf16_copy(dv);
    for (const bool causal : {false, true}) {
      const la3::kernels::AttentionParams p = attention_params(batch, seq, causal, /*t5_self_attention=*/true);
      const double core = static_cast<double>(batch) * kHeads * seq * seq * kHeadDim * (causal ? 0.5 : 1.0);
      const std::string name = causal ? "attention decoder self (causal)" : "attention encoder self";
      const std::string shape = dims({batch, seq, kHeads, kHeadDim});
      report.time({name + " fwd", shape, 4 * n * f, 4 * core},
                  [&] { backend.attention_forward(p, la3::DType::kF32, q, k, v, table, mask, out, saved); });
      report.time({name + " bwd", shape, 7 * n * f, 10 * core}, [&] {
        backend.attention_backward(p, la3::DType::kF32, out, q, k, v, out, table, mask, saved, dq, dk, dv, dtable);
      });
      report.time({name + " fwd bf16", shape, 4 * n * 2.0, 4 * core},
                  [&] { backend.attention_forward(p, la3::DType::kBF16, q16, k16, v16, table, mask, out16, saved); });
      report.time({name + " bwd bf16", shape, 7 * n * 2.0, 10 * core}, [&] {
        backend.attention_backward(p, la3::DType::kBF16, out16, q16, k16, v16, out16, table, mask, saved, dq16, dk16,
                                   dv16, dtable);
      });
    }
  }
  compare_attention_with_cudnn(backend, report, buf, batch, seq);
  // GEMMs (bf16 operands, fp32 accumulation and output): the backend path casts both operands
  // to bf16 first; "cuBLASLt only" runs the GemmEngine on operands cast beforehand.
  {
    GemmEngine engine(backend.allocator(), backend.stream());
    struct Shape {
      const char* name;
      int64_t in, out;
    };
    for (const Shape& s : {Shape{"gemm q/k/v projection", kDModel, kHeads * kHeadDim},
                           Shape{"gemm attention output", kHeads * kHeadDim, kDModel}, Shape{"gemm ffn wi_0/wi_1", kDModel, kDFF},
                           Shape{"gemm ffn wo", kDFF, kDModel}, Shape{"gemm lm_head", kDModel, kVocab}}) {
      const la3::kernels::GemmParams p = linear_params(tokens, s.in, s.out);
      float *x = buf.floats(tokens * s.in, 0.01f), *w = buf.floats(s.out * s.in, 0.02f), *y = buf.floats(tokens * s.out, 0.0f);
      auto* x16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(tokens * s.in) * 2));
      auto* w16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(s.out * s.in) * 2));
      LA3_CUDA_CHECK(cudaMemsetAsync(x16, 0x3c, static_cast<size_t>(tokens * s.in) * 2, backend.stream()));
      LA3_CUDA_CHECK(cudaMemsetAsync(w16, 0x3c, static_cast<size_t>(s.out * s.in) * 2, backend.stream()));
      const double flops = 2.0 * tokens * s.in * s.out;
      const double bytes16 = 2.0 * (tokens * s.in + s.out * s.in) + 4.0 * tokens * s.out;
      const double bytes32 = 4.0 * (tokens * s.in + s.out * s.in) + bytes16;  // + f32 reads, bf16 writes of the casts
      const std::string shape = dims({tokens, s.in, s.out});
      report.time({std::string(s.name) + " (casts + cuBLASLt)", shape, bytes32, flops}, [&] { backend.gemm(p, x, w, y); });
      report.time({std::string(s.name) + " (cuBLASLt only)", shape, bytes16, flops},
                  [&] { engine.run_bf16(p, x16, w16, y); });
      // bf16 activations: x and y bf16, the f32 weight cast (no registered copy here).
      la3::kernels::GemmParams p16 = p;
      p16.a_type = p16.c_type = la3::DType::kBF16;
      auto* y16 = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(tokens * s.out) * 2));
      const double bytes_act16 = 2.0 * (tokens * s.in + tokens * s.out) + 6.0 * s.out * s.in;
      report.time({std::string(s.name) + " (bf16 act, weight cast)", shape, bytes_act16, flops},
                  [&] { backend.gemm(p16, x16, w, y16); });
    }
  }
  // Whole-model optimizer and gradient norm, as one launch over all parameters, then split into
  // tensors as the engine holds them.
  {
    const int64_t n = kParameters;
    float *param = buf.floats(n, 0.1f), *grad = buf.floats(n, 0.001f), *m = buf.floats(n, 0.0f), *v = buf.floats(n, 0.0f);
    la3::kernels::AdamWParams p;
    p.count = n;
    p.lr = 1e-4;
    p.weight_decay = 0.01;
    const std::string shape = std::to_string(n) + " params";
    report.time({"adamw_step (all parameters)", shape, 7.0 * n * f, 0},
                [&] { backend.adamw_step(p, param, grad, m, v, nullptr); });
    auto* copy = static_cast<uint16_t*>(buf.raw(static_cast<size_t>(n) * 2));
    report.time({"adamw_step + bf16 weight copy", shape, 7.0 * n * f + 2.0 * n, 0},
                [&] { backend.adamw_step(p, param, grad, m, v, copy); });
    report.time({"sum_of_squares (grad norm, + D2H)", shape, 1.0 * n * f, 0},
                [&] { (void)backend.sum_of_squares(n, grad); });
    // The same parameters as the engine holds them: 190 tensors (here of equal size), one
    // launch each against the multi-tensor launches (32 tensors per launch).
    constexpr int64_t kTensors = 190;
    const int64_t each = n / kTensors;
    std::vector<la3::kernels::AdamWTensor> tensors;
    std::vector<la3::Backend::Span> spans;
    for (int64_t t = 0; t < kTensors; ++t) {
      const int64_t offset = t * each;
      tensors.push_back({param + offset, grad + offset, m + offset, v + offset, copy + offset, each});
      spans.push_back({grad + offset, each});
    }
    const std::string split = std::to_string(kTensors) + " x " + std::to_string(each);
    report.time({"adamw_step + copy, one launch per tensor", split, (7.0 * f + 2.0) * each * kTensors, 0}, [&] {
      la3::kernels::AdamWParams one = p;
      one.count = each;
      for (const la3::kernels::AdamWTensor& t : tensors) {
        backend.adamw_step(one, t.param, t.grad, t.exp_avg, t.exp_avg_sq, t.param_bf16);
      }
    });
    report.time({"adamw_step_multi + copy (32 tensors per launch)", split, (7.0 * f + 2.0) * each * kTensors, 0},
                [&] { backend.adamw_step_multi(p, tensors.data(), kTensors); });
    report.time({"sum_of_squares over 190 spans (+ D2H)", split, 1.0 * f * each * kTensors, 0},
                [&] { (void)backend.sum_of_squares(spans); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  int count = 0;  // docs/BUILD.md pitfall 5: cudaGetDeviceCount leaves it untouched when it fails
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::printf("no CUDA device: %s; nothing to benchmark\n",
                status != cudaSuccess ? cudaGetErrorString(status) : "the runtime reports 0 devices");
    return 0;
  }
  try {
    std::string description;
    const Peak peak = peak_of(0, &description);
    CudaBackend backend(kDeviceType, 0);
    std::printf("la3 kernel benchmarks on %s\n", description.c_str());
#if defined(__CUDACC__)
    const char* clock = "CUDA events on the backend stream";
#else
    const char* clock = "host clock (emulated kernels run synchronously)";
#endif
    std::printf("kernels: %s; median of %d repetitions after %d warm-up runs, %s\n", backend.name().c_str(),
                options.reps, options.warmup, clock);
    std::printf("GB/s and TFLOP/s use the byte/FLOP model of docs/KERNELS.md (compulsory traffic, useful FLOPs)\n");
    Timer timer(backend.stream(), options);
    for (int64_t batch : options.batches) {
      for (int64_t seq : options.seqs) {
        try {
          bench_shape(backend, timer, peak, batch, seq);
        } catch (const la3::EngineError& error) {
          if (error.kind() != la3::ErrorKind::kResourceExhausted) throw;
          std::printf("batch %lld, seq %lld: skipped, out of device memory (%s)\n", static_cast<long long>(batch),
                      static_cast<long long>(seq), error.what());
          backend.allocator().release_cached();
        }
      }
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "la3_bench_kernels: %s\n", error.what());
    return 1;
  }
  return 0;
}
