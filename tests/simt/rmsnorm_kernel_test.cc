// The RMSNorm CUDA kernels under the SIMT emulation against the CPU backend (the reference),
// in every thread order and with two workers: forward output and rstd, the fused residual
// add, dx and the two-stage dweight, for fp32 and bf16 activations. Shapes: widths that are
// not multiples of the block (333, 37), width 1, a row longer than the block (1024), and
// 130 rows (three dweight chunks, the last one partial).
#include "kernels/rmsnorm.cuh"
#include "kernels/launch.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/dtype.h"
#include "tests/simt/simt_modes.h"
#include "tests/support/gradcheck.h"

namespace {

using la3::kernels::RmsNormParams;

// The activation types the CPU backend's RMSNorm takes (it keeps bf16: it is this test's reference).
constexpr la3::DType kF32 = la3::DType::kF32;
constexpr la3::DType kBF16 = la3::DType::kBF16;

const std::vector<std::pair<int64_t, int64_t>> kShapes = {{7, 333}, {3, 1}, {1, 1024}, {5, 37}, {130, 40}};

struct Inputs {
  std::vector<float> x, branch, weight, dout;
};

Inputs random_inputs(int64_t rows, int64_t cols) {
  std::mt19937 rng(static_cast<uint32_t>(rows * 1000 + cols));
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  Inputs in;
  in.x.resize(static_cast<size_t>(rows * cols));
  in.branch.resize(in.x.size());
  in.dout.resize(in.x.size());
  in.weight.resize(static_cast<size_t>(cols));
  for (float& v : in.x) v = dist(rng);
  for (float& v : in.branch) v = dist(rng);
  for (float& v : in.dout) v = dist(rng);
  for (float& v : in.weight) v = 1.0f + 0.3f * dist(rng);
  return in;
}

RmsNormParams params(int64_t rows, int64_t cols) {
  RmsNormParams p;
  p.rows = rows;
  p.cols = cols;
  p.eps = 1e-6f;
  return p;
}

// The backward launcher CudaBackend calls (dx, then dweight in two stages), with its scratch
// poisoned: every partial must be written by stage 1 before stage 2 reads it.
template <typename Io>
void launch_backward(const RmsNormParams& p, const Io* dout, const Io* x, const float* weight, const float* rstd,
                     Io* dx, float* dweight) {
  std::vector<float> partial(static_cast<size_t>(la3::kernels::rmsnorm_backward_scratch_floats(p)),
                             std::numeric_limits<float>::quiet_NaN());
  la3::kernels::launch_rmsnorm_backward<Io>(la3::kernels::SimtLaunch{}, p, dout, x, weight, rstd, dx, dweight,
                                            partial.data());
}

class RmsNormKernel : public la3::testing::SimtModeTest {};

TEST_P(RmsNormKernel, MatchesTheCpuBackendForwardAndBackward) {
  for (const auto& [rows, cols] : kShapes) {
    const Inputs in = random_inputs(rows, cols);
    const RmsNormParams p = params(rows, cols);
    la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
    std::vector<float> out_cpu(in.x.size()), rstd_cpu(static_cast<size_t>(rows)), dx_cpu(in.x.size()),
        dweight_cpu(in.weight.size(), 0.5f);
    cpu.rmsnorm_forward(p, kF32, in.x.data(), in.weight.data(), out_cpu.data(), rstd_cpu.data());
    cpu.rmsnorm_backward(p, kF32, in.dout.data(), in.x.data(), in.weight.data(), rstd_cpu.data(), dx_cpu.data(),
                         dweight_cpu.data());

    std::vector<float> out(in.x.size(), -1.0f), rstd(static_cast<size_t>(rows), -1.0f), dx(in.x.size(), -1.0f),
        dweight(in.weight.size(), 0.5f);
    la3::kernels::launch_rmsnorm_forward<float>(la3::kernels::SimtLaunch{}, p, in.x.data(), nullptr, in.weight.data(),
                                                nullptr, out.data(), rstd.data());
    launch_backward<float>(p, in.dout.data(), in.x.data(), in.weight.data(), rstd.data(), dx.data(), dweight.data());
    // fp32 with a different summation order: ~1e-7 relative per element.
    EXPECT_LT(la3::testing::normalized_error(out, out_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(rstd, rstd_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(dx, dx_cpu), 1e-11) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(dweight, dweight_cpu), 1e-12) << rows << "x" << cols;  // both onto 0.5
  }
}

TEST_P(RmsNormKernel, FusedResidualAddMatchesTheCpuBackend) {
  for (const auto& [rows, cols] : kShapes) {
    const Inputs in = random_inputs(rows, cols);
    const RmsNormParams p = params(rows, cols);
    std::vector<float> sum_cpu(in.x.size()), out_cpu(in.x.size()), rstd_cpu(static_cast<size_t>(rows));
    la3::backend_for(la3::Device::cpu())
        .add_rmsnorm_forward(p, kF32, in.x.data(), in.branch.data(), in.weight.data(), sum_cpu.data(),
                             out_cpu.data(), rstd_cpu.data());
    std::vector<float> sum(in.x.size(), -1.0f), out(in.x.size(), -1.0f), rstd(static_cast<size_t>(rows), -1.0f);
    la3::kernels::launch_rmsnorm_forward<float>(la3::kernels::SimtLaunch{}, p, in.x.data(), in.branch.data(),
                                                in.weight.data(), sum.data(), out.data(), rstd.data());
    EXPECT_EQ(sum, sum_cpu) << rows << "x" << cols << ": the sum is one fp32 add per element on both";
    EXPECT_LT(la3::testing::normalized_error(out, out_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(rstd, rstd_cpu), 1e-12) << rows << "x" << cols;
    // And the sum really is x + branch (the CPU reference could share a bug with the kernel).
    for (size_t i = 0; i < sum.size(); ++i) ASSERT_EQ(sum[i], in.x[i] + in.branch[i]) << i;
  }
}

std::vector<uint16_t> to_bf16(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = la3::float_to_bf16(values[i]).bits;
  return bits;
}
std::vector<float> from_bf16(const std::vector<uint16_t>& bits) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = la3::bf16_to_float(la3::bf16{bits[i]});
  return values;
}

// bf16 activations: the kernels and the CPU backend read the same bf16 inputs and round
// their outputs to bf16, so they differ only where fp32-vs-double statistics move a value
// across a rounding boundary: a few elements by one bf16 ulp (2^-8 relative), a normalised
// error below 1e-5. Both are also checked against the fp32 computation on the widened inputs
// (bf16's own rounding: normalised error ~1e-6).
TEST_P(RmsNormKernel, Bf16ActivationsMatchTheCpuBackend) {
  for (const auto& [rows, cols] : kShapes) {
    const Inputs in = random_inputs(rows, cols);
    const RmsNormParams p = params(rows, cols);
    const std::vector<uint16_t> x = to_bf16(in.x), branch = to_bf16(in.branch), dout = to_bf16(in.dout);
    la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
    const size_t n = in.x.size(), r = static_cast<size_t>(rows);

    std::vector<uint16_t> sum_cpu(n), out_cpu(n), dx_cpu(n);
    std::vector<float> rstd_cpu(r), dweight_cpu(in.weight.size(), 0.0f);
    cpu.add_rmsnorm_forward(p, kBF16, x.data(), branch.data(), in.weight.data(), sum_cpu.data(), out_cpu.data(),
                            rstd_cpu.data());
    cpu.rmsnorm_backward(p, kBF16, dout.data(), sum_cpu.data(), in.weight.data(), rstd_cpu.data(), dx_cpu.data(),
                         dweight_cpu.data());

    std::vector<uint16_t> sum(n, 0xffff), out(n, 0xffff), dx(n, 0xffff);
    std::vector<float> rstd(r, -1.0f), dweight(in.weight.size(), 0.0f);
    la3::kernels::launch_rmsnorm_forward<uint16_t>(la3::kernels::SimtLaunch{}, p, x.data(), branch.data(),
                                                   in.weight.data(), sum.data(), out.data(), rstd.data());
    launch_backward<uint16_t>(p, dout.data(), sum.data(), in.weight.data(), rstd.data(), dx.data(), dweight.data());

    EXPECT_EQ(sum, sum_cpu) << rows << "x" << cols << ": one rounded add per element on both";
    EXPECT_LT(la3::testing::normalized_error(from_bf16(out), from_bf16(out_cpu)), 1e-5) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(rstd, rstd_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(from_bf16(dx), from_bf16(dx_cpu)), 1e-5) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(dweight, dweight_cpu), 1e-12) << rows << "x" << cols;

    // Against fp32 on the widened bf16 sum: bf16 output rounding only.
    const std::vector<float> sum32 = from_bf16(sum_cpu);
    std::vector<float> out32(n), rstd32(r);
    cpu.rmsnorm_forward(p, kF32, sum32.data(), in.weight.data(), out32.data(), rstd32.data());
    EXPECT_LT(la3::testing::normalized_error(from_bf16(out), out32), 1e-4) << rows << "x" << cols;
    EXPECT_GT(la3::testing::normalized_error(from_bf16(out), out32), 0.0) << "the bf16 output was not rounded";
  }
}

INSTANTIATE_TEST_SUITE_P(Orders, RmsNormKernel, ::testing::Values("forward", "reverse", "shuffled", "shuffled/2"),
                         la3::testing::simt_mode_name);

}  // namespace
