// The multi-tensor kernels (kernels/multi_tensor.cuh): the gradient norm's sum of squares over
// many buffers and the AdamW step over many tensors, one launch per table of up to 32 buffers.
// Their results are bit-identical to one launch per buffer (the partials slot for slot, the
// weights, moments and bf16 copies element for element), and the launches are counted: through
// the launchers (a counting launch) and through the backends (the emulation's stream log), so
// the engine's optimizer step is shown to make ceil(tensors / 32) launches of each.
#include "kernels/adamw.cuh"
#include "kernels/launch.h"
#include "kernels/reduce.cuh"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/optim/adamw.h"
#include "engine/tensor.h"
#include "kernels/simt/runtime.h"

namespace la3 {
namespace {

using kernels::AdamWParams;
using kernels::AdamWTensor;

const Device kEmu{DeviceType::kCudaEmu, 0};

// SimtLaunch that counts its launches.
struct CountingLaunch {
  kernels::LaunchStream stream = nullptr;
  int64_t* launches = nullptr;
  template <typename... KernelArgs, typename... Args>
  void operator()(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) const {
    ++*launches;
    kernels::SimtLaunch{stream}(kernel, grid, block, shared_bytes, std::forward<Args>(args)...);
  }
};

std::vector<float> random_values(int64_t n, uint32_t seed, float low = -1.0f, float high = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Assorted sizes: empty, one element, partial and whole blocks, and (every 23rd) one beyond the
// sum of squares' 256-block cap, so its blocks loop.
std::vector<int64_t> assorted_sizes(int64_t n) {
  const int64_t pattern[] = {0, 1, 31, 256, 257, 1000, 5003, 0, 77};
  std::vector<int64_t> sizes;
  for (int64_t k = 0; k < n; ++k) sizes.push_back(k % 23 == 5 ? 70001 : pattern[k % 9]);
  return sizes;
}

int64_t non_empty(const std::vector<int64_t>& sizes) {
  int64_t n = 0;
  for (int64_t size : sizes) n += size > 0;
  return n;
}

struct HostSpan {
  const float* data;
  int64_t count;
};

TEST(MultiTensorKernels, SumOfSquaresPartialsAreThoseOfOneLaunchPerSpan) {
  for (const int64_t span_count : {0, 1, 32, 33, 70}) {
    const std::vector<int64_t> sizes = assorted_sizes(span_count);
    std::vector<std::vector<float>> values;
    std::vector<HostSpan> spans;
    for (size_t k = 0; k < sizes.size(); ++k) values.push_back(random_values(sizes[k], static_cast<uint32_t>(k)));
    int64_t slots = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      spans.push_back({values[k].data(), sizes[k]});
      slots += kernels::sum_of_squares_blocks(sizes[k]);
    }
    // Different initial values, so a slot written by one side only shows.
    std::vector<double> per_span(static_cast<size_t>(slots), -1.0), table(static_cast<size_t>(slots), -2.0);
    int64_t offset = 0;
    for (const HostSpan& span : spans) {
      kernels::launch_sum_of_squares(kernels::SimtLaunch{}, span.count, span.data, per_span.data() + offset);
      offset += kernels::sum_of_squares_blocks(span.count);
    }
    int64_t launches = 0;
    const int64_t reported = kernels::launch_sum_of_squares_spans(CountingLaunch{nullptr, &launches}, spans.data(),
                                                                  span_count, table.data());
    EXPECT_EQ(table, per_span) << span_count << " spans";
    EXPECT_EQ(launches, ceil_div(non_empty(sizes), kernels::kSumOfSquaresSpansPerLaunch)) << span_count << " spans";
    EXPECT_EQ(reported, launches);
    double norm_per_span = 0.0, norm_table = 0.0;
    for (double partial : per_span) norm_per_span += partial;
    for (double partial : table) norm_table += partial;
    EXPECT_EQ(norm_table, norm_per_span);
  }
}

// One tensor's state on the host.
struct HostTensor {
  std::vector<float> param, grad, exp_avg, exp_avg_sq;
  std::vector<uint16_t> copy;
  bool with_copy = false;
};

std::vector<HostTensor> host_tensors(const std::vector<int64_t>& sizes) {
  std::vector<HostTensor> tensors;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const auto seed = static_cast<uint32_t>(10 * k);
    HostTensor t;
    t.param = random_values(sizes[k], seed);
    t.grad = random_values(sizes[k], seed + 1);
    t.exp_avg = random_values(sizes[k], seed + 2, -0.1f, 0.1f);
    t.exp_avg_sq = random_values(sizes[k], seed + 3, 0.0f, 0.01f);
    t.with_copy = k % 2 == 0;
    t.copy.assign(static_cast<size_t>(sizes[k]), 0);
    tensors.push_back(std::move(t));
  }
  return tensors;
}

AdamWTensor table_entry(HostTensor& t) {
  return AdamWTensor{t.param.data(),      t.grad.data(), t.exp_avg.data(), t.exp_avg_sq.data(),
                     t.with_copy ? t.copy.data() : nullptr, static_cast<int64_t>(t.param.size())};
}

AdamWParams step_params(int64_t step, float grad_scale) {
  AdamWParams p;
  p.lr = 3e-3;
  p.weight_decay = 0.01;
  p.step = step;
  p.grad_scale = grad_scale;
  return p;
}

TEST(MultiTensorKernels, AdamWTableUpdatesBitIdenticallyToOneLaunchPerTensor) {
  for (const int64_t tensor_count : {1, 32, 33, 41}) {
    std::vector<int64_t> sizes = assorted_sizes(tensor_count);
    if (tensor_count == 41) sizes[40] = 300000;  // more than the 1024-block pointwise grid: its blocks loop
    std::vector<HostTensor> per_tensor = host_tensors(sizes), multi = per_tensor;
    for (const int64_t step : {1, 2}) {
      const AdamWParams p = step_params(step, step == 2 ? 0.37f : 1.0f);
      for (HostTensor& t : per_tensor) {
        AdamWParams one = p;
        one.count = static_cast<int64_t>(t.param.size());
        kernels::launch_adamw(kernels::SimtLaunch{}, one, t.param.data(), t.grad.data(), t.exp_avg.data(),
                              t.exp_avg_sq.data(), t.with_copy ? t.copy.data() : nullptr);
      }
      std::vector<AdamWTensor> table;
      for (HostTensor& t : multi) table.push_back(table_entry(t));
      int64_t launches = 0;
      const int64_t reported =
          kernels::launch_adamw_multi(CountingLaunch{nullptr, &launches}, p, table.data(), tensor_count);
      EXPECT_EQ(launches, ceil_div(non_empty(sizes), kernels::kAdamWTensorsPerLaunch)) << tensor_count;
      EXPECT_EQ(reported, launches);
    }
    for (size_t k = 0; k < sizes.size(); ++k) {
      EXPECT_EQ(multi[k].param, per_tensor[k].param) << "tensor " << k << " of " << tensor_count;
      EXPECT_EQ(multi[k].exp_avg, per_tensor[k].exp_avg) << "tensor " << k;
      EXPECT_EQ(multi[k].exp_avg_sq, per_tensor[k].exp_avg_sq) << "tensor " << k;
      EXPECT_EQ(multi[k].copy, per_tensor[k].copy) << "tensor " << k;
    }
  }
}

// The stream-order checker sees a kernel's pointer arguments only; the pointers inside a table
// are declared by the launchers (kernels/multi_tensor.cuh), so a table kernel touching a buffer
// another stream used, without an event wait, is refused like a launch per buffer would be.
TEST(MultiTensorKernels, TheStreamOrderCheckerSeesTheBuffersOfATable) {
  cudaStream_t a = nullptr, b = nullptr;
  // Blocking streams: ordered after the legacy default stream's memsets, not with each other.
  ASSERT_EQ(cudaStreamCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaStreamCreate(&b), cudaSuccess);
  constexpr int64_t n = 300;
  std::vector<void*> allocations;
  auto device = [&](size_t bytes) {
    void* pointer = nullptr;
    EXPECT_EQ(cudaMalloc(&pointer, bytes), cudaSuccess);
    EXPECT_EQ(cudaMemsetAsync(pointer, 0, bytes, nullptr), cudaSuccess);
    allocations.push_back(pointer);
    return pointer;
  };
  auto* x = static_cast<float*>(device(n * sizeof(float)));
  auto* grad = static_cast<float*>(device(n * sizeof(float)));
  auto* m = static_cast<float*>(device(n * sizeof(float)));
  auto* v = static_cast<float*>(device(n * sizeof(float)));
  auto* partials_a = static_cast<double*>(device(8 * sizeof(double)));
  auto* partials_b = static_cast<double*>(device(8 * sizeof(double)));

  kernels::launch_sum_of_squares(kernels::SimtLaunch{a}, n, x, partials_a);  // x used on stream a
  const HostSpan span{x, n};
  EXPECT_THROW(kernels::launch_sum_of_squares_spans(kernels::SimtLaunch{b}, &span, 1, partials_b),
               simt::StreamOrderError);
  AdamWParams p = step_params(1, 1.0f);
  p.count = n;
  kernels::launch_adamw(kernels::SimtLaunch{a}, p, x, grad, m, v, nullptr);
  const AdamWTensor tensor{x, grad, m, v, nullptr, n};
  try {
    kernels::launch_adamw_multi(kernels::SimtLaunch{b}, p, &tensor, 1);
    ADD_FAILURE() << "the table launch on stream b should have been refused";
  } catch (const simt::StreamOrderError& error) {
    EXPECT_NE(std::string(error.what()).find("adamw_multi_kernel"), std::string::npos) << error.what();
  }
  ASSERT_EQ(cudaStreamSynchronize(a), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(b), cudaSuccess);
  for (void* pointer : allocations) EXPECT_EQ(cudaFree(pointer), cudaSuccess);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
  cudaGetLastError();
}

// ---- through the backends -----------------------------------------------------------------

// The kernel launches queued while `work` runs on cuda-emu, from the emulation's stream log.
template <typename Work>
int64_t emu_kernel_launches(Work work) {
  simt::set_stream_log_enabled(true);
  simt::clear_stream_log();
  work();
  int64_t launches = 0;
  for (const simt::StreamLogEntry& entry : simt::stream_log()) launches += entry.what.rfind("kernel launch", 0) == 0;
  simt::clear_stream_log();
  simt::set_stream_log_enabled(false);
  return launches;
}

Tensor on(const std::vector<float>& values, Device device) {
  Tensor host = Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, values);
  Tensor out = Tensor::empty(host.shape(), DType::kF32, device);
  out.copy_from(host);
  return out;
}

class MultiTensorBackends : public ::testing::TestWithParam<Device> {};

// AdamW::step (one adamw_step_multi per device) against the per-tensor path (adamw_step per
// tensor on copies of the same state): the same weights, moments and bf16 copies, bit for bit.
TEST_P(MultiTensorBackends, AdamWStepMatchesThePerTensorPathBitForBit) {
  const Device device = GetParam();
  register_cuda_emu_backend();
  Backend& backend = backend_for(device);
  std::vector<int64_t> sizes = assorted_sizes(37);
  for (int64_t& size : sizes) size = size == 0 ? 3 : size;  // Tensors of no element aside, as assorted
  std::vector<Tensor> parameters, reference, reference_m, reference_v, reference_copies;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const std::vector<float> initial = random_values(sizes[k], static_cast<uint32_t>(500 + k));
    parameters.push_back(on(initial, device));
    parameters.back().set_requires_grad(true);
    reference.push_back(on(initial, device));
    reference_m.push_back(Tensor::zeros({sizes[k]}, DType::kF32, device));
    reference_v.push_back(Tensor::zeros({sizes[k]}, DType::kF32, device));
    reference_copies.push_back(Tensor::empty({sizes[k]}, DType::kBF16, device));
  }
  AdamWOptions options;
  options.lr = 3e-3;
  options.weight_decay = 0.01;
  options.bf16_weight_copies = true;
  AdamW optimizer(parameters, options);
  for (int64_t step = 1; step <= 2; ++step) {
    const float grad_scale = step == 2 ? 0.37f : 1.0f;
    for (size_t k = 0; k < sizes.size(); ++k) {
      parameters[k].set_grad(on(random_values(sizes[k], static_cast<uint32_t>(1000 * step + k)), device));
    }
    const int64_t launches = emu_kernel_launches([&] { optimizer.step(grad_scale); });
    if (device.type == DeviceType::kCudaEmu) {
      EXPECT_EQ(launches, ceil_div(static_cast<int64_t>(sizes.size()), kernels::kAdamWTensorsPerLaunch));
    }
    AdamWParams p;
    p.lr = options.lr;
    p.beta1 = options.beta1;
    p.beta2 = options.beta2;
    p.eps = options.eps;
    p.weight_decay = options.weight_decay;
    p.step = step;
    p.grad_scale = grad_scale;
    for (size_t k = 0; k < sizes.size(); ++k) {
      p.count = sizes[k];
      backend.adamw_step(p, reference[k].data<float>(), parameters[k].grad().data<float>(),
                         reference_m[k].data<float>(), reference_v[k].data<float>(), bf16_bits(reference_copies[k]));
    }
  }
  for (size_t k = 0; k < sizes.size(); ++k) {
    EXPECT_EQ(parameters[k].to_vector<float>(), reference[k].to_vector<float>()) << "parameter " << k;
    EXPECT_EQ(optimizer.exp_avg()[k].to_vector<float>(), reference_m[k].to_vector<float>()) << "exp_avg " << k;
    EXPECT_EQ(optimizer.exp_avg_sq()[k].to_vector<float>(), reference_v[k].to_vector<float>()) << "exp_avg_sq " << k;
    EXPECT_EQ(optimizer.bf16_copies()[k].to(DType::kF32).to_vector<float>(),
              reference_copies[k].to(DType::kF32).to_vector<float>())
        << "bf16 copy " << k;
  }
}

// The gradient norm's reduction (Backend::sum_of_squares over spans, and its partials left on
// the device) against one reduction per span: the same partials in the same slots and the same
// norm, in ceil(non-empty spans / 32) launches on cuda-emu.
TEST_P(MultiTensorBackends, SumOfSquaresOverSpansMatchesOneReductionPerSpan) {
  const Device device = GetParam();
  register_cuda_emu_backend();
  Backend& backend = backend_for(device);
  const std::vector<int64_t> sizes = assorted_sizes(70);
  std::vector<Tensor> buffers;
  std::vector<Backend::Span> spans;
  for (size_t k = 0; k < sizes.size(); ++k) {
    buffers.push_back(on(random_values(sizes[k], static_cast<uint32_t>(k)), device));
    spans.push_back(Backend::Span{buffers.back().data<float>(), sizes[k]});
  }
  // The per-span path: each span's partials on their own, concatenated in span order.
  std::vector<double> per_span;
  for (const Backend::Span& span : spans) {
    const int64_t count = backend.sum_of_squares_partial_count({span});
    const Tensor partials = Tensor::empty({2 * count}, DType::kF32, device);  // room for `count` doubles
    backend.sum_of_squares_partials({span}, reinterpret_cast<double*>(partials.raw_data()));
    std::vector<double> host(static_cast<size_t>(count));
    backend.copy_to_host(host.data(), partials.raw_data(), host.size() * sizeof(double));
    per_span.insert(per_span.end(), host.begin(), host.end());
  }
  double norm_per_span = 0.0;
  for (double partial : per_span) norm_per_span += partial;

  double norm = 0.0;
  const int64_t launches = emu_kernel_launches([&] { norm = backend.sum_of_squares(spans); });
  EXPECT_EQ(norm, norm_per_span);
  if (device.type != DeviceType::kCudaEmu) return;  // the cpu's one partial per span is its sum
  EXPECT_EQ(launches, ceil_div(non_empty(sizes), kernels::kSumOfSquaresSpansPerLaunch));
  const int64_t count = backend.sum_of_squares_partial_count(spans);
  ASSERT_EQ(count, static_cast<int64_t>(per_span.size()));
  const Tensor partials = Tensor::empty({2 * count}, DType::kF32, device);
  backend.sum_of_squares_partials(spans, reinterpret_cast<double*>(partials.raw_data()));
  std::vector<double> host(static_cast<size_t>(count));
  backend.copy_to_host(host.data(), partials.raw_data(), host.size() * sizeof(double));
  EXPECT_EQ(host, per_span);
}

INSTANTIATE_TEST_SUITE_P(Devices, MultiTensorBackends, ::testing::Values(Device::cpu(), kEmu),
                         [](const ::testing::TestParamInfo<Device>& device_info) {
                           return std::string(device_info.param.type == DeviceType::kCpu ? "cpu" : "cuda_emu");
                         });

}  // namespace
}  // namespace la3
