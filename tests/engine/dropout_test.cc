// Inverted dropout with the counter-based Philox mask: identity when off, a mask that is a
// pure function of (seed, step, stream, index) and exactly kernels::dropout_keep, the kept
// fraction, the 1/(1-p) scaling, the same mask in backward, and invalid probabilities.
#include "engine/ops/dropout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/autograd/tape.h"
#include "kernels/philox.cuh"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

kernels::DropoutParams params_of(float p, uint64_t seed, uint64_t step, uint32_t stream) {
  kernels::DropoutParams params;
  params.p = p;
  params.seed = seed;
  params.step = step;
  params.stream = stream;
  return params;
}

// The kept/dropped pattern of a dropout output whose input had no zeros.
std::vector<bool> mask_of(const Tensor& out) {
  std::vector<bool> kept;
  for (float v : out.to_vector<float>()) kept.push_back(v != 0.0f);
  return kept;
}

TEST(Dropout, OffWhenNotTrainingOrPIsZero) {
  const Tensor x = Tensor::full({1000}, 1.0);
  // The very same handle comes back: no copy, no tape node.
  Tape tape;
  x.set_requires_grad(true);
  EXPECT_TRUE(ops::dropout(x, params_of(0.3f, 1, 1, 1), false).same(x));
  EXPECT_TRUE(ops::dropout(x, params_of(0.0f, 1, 1, 1), true).same(x));
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Dropout, MaskIsExactlyTheOneFromDropoutKeep) {
  // Inputs are all nonzero, so a zero output means "dropped".
  std::mt19937 rng(81);
  const Tensor x = testing::random_tensor({37, 29}, rng, 0.5f, 1.5f);
  for (const kernels::DropoutParams& params : {params_of(0.1f, 7, 0, 0), params_of(0.5f, 0xfeedbeefcafeull, 123, 9),
                                               params_of(0.9f, 1, 2, 3)}) {
    const Tensor y = ops::dropout(x, params, true);
    const std::vector<float> in = x.to_vector<float>(), out = y.to_vector<float>();
    const float keep_scale = 1.0f / (1.0f - params.p);
    int64_t mismatches = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      const bool keep = kernels::dropout_keep(params.p, params.seed, params.step, params.stream, i);
      // The kept value is x * (1 / (1 - p)), the scale rounded to fp32 once, as the kernels do.
      const float expected = keep ? in[i] * keep_scale : 0.0f;
      mismatches += out[i] != expected;
    }
    EXPECT_EQ(mismatches, 0) << "p = " << params.p;
  }
}

TEST(Dropout, SameParametersSameMaskAndEachCoordinateChangesIt) {
  const Tensor x = Tensor::full({4099}, 1.0);  // not a multiple of 4 (Philox words per block)
  const kernels::DropoutParams base = params_of(0.5f, 42, 10, 3);
  const std::vector<bool> reference = mask_of(ops::dropout(x, base, true));
  EXPECT_EQ(mask_of(ops::dropout(x, base, true)), reference);
  EXPECT_EQ(mask_of(ops::dropout(x.clone(), base, true)), reference);  // depends on values' positions only
  // Another step, stream or seed gives another mask: with p = 0.5 about half the elements
  // differ; identical masks would mean the coordinate is ignored.
  auto differing = [&](const kernels::DropoutParams& params) {
    const std::vector<bool> other = mask_of(ops::dropout(x, params, true));
    int64_t count = 0;
    for (size_t i = 0; i < other.size(); ++i) count += other[i] != reference[i];
    return count;
  };
  for (const kernels::DropoutParams& changed : {params_of(0.5f, 42, 11, 3), params_of(0.5f, 42, 10, 4),
                                                params_of(0.5f, 43, 10, 3), params_of(0.5f, 42ull << 32, 10, 3)}) {
    const int64_t count = differing(changed);
    EXPECT_GT(count, 4099 / 2 - 4 * 32) << "seed " << changed.seed << " step " << changed.step << " stream "
                                        << changed.stream;
    EXPECT_LT(count, 4099 / 2 + 4 * 32);
  }
}

TEST(Dropout, KeptFractionIsOneMinusPWithinFourSigma) {
  const int64_t count = 100000;
  const Tensor x = Tensor::full({count}, 1.0);
  for (float p : {0.1f, 0.3f, 0.5f, 0.9f}) {
    const std::vector<float> y = ops::dropout(x, params_of(p, 2024, 5, 1), true).to_vector<float>();
    const float keep_scale = 1.0f / (1.0f - p);
    int64_t kept = 0, badly_scaled = 0;
    for (float v : y) {
      if (v == 0.0f) continue;
      ++kept;
      badly_scaled += v != keep_scale;
    }
    EXPECT_EQ(badly_scaled, 0) << "p = " << p;
    // Binomial(count, 1 - p): standard deviation sqrt(count p (1 - p)).
    const double expected = static_cast<double>(count) * (1.0 - p);
    const double sigma = std::sqrt(static_cast<double>(count) * p * (1.0 - p));
    EXPECT_NEAR(static_cast<double>(kept), expected, 4.0 * sigma) << "p = " << p;
    EXPECT_NEAR(keep_scale, 1.0 / (1.0 - static_cast<double>(p)), 1e-6);
  }
}

TEST(Dropout, GradientIsTheSameMaskAndScale) {
  Tape tape;
  std::mt19937 rng(82);
  const Tensor x = testing::random_tensor({13, 11}, rng, 0.5f, 1.5f);
  x.set_requires_grad(true);
  const kernels::DropoutParams params = params_of(0.25f, 99, 4, 17);
  const Tensor y = ops::dropout(x, params, true);
  const Tensor upstream = testing::random_tensor({13, 11}, rng);
  tape.backward(y, upstream);
  const std::vector<float> grad = x.grad().to_vector<float>(), g = upstream.to_vector<float>();
  const std::vector<bool> forward_mask = mask_of(y);
  const float keep_scale = 1.0f / 0.75f;
  for (size_t i = 0; i < grad.size(); ++i) {
    ASSERT_EQ(grad[i], forward_mask[i] ? g[i] * keep_scale : 0.0f) << "element " << i;
  }
  // And the whole op against finite differences of a reference built on dropout_keep.
  const testing::GradCheckReport report = testing::check_op(
      "dropout p=0.25", [&](const std::vector<Tensor>& in) { return ops::dropout(in[0], params, true); },
      [&](const testing::DoubleInputs& in) {
        std::vector<double> out(in[0].size());
        for (size_t i = 0; i < out.size(); ++i) {
          out[i] = kernels::dropout_keep(params.p, params.seed, params.step, params.stream, i) ? in[0][i] / 0.75 : 0.0;
        }
        return out;
      },
      {testing::random_tensor({6, 7}, rng)}, {true});
  testing::print_report("dropout p=0.25", report);
}

TEST(Dropout, InvalidProbabilitiesAreErrors) {
  using testing::catch_error;
  const Tensor x = Tensor::zeros({4});
  const testing::CaughtError one = catch_error([&] { ops::dropout(x, params_of(1.0f, 0, 0, 0), true); });
  EXPECT_TRUE(one.engine_error);
  EXPECT_EQ(one.kind, ErrorKind::kInvalidArgument);
  EXPECT_THAT(one.message, HasSubstr("dropout: probability must be in [0, 1), got 1"));
  // Checked even when dropout is off: a bad config should fail at the first call, not at the
  // first training step.
  EXPECT_THAT(catch_error([&] { ops::dropout(x, params_of(-0.1f, 0, 0, 0), false); }).message,
              HasSubstr("dropout: probability must be in [0, 1), got -0.1"));
  EXPECT_THAT(catch_error([&] { ops::dropout(x, params_of(NAN, 0, 0, 0), true); }).message,
              HasSubstr("dropout: probability must be in [0, 1)"));
  EXPECT_THAT(catch_error([&] { ops::dropout(Tensor::zeros({4}, DType::kI32), params_of(0.1f, 0, 0, 0), true); })
                  .message,
              HasSubstr("dropout: x must be f32, got i32[4] on cpu"));
}

}  // namespace
}  // namespace la3
