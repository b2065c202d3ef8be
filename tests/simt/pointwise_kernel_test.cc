// Pointwise CUDA kernels under the SIMT emulation against the CPU backend: relu, gated GELU,
// dropout (the same Philox mask bit for bit, keyed by (global row, position, column), so a
// row's mask ignores padding and the batch split) and AdamW, through the launchers CudaBackend
// calls; and the grid-stride loop every pointwise kernel relies on beyond the launchers' grid.
#include "kernels/activation.cuh"
#include "kernels/adamw.cuh"
#include "kernels/caption_loss.cuh"
#include "kernels/cast.cuh"
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/launch.h"
#include "kernels/reduce.cuh"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/dtype.h"

namespace {

using la3::kernels::kPointwiseThreads;

std::vector<float> random_values(size_t n, uint32_t seed, float low = -3.0f, float high = 3.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, float tolerance, const char* what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    ASSERT_NEAR(actual[i], expected[i], tolerance * (1.0f + std::abs(expected[i]))) << what << " element " << i;
  }
}

la3::Backend& cpu() { return la3::backend_for(la3::Device::cpu()); }

constexpr int64_t kCount = 5003;  // not a multiple of the block
constexpr la3::DType kF32 = la3::DType::kF32;  // the CPU backend's activation type

const la3::kernels::SimtLaunch kLaunch;  // the launchers CudaBackend calls, on the emulation

TEST(PointwiseKernels, ActivationsMatchTheCpuBackend) {
  const std::vector<float> x = random_values(kCount, 1), y = random_values(kCount, 2), dout = random_values(kCount, 3);
  std::vector<float> out(kCount), expected(kCount), dgate(kCount), dlinear(kCount), dgate_cpu(kCount), dlinear_cpu(kCount);
  la3::kernels::launch_relu_forward(kLaunch, kCount, x.data(), out.data());
  cpu().relu_forward(kCount, kF32, x.data(), expected.data());
  EXPECT_EQ(out, expected);
  la3::kernels::launch_relu_backward(kLaunch, kCount, dout.data(), x.data(), out.data());
  cpu().relu_backward(kCount, kF32, dout.data(), x.data(), expected.data());
  EXPECT_EQ(out, expected);
  la3::kernels::launch_gelu_new_forward(kLaunch, kCount, x.data(), out.data());
  cpu().gelu_new_forward(kCount, kF32, x.data(), expected.data());
  expect_close(out, expected, 1e-6f, "gelu_new forward");
  la3::kernels::launch_gelu_new_backward(kLaunch, kCount, dout.data(), x.data(), out.data());
  cpu().gelu_new_backward(kCount, kF32, dout.data(), x.data(), expected.data());
  expect_close(out, expected, 1e-6f, "gelu_new backward");
  la3::kernels::launch_gated_gelu_forward(kLaunch, kCount, x.data(), y.data(), out.data());
  cpu().gated_gelu_forward(kCount, kF32, x.data(), y.data(), expected.data());
  expect_close(out, expected, 1e-6f, "gated_gelu forward");
  la3::kernels::launch_gated_gelu_backward(kLaunch, kCount, dout.data(), x.data(), y.data(), dgate.data(),
                                           dlinear.data());
  cpu().gated_gelu_backward(kCount, kF32, dout.data(), x.data(), y.data(), dgate_cpu.data(), dlinear_cpu.data());
  expect_close(dgate, dgate_cpu, 1e-6f, "gated_gelu dgate");
  expect_close(dlinear, dlinear_cpu, 1e-6f, "gated_gelu dlinear");
}

// The launchers cap the grid at kPointwiseMaxBlocks blocks and rely on every pointwise kernel
// looping over the rest: a grid of 4 blocks must still cover all 5003 elements.
TEST(PointwiseKernels, GridStrideLoopsCoverCountsBeyondTheGrid) {
  const std::vector<float> x = random_values(kCount, 1);
  std::vector<float> out(kCount, -1.0f), expected(kCount);
  la3::simt::launch(la3::kernels::relu_forward_kernel<float>, dim3(4), dim3(kPointwiseThreads), 0, nullptr, kCount, x.data(),
                    out.data());
  cpu().relu_forward(kCount, kF32, x.data(), expected.data());
  EXPECT_EQ(out, expected);
  EXPECT_EQ(la3::kernels::pointwise_grid(int64_t{1} << 30).x, la3::kernels::kPointwiseMaxBlocks);
  EXPECT_EQ(la3::kernels::pointwise_grid(kCount).x, 20u);  // ceil(5003 / 256)
  EXPECT_EQ(la3::kernels::pointwise_grid(0).x, 1u);
}

la3::kernels::DropoutParams dropout_params(int64_t positions, int64_t width, int64_t row_offset);

// Every kernel whose launcher clamps its grid (pointwise_grid: 1024 blocks; launch_convert:
// 4096; launch_sum_of_squares: 256; launch_scale_by_device_scalar: 1024) must loop over the
// elements beyond it: on a grid of 2 blocks (512 threads) each still covers all 5003 elements,
// as its launcher's own grid does.
TEST(PointwiseKernels, EveryClampedKernelLoopsBeyondItsGrid) {
  using la3::simt::launch;
  const dim3 narrow(2);
  const std::vector<float> x = random_values(kCount, 11), y = random_values(kCount, 12);
  std::vector<float> out(kCount, -1.0f), expected(kCount, -2.0f);

  launch(la3::kernels::scale_kernel<float>, narrow, dim3(kPointwiseThreads), 0, nullptr, kCount, 0.5f, x.data(),
         out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.5f * x[i]) << "scale " << i;
  std::vector<float> sum = y;
  launch(la3::kernels::axpy_kernel<float>, narrow, dim3(kPointwiseThreads), 0, nullptr, kCount, 2.0f, x.data(),
         sum.data());
  for (size_t i = 0; i < sum.size(); ++i) ASSERT_EQ(sum[i], y[i] + 2.0f * x[i]) << "axpy " << i;
  launch(la3::kernels::fill_kernel<float>, narrow, dim3(kPointwiseThreads), 0, nullptr, kCount, 3.0f, out.data());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 3.0f) << "fill " << i;

  la3::kernels::launch_gelu_new_forward(kLaunch, kCount, x.data(), expected.data());
  launch(la3::kernels::gelu_new_forward_kernel<float>, narrow, dim3(kPointwiseThreads), 0, nullptr, kCount, x.data(),
         out.data());
  EXPECT_EQ(out, expected) << "gelu_new forward";
  const la3::kernels::DropoutParams p = dropout_params(1, kCount, 0);
  la3::kernels::launch_dropout(kLaunch, p, kCount, x.data(), expected.data());
  launch(la3::kernels::dropout_kernel<float>, narrow, dim3(kPointwiseThreads), 0, nullptr, p, kCount, x.data(),
         out.data());
  EXPECT_EQ(out, expected) << "dropout";

  std::vector<uint16_t> bf16(kCount, 0), bf16_expected(kCount, 1);
  la3::kernels::launch_convert(kLaunch, kCount, x.data(), bf16_expected.data());
  launch(la3::kernels::convert_kernel<float, uint16_t>, narrow, dim3(la3::kernels::kCastThreads), 0, nullptr, kCount,
         x.data(), bf16.data());
  EXPECT_EQ(bf16, bf16_expected) << "convert";

  std::vector<float> scaled = x;
  const float two = 2.0f;
  launch(la3::kernels::scale_by_device_scalar_kernel<float>, narrow, dim3(la3::kernels::kCaptionReduceThreads), 0,
         nullptr, kCount, &two, scaled.data());
  for (size_t i = 0; i < scaled.size(); ++i) ASSERT_EQ(scaled[i], 2.0f * x[i]) << "scale_by_device_scalar " << i;

  std::vector<double> partials(2, 0.0);
  launch(la3::kernels::sum_of_squares_kernel, narrow, dim3(la3::kernels::kReduceThreads), 0, nullptr, kCount, x.data(),
         partials.data());
  double squares = 0.0;
  for (float v : x) squares += static_cast<double>(v) * v;
  EXPECT_NEAR(partials[0] + partials[1], squares, 1e-9 * squares) << "sum_of_squares";
}

la3::kernels::DropoutParams dropout_params(int64_t positions, int64_t width, int64_t row_offset) {
  la3::kernels::DropoutParams p{0.3f, 77, 12, 5};
  p.positions = positions;
  p.width = width;
  p.row_offset = row_offset;
  return p;
}

// The kernel's output for x viewed as [count / (positions * width), positions, width].
std::vector<float> dropout_on_kernel(const la3::kernels::DropoutParams& p, const std::vector<float>& x) {
  std::vector<float> out(x.size());
  la3::kernels::launch_dropout(kLaunch, p, static_cast<int64_t>(x.size()), x.data(), out.data());
  return out;
}

TEST(PointwiseKernels, DropoutDrawsTheCpuMaskExactly) {
  // [7, 13, 55], [5, 1001] and [2, 2, 1300] (rows wider than the CPU's 1024-column chunk), with
  // and without a row offset.
  struct Layout {
    int64_t rows, positions, width, row_offset;
  };
  for (const Layout& layout : {Layout{7, 13, 55, 0}, Layout{7, 13, 55, 3}, Layout{5, 1, 1001, 12345},
                               Layout{2, 2, 1300, 1}}) {
    const la3::kernels::DropoutParams p = dropout_params(layout.positions, layout.width, layout.row_offset);
    const int64_t count = layout.rows * layout.positions * layout.width;
    const std::vector<float> x = random_values(static_cast<size_t>(count), 4);
    std::vector<float> expected(x.size());
    cpu().dropout_forward(p, count, kF32, x.data(), expected.data());
    const std::vector<float> out = dropout_on_kernel(p, x);
    EXPECT_EQ(out, expected) << "positions " << layout.positions << " width " << layout.width;  // same bits, same scaling
    int64_t dropped = 0;
    for (float v : out) dropped += v == 0.0f;
    EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(count), 0.3, 0.05);
  }
}

// Rows 3 and 4 of a [5, 11, 13] batch, and the same examples as a [2, 7, 13] slice padded to 7
// with row_offset 3: the kernel draws the same mask at every position the two share.
TEST(PointwiseKernels, DropoutMaskOfARowIgnoresPaddingAndTheSplit) {
  const int64_t long_len = 11, short_len = 7, width = 13;
  const std::vector<float> whole = random_values(static_cast<size_t>(5 * long_len * width), 6, 0.5f, 1.5f);
  std::vector<float> slice(static_cast<size_t>(2 * short_len * width));
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < short_len; ++t) {
      for (int64_t c = 0; c < width; ++c) {
        slice[static_cast<size_t>((r * short_len + t) * width + c)] = whole[static_cast<size_t>(((3 + r) * long_len + t) * width + c)];
      }
    }
  }
  const std::vector<float> whole_out = dropout_on_kernel(dropout_params(long_len, width, 0), whole);
  const std::vector<float> slice_out = dropout_on_kernel(dropout_params(short_len, width, 3), slice);
  int64_t dropped = 0;
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < short_len; ++t) {
      for (int64_t c = 0; c < width; ++c) {
        const float expected = whole_out[static_cast<size_t>(((3 + r) * long_len + t) * width + c)];
        ASSERT_EQ(slice_out[static_cast<size_t>((r * short_len + t) * width + c)], expected) << r << " " << t << " " << c;
        dropped += expected == 0.0f;
      }
    }
  }
  EXPECT_GT(dropped, 30);
}

TEST(PointwiseKernels, AdamWMatchesTheCpuBackendOverSeveralSteps) {
  std::vector<float> param = random_values(kCount, 5), m(kCount, 0.0f), v(kCount, 0.0f);
  std::vector<float> param_cpu = param, m_cpu = m, v_cpu = v;
  // The bf16 weight copies (written on the last step only; earlier steps pass null).
  std::vector<uint16_t> copy(kCount, 0), copy_cpu(kCount, 0);
  for (int64_t step = 1; step <= 3; ++step) {
    const std::vector<float> grad = random_values(kCount, static_cast<uint32_t>(10 + step));
    la3::kernels::AdamWParams p;
    p.count = kCount;
    p.lr = 1e-2;
    p.weight_decay = 0.01;
    p.step = step;
    uint16_t* kernel_copy = step == 3 ? copy.data() : nullptr;
    uint16_t* cpu_copy = step == 3 ? copy_cpu.data() : nullptr;
    la3::kernels::launch_adamw(kLaunch, p, param.data(), grad.data(), m.data(), v.data(), kernel_copy);
    cpu().adamw_step(p, param_cpu.data(), grad.data(), m_cpu.data(), v_cpu.data(), cpu_copy);
  }
  EXPECT_EQ(param, param_cpu);  // the same fp32 operations in the same order
  EXPECT_EQ(m, m_cpu);
  EXPECT_EQ(v, v_cpu);
  // The copies are the round-to-nearest-even bf16 of the updated fp32 weights.
  EXPECT_EQ(copy, copy_cpu);
  for (int64_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(copy[static_cast<size_t>(i)], la3::float_to_bf16(param[static_cast<size_t>(i)]).bits) << i;
  }
}

}  // namespace
