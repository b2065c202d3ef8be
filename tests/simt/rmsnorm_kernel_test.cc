// The RMSNorm CUDA kernels under the SIMT emulation against the CPU backend (the reference),
// in every thread order and with two workers: forward output and rstd, dx, dweight.
#include "kernels/rmsnorm.cuh"

#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include "tests/simt/simt_modes.h"

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace {

class RmsNormKernel : public la3::testing::SimtModeTest {};

TEST_P(RmsNormKernel, MatchesTheCpuBackendForwardAndBackward) {
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{7, 333}, {3, 1}, {1, 1024}, {5, 37}}) {
    std::mt19937 rng(static_cast<uint32_t>(rows * 1000 + cols));
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    std::vector<float> x(static_cast<size_t>(rows * cols)), weight(static_cast<size_t>(cols)),
        dout(static_cast<size_t>(rows * cols));
    for (float& v : x) v = dist(rng);
    for (float& v : weight) v = 1.0f + 0.3f * dist(rng);
    for (float& v : dout) v = dist(rng);
    la3::kernels::RmsNormParams p;
    p.rows = rows;
    p.cols = cols;
    p.eps = 1e-6f;

    la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
    std::vector<float> out_cpu(x.size()), rstd_cpu(static_cast<size_t>(rows)), dx_cpu(x.size()),
        dweight_cpu(weight.size(), 0.5f);
    cpu.rmsnorm_forward(p, x.data(), weight.data(), out_cpu.data(), rstd_cpu.data());
    cpu.rmsnorm_backward(p, dout.data(), x.data(), weight.data(), rstd_cpu.data(), dx_cpu.data(), dweight_cpu.data());

    std::vector<float> out(x.size(), -1.0f), rstd(static_cast<size_t>(rows), -1.0f), dx(x.size(), -1.0f),
        dweight(weight.size(), 0.5f);
    using la3::kernels::kRmsNormThreads;
    la3::simt::launch(la3::kernels::rmsnorm_forward_kernel, dim3(static_cast<unsigned>(rows)), dim3(kRmsNormThreads),
                      0, nullptr, p, x.data(), weight.data(), out.data(), rstd.data());
    la3::simt::launch(la3::kernels::rmsnorm_backward_dx_kernel, dim3(static_cast<unsigned>(rows)),
                      dim3(kRmsNormThreads), 0, nullptr, p, dout.data(), x.data(), weight.data(), rstd.data(),
                      dx.data());
    la3::simt::launch(la3::kernels::rmsnorm_backward_dweight_kernel,
                      dim3(static_cast<unsigned>((cols + kRmsNormThreads - 1) / kRmsNormThreads)),
                      dim3(kRmsNormThreads), 0, nullptr, p, dout.data(), x.data(), rstd.data(), dweight.data());
    // fp32 with a different summation order: ~1e-7 relative per element.
    EXPECT_LT(la3::testing::normalized_error(out, out_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(rstd, rstd_cpu), 1e-12) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(dx, dx_cpu), 1e-11) << rows << "x" << cols;
    EXPECT_LT(la3::testing::normalized_error(dweight, dweight_cpu), 1e-12) << rows << "x" << cols;  // both accumulate onto 0.5
  }
}

INSTANTIATE_TEST_SUITE_P(Orders, RmsNormKernel, ::testing::Values("forward", "reverse", "shuffled", "shuffled/2"), la3::testing::simt_mode_name);

}  // namespace
