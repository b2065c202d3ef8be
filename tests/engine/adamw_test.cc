// AdamW: a two-step example worked by hand, torch's numbers for the same steps, skipped
// parameters, option validation and gradient clipping.
#include "engine/optim/adamw.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

namespace la3 {
namespace {

using ::testing::HasSubstr;

// lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.01; p = [1, -2];
// gradients g1 = [0.5, -1], g2 = [0.1, 0.2].
// Step 1: p *= 1 - 0.1*0.01 -> [0.999, -1.998]; m = 0.1 g1 = [0.05, -0.1];
//   v = 0.001 g1^2 = [2.5e-4, 1e-3]; bias corrections 0.1 and 0.001, so
//   m_hat = [0.5, -1], sqrt(v_hat) = [0.5, 1]: the update is lr * [1, -1] -> p = [0.899, -1.898].
// Step 2: p *= 0.999 -> [0.898101, -1.896102]; m = 0.9 m + 0.1 g2 = [0.055, -0.07];
//   v = 0.999 v + 0.001 g2^2 = [2.5975e-4, 1.039e-3]; corrections 0.19 and 0.001999;
//   update_0 = 0.1/0.19 * 0.055 / (sqrt(2.5975e-4)/sqrt(0.001999) + 1e-8) = 0.0803041
//   update_1 = 0.1/0.19 * -0.07 / (sqrt(1.039e-3)/sqrt(0.001999) + 1e-8) = -0.0511026
//   -> p = [0.8177969, -1.8449994] (double precision: 0.817796906, -1.844999394).
// torch.optim.AdamW 2.15.0 in fp32 gives [0.899000049, -1.898000002] then
// [0.817796946, -1.844999433].
TEST(AdamW, TwoStepsMatchHandComputationAndTorch) {
  const Tensor parameter = Tensor::from_vector<float>({2}, {1.0f, -2.0f});
  parameter.set_requires_grad(true);
  AdamW optimizer({parameter}, AdamWOptions{0.1, 0.9, 0.999, 1e-8, 0.01});
  parameter.set_grad(Tensor::from_vector<float>({2}, {0.5f, -1.0f}));
  optimizer.step();
  EXPECT_NEAR(parameter.item(0), 0.899, 1e-6);
  EXPECT_NEAR(parameter.item(1), -1.898, 1e-6);
  EXPECT_NEAR(parameter.item(0), 0.899000049, 2e-7);  // torch, fp32
  EXPECT_NEAR(optimizer.exp_avg()[0].item(1), -0.1, 1e-7);
  EXPECT_NEAR(optimizer.exp_avg_sq()[0].item(0), 2.5e-4, 1e-10);

  parameter.set_grad(Tensor::from_vector<float>({2}, {0.1f, 0.2f}));
  optimizer.step();
  EXPECT_NEAR(parameter.item(0), 0.817796906, 2e-6);
  EXPECT_NEAR(parameter.item(1), -1.844999394, 2e-6);
  EXPECT_NEAR(parameter.item(0), 0.817796946, 2e-7);  // torch, fp32
  EXPECT_NEAR(parameter.item(1), -1.844999433, 2e-7);
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
  EXPECT_EQ(without_grad.to_vector<float>(), (std::vector<float>{5.0f, 5.0f}));
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

}  // namespace
}  // namespace la3
