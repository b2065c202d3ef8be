// AdamW: a two-step example worked by hand, torch's numbers for the same steps, skipped
// parameters, option validation and gradient clipping.
#include "engine/optim/adamw.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <span>

#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

// lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01; p = [1, -2];
// gradients g1 = [0.5, -1], g2 = [0.1, 0.2].
// Step 1: p *= 1 - 0.1*0.01 -> [0.999, -1.998]; m = 0.1 g1 = [0.05, -0.1];
//   v = 0.001 g1^2 = [2.5e-4, 1e-3]; bias corrections 1 - 0.9 = 0.1 and 1 - 0.999 = 0.001, so
//   m_hat = [0.5, -1], sqrt(v_hat) = [0.5, 1]: the update is lr * [1, -1] -> p = [0.899, -1.898].
// Step 2: p *= 0.999 -> [0.898101, -1.896102]; m = 0.9 m + 0.1 g2 = [0.055, -0.07];
//   v = 0.999 v + 0.001 g2^2 = [2.5975e-4, 1.039e-3]; corrections 1 - 0.81 = 0.19 and
//   1 - 0.998001 = 0.001999;
//   update_0 = 0.1/0.19 * 0.055 / (sqrt(2.5975e-4)/sqrt(0.001999) + 1e-8) = 0.0803041
//   update_1 = 0.1/0.19 * -0.07 / (sqrt(1.039e-3)/sqrt(0.001999) + 1e-8) = -0.0511026
//   -> p = [0.8177969, -1.8449994] (double precision: 0.817796906, -1.844999394).
//
// torch numbers, from torch 2.15.0+cu132 on the CPU (fp32) with this script:
//   import torch
//   p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
//   opt = torch.optim.AdamW([p], lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
//   for g in ([0.5, -1.0], [0.1, 0.2]):
//       p.grad = torch.tensor(g)
//       opt.step()
//       s = opt.state[p]
//       for t in (p.detach(), s["exp_avg"], s["exp_avg_sq"]):
//           print([f"{v:.9g}" for v in t.tolist()], [v.hex() for v in t.tolist()])
// step 1: param [0.899000049, -1.898], exp_avg [0.0500000007, -0.100000001],
//         exp_avg_sq [0.000250000012, 0.00100000005]
// step 2: param [0.817796946, -1.84499943], exp_avg [0.0549999997, -0.0700000003],
//         exp_avg_sq [0.000259749999, 0.001039]
// The CPU kernel follows torch's single-tensor operation order with the hyper-parameters
// rounded once from double, so it reproduces these bit for bit (hex literals below).
TEST(AdamW, TwoStepsMatchHandComputationAndTorch) {
  const Tensor parameter = Tensor::from_vector<float>({2}, {1.0f, -2.0f});
  parameter.set_requires_grad(true);
  AdamW optimizer({parameter}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.01});
  parameter.set_grad(Tensor::from_vector<float>({2}, {0.5f, -1.0f}));
  optimizer.step();
  EXPECT_NEAR(parameter.item(0), 0.899, 1e-6);  // by hand
  EXPECT_NEAR(parameter.item(1), -1.898, 1e-6);
  EXPECT_EQ(parameter.to_vector<float>(), (std::vector<float>{0x1.cc49bcp-1f, -0x1.e5e354p+0f}));  // torch
  EXPECT_EQ(optimizer.exp_avg()[0].to_vector<float>(), (std::vector<float>{0x1.99999ap-5f, -0x1.99999ap-4f}));
  EXPECT_EQ(optimizer.exp_avg_sq()[0].to_vector<float>(), (std::vector<float>{0x1.0624dep-12f, 0x1.0624dep-10f}));

  parameter.set_grad(Tensor::from_vector<float>({2}, {0.1f, 0.2f}));
  optimizer.step();
  EXPECT_NEAR(parameter.item(0), 0.817796906, 2e-6);  // by hand
  EXPECT_NEAR(parameter.item(1), -1.844999394, 2e-6);
  EXPECT_EQ(parameter.to_vector<float>(), (std::vector<float>{0x1.a2b648p-1f, -0x1.d851e2p+0f}));  // torch
  EXPECT_EQ(optimizer.exp_avg()[0].to_vector<float>(), (std::vector<float>{0x1.c28f5cp-5f, -0x1.1eb852p-4f}));
  EXPECT_EQ(optimizer.exp_avg_sq()[0].to_vector<float>(), (std::vector<float>{0x1.105e1cp-12f, 0x1.105e1cp-10f}));
  EXPECT_EQ(optimizer.steps_taken(), 2);
}

TEST(AdamW, ParametersWithoutGradientAreSkippedAndZeroGradDropsGradients) {
  const Tensor with_grad = Tensor::full({3}, 1.0);
  const Tensor without_grad = Tensor::full({2}, 5.0);
  with_grad.set_requires_grad(true);
  without_grad.set_requires_grad(true);
  AdamW optimizer({with_grad, without_grad}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.0});
  with_grad.set_grad(Tensor::full({3}, 1.0));
  optimizer.step();
  EXPECT_NEAR(with_grad.item(0), 0.9, 1e-6);  // first step moves by lr (m_hat / sqrt(v_hat) = 1)
  // Skipped entirely: no weight decay, no state update (torch skips p.grad is None too).
  EXPECT_EQ(without_grad.to_vector<float>(), (std::vector<float>{5.0f, 5.0f}));
  EXPECT_EQ(optimizer.exp_avg()[1].to_vector<float>(), (std::vector<float>{0.0f, 0.0f}));
  EXPECT_EQ(optimizer.exp_avg_sq()[1].to_vector<float>(), (std::vector<float>{0.0f, 0.0f}));
  optimizer.zero_grad();
  EXPECT_FALSE(with_grad.grad().defined());
}

TEST(AdamW, RejectsBadOptionsAndParameters) {
  const Tensor p = Tensor::zeros({2});
  auto message = [&](const AdamWOptions& options, std::vector<Tensor> parameters) {
    try {
      AdamW optimizer(std::move(parameters), options);
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message(AdamWOptions{-1.0}, {p}), HasSubstr("lr must be >= 0"));
  EXPECT_THAT(message(AdamWOptions{0.1, 1.0}, {p}), HasSubstr("betas must be in [0, 1)"));
  EXPECT_THAT(message(AdamWOptions{0.1, 0.9, 0.999, 1e-8, -0.1}, {p}), HasSubstr("weight_decay must be >= 0"));
  EXPECT_THAT(message(AdamWOptions{0.1, 0.9, -0.5}, {p}), HasSubstr("betas must be in [0, 1), got (0.9, -0.5)"));
  EXPECT_THAT(message(AdamWOptions{0.1, 0.9, 0.999, -1e-8}, {p}), HasSubstr("eps must be >= 0"));
  EXPECT_THAT(message(AdamWOptions{std::nan("")}, {p}), HasSubstr("lr must be >= 0, got nan"));
  EXPECT_THAT(message(AdamWOptions{}, {Tensor()}), HasSubstr("AdamW: parameter is undefined"));
  EXPECT_THAT(message(AdamWOptions{}, {Tensor::zeros({2}, DType::kI64)}), HasSubstr("parameter must be f32"));
  const Tensor matrix = Tensor::zeros({3, 4});
  EXPECT_THAT(message(AdamWOptions{}, {matrix.narrow(1, 1, 2)}), HasSubstr("is not contiguous"));
}

TEST(ClipGradNorm, ScalesToTheMaximumAndReportsTheNorm) {
  const Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1});
  a.set_grad(Tensor::from_vector<float>({2}, {3.0f, 0.0f}));
  b.set_grad(Tensor::from_vector<float>({1}, {4.0f}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({a, b}, 1.0), 5.0);
  // torch: coefficient max_norm / (norm + 1e-6).
  EXPECT_NEAR(a.grad().item(0), 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(b.grad().item(0), 4.0 / (5.0 + 1e-6), 1e-7);
  // Below the maximum nothing changes.
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 1.0, 1e-6);
  EXPECT_NEAR(b.grad().item(0), 4.0 / (5.0 + 1e-6), 1e-7);
}

// Clipping folded into the update: step(c) reads each gradient as grad * c and leaves the
// gradients as they are; the weights and moments equal scaling the gradients first and then
// stepping, bit for bit (what torch's clip_grad_norm_ + step does).
TEST(AdamW, AGradientScaleEqualsScalingTheGradientsFirst) {
  std::mt19937 rng(21);
  const Tensor grad = testing::random_tensor({257}, rng, -3.0f, 3.0f);
  const Tensor start = testing::random_tensor({257}, rng, -1.0f, 1.0f);
  const float coefficient = static_cast<float>(1.0 / (7.3 + 1e-6));
  const Tensor fused = start.clone(), unfused = start.clone();
  fused.set_requires_grad(true);
  unfused.set_requires_grad(true);
  fused.set_grad(grad.clone());
  unfused.set_grad(grad.clone());
  AdamW fused_optimizer({fused}, AdamWOptions{1e-2, 0.9, 0.999, 1e-8, 0.01});
  AdamW unfused_optimizer({unfused}, AdamWOptions{1e-2, 0.9, 0.999, 1e-8, 0.01});
  for (int step = 0; step < 3; ++step) {
    fused_optimizer.step(coefficient);
    const Tensor scaled = grad.clone();
    for (float& g : std::span<float>(scaled.data<float>(), 257)) g = g * coefficient;
    unfused.set_grad(scaled);
    unfused_optimizer.step();
  }
  EXPECT_EQ(fused.to_vector<float>(), unfused.to_vector<float>());
  EXPECT_NE(fused.to_vector<float>(), start.to_vector<float>());
  EXPECT_EQ(fused.grad().to_vector<float>(), grad.to_vector<float>());  // left unscaled
}

TEST(ClipGradNorm, SkipsParametersWithoutGradient) {
  // Gradients [1, 2] and [-2] (norm 3) plus a parameter with none; max_norm 1.5 halves them.
  const Tensor a = Tensor::zeros({2}), b = Tensor::zeros({1}), no_grad = Tensor::zeros({4});
  a.set_grad(Tensor::from_vector<float>({2}, {1.0f, 2.0f}));
  b.set_grad(Tensor::from_vector<float>({1}, {-2.0f}));
  EXPECT_NEAR(clip_grad_norm({a, no_grad, b}, 1.5), 3.0, 1e-12);
  const double coefficient = 1.5 / (3.0 + 1e-6);
  EXPECT_NEAR(a.grad().item(0), 1.0 * coefficient, 1e-7);
  EXPECT_NEAR(a.grad().item(1), 2.0 * coefficient, 1e-7);
  EXPECT_NEAR(b.grad().item(0), -2.0 * coefficient, 1e-7);
  EXPECT_FALSE(no_grad.grad().defined());
  EXPECT_EQ(clip_grad_norm({no_grad}, 1.0), 0.0);  // nothing to clip
}

}  // namespace
}  // namespace la3
