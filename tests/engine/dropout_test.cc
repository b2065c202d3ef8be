// Inverted dropout with the counter-based Philox mask: identity when off, a mask that is a
// pure function of (seed, step, stream, element key) and exactly kernels::dropout_keep at the
// key of (row_offset + row, position, column), the same mask for an example whatever its
// batch's padded length or its row in a split batch (forward and backward), the kept fraction,
// the 1/(1-p) scaling, the same mask in backward, invalid probabilities and unkeyable shapes.
#include "engine/ops/dropout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <utility>
#include <vector>

#include "engine/autograd/tape.h"
#include "kernels/philox.cuh"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

kernels::DropoutParams params_of(float p, uint64_t seed, uint64_t step, uint32_t stream, int64_t row_offset = 0) {
  kernels::DropoutParams params;
  params.p = p;
  params.seed = seed;
  params.step = step;
  params.stream = stream;
  params.row_offset = row_offset;
  return params;
}

// The documented key of flat element `index` of a contiguous [rows, positions, width] tensor:
// ((row_offset + row) * 2^16 + position) * 2^16 + column, written out (not via the helper the
// backends use).
uint64_t documented_key(int64_t row_offset, int64_t positions, int64_t width, int64_t index) {
  const int64_t row = index / (positions * width), position = index / width % positions, column = index % width;
  return (static_cast<uint64_t>(row_offset + row) * 65536u + static_cast<uint64_t>(position)) * 65536u +
         static_cast<uint64_t>(column);
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

TEST(Dropout, MaskIsExactlyTheOneFromDropoutKeepAtTheElementKey) {
  // Inputs are all nonzero, so a zero output means "dropped". Shapes: [rows, width] (positions
  // 1), [rows, L, width], [rows, A, B, width] (positions A * B), and widths above the CPU's
  // 1024-column chunk and not multiples of 4 (rows start on Philox block boundaries, chunks
  // need not).
  struct Case {
    Shape shape;
    int64_t positions, width;
  };
  std::mt19937 rng(81);
  for (const Case& c : {Case{{37, 29}, 1, 29}, Case{{3, 5, 7}, 5, 7}, Case{{2, 3, 2, 5}, 6, 5}, Case{{2, 2, 1501}, 2, 1501}}) {
    const Tensor x = testing::random_tensor(c.shape, rng, 0.5f, 1.5f);
    for (const kernels::DropoutParams& params : {params_of(0.1f, 7, 0, 0), params_of(0.5f, 0xfeedbeefcafeull, 123, 9, 11),
                                                 params_of(0.9f, 1, 2, 3, 1000003)}) {
      const Tensor y = ops::dropout(x, params, true);
      const std::vector<float> in = x.to_vector<float>(), out = y.to_vector<float>();
      const float keep_scale = 1.0f / (1.0f - params.p);
      int64_t mismatches = 0;
      for (size_t i = 0; i < in.size(); ++i) {
        const uint64_t key = documented_key(params.row_offset, c.positions, c.width, static_cast<int64_t>(i));
        const bool keep = kernels::dropout_keep(params.p, params.seed, params.step, params.stream, key);
        // The kept value is x * (1 / (1 - p)), the scale rounded to fp32 once, as the kernels do.
        const float expected = keep ? in[i] * keep_scale : 0.0f;
        mismatches += out[i] != expected;
      }
      EXPECT_EQ(mismatches, 0) << x.describe() << " p = " << params.p << " row_offset " << params.row_offset;
    }
  }
}

// The point of the keying (data parallelism, gradient accumulation): an example's mask is the
// same when its batch is padded to another length and when it is row r - 3 of a slice whose
// row_offset is 3 instead of row r of the whole batch; forward and backward.
TEST(Dropout, MaskOfARowIgnoresPaddingAndWhereTheBatchWasSplit) {
  const int64_t rows = 5, long_len = 11, short_len = 7, width = 13;
  std::mt19937 rng(83);
  const Tensor whole = testing::random_tensor({rows, long_len, width}, rng, 0.5f, 1.5f);  // padded to 11
  const kernels::DropoutParams params = params_of(0.4f, 2024, 9, 6);
  auto forward_and_gradient = [&](const Tensor& x_in, int64_t row_offset) {
    Tape tape;
    const Tensor x = x_in.contiguous();
    x.set_requires_grad(true);
    kernels::DropoutParams shifted = params;
    shifted.row_offset = row_offset;
    const Tensor y = ops::dropout(x, shifted, true);
    tape.backward(y, Tensor::full(x.shape(), 1.0));
    return std::pair<std::vector<float>, std::vector<float>>{y.to_vector<float>(), x.grad().to_vector<float>()};
  };
  const auto [whole_out, whole_grad] = forward_and_gradient(whole, 0);
  // Rows 3.. of the whole batch, padded only to 7 positions, as a slice with row_offset 3.
  const auto [tail_out, tail_grad] = forward_and_gradient(whole.narrow(0, 3, 2).narrow(1, 0, short_len), 3);
  // The same slice keyed as rows 0.. (the old flat keying's behaviour) must differ: the check
  // below is not passing by construction.
  const auto [unshifted_out, unshifted_grad] = forward_and_gradient(whole.narrow(0, 3, 2).narrow(1, 0, short_len), 0);
  int64_t dropped = 0, unshifted_differs = 0;
  for (int64_t r = 0; r < 2; ++r) {
    for (int64_t t = 0; t < short_len; ++t) {
      for (int64_t c = 0; c < width; ++c) {
        const size_t in_whole = static_cast<size_t>(((3 + r) * long_len + t) * width + c);
        const size_t in_tail = static_cast<size_t>((r * short_len + t) * width + c);
        ASSERT_EQ(tail_out[in_tail], whole_out[in_whole]) << "row " << 3 + r << " position " << t << " column " << c;
        ASSERT_EQ(tail_grad[in_tail], whole_grad[in_whole]) << "row " << 3 + r << " position " << t << " column " << c;
        dropped += whole_out[in_whole] == 0.0f;
        unshifted_differs += (unshifted_out[in_tail] == 0.0f) != (whole_out[in_whole] == 0.0f);
      }
    }
  }
  EXPECT_GT(dropped, 30);  // 182 draws at p = 0.4
  EXPECT_GT(unshifted_differs, 30);
}

TEST(Dropout, SameParametersSameMaskAndEachCoordinateChangesIt) {
  const Tensor x = Tensor::full({4099}, 1.0);  // rank 1: each element its own row
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
                                                params_of(0.5f, 43, 10, 3), params_of(0.5f, 42ull << 32, 10, 3),
                                                params_of(0.5f, 42, 10, 3, 1)}) {
    const int64_t count = differing(changed);
    EXPECT_GT(count, 4099 / 2 - 4 * 32) << "seed " << changed.seed << " step " << changed.step << " stream "
                                        << changed.stream << " row_offset " << changed.row_offset;
    EXPECT_LT(count, 4099 / 2 + 4 * 32);
  }
}

TEST(Dropout, KeptFractionIsOneMinusPWithinFourSigma) {
  const int64_t count = 100000;
  const Tensor x = Tensor::full({8, 25, 500}, 1.0);  // [rows, positions, width], keys with gaps between rows
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
          const uint64_t key = documented_key(0, 1, 7, static_cast<int64_t>(i));  // x is [6, 7]
          out[i] = kernels::dropout_keep(params.p, params.seed, params.step, params.stream, key) ? in[0][i] / 0.75 : 0.0;
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
              HasSubstr("dropout: x must be f32 or bf16, got i32[4] on cpu"));
}

TEST(Dropout, ShapesWhoseKeysDoNotFitAreErrors) {
  using testing::catch_error;
  const testing::CaughtError wide =
      catch_error([&] { ops::dropout(Tensor::zeros({2, 65537}), params_of(0.1f, 0, 0, 0), true); });
  EXPECT_TRUE(wide.engine_error);
  EXPECT_EQ(wide.kind, ErrorKind::kInvalidArgument);
  EXPECT_THAT(wide.message, HasSubstr("dropout: x f32[2, 65537] on cpu is keyed as [rows 2, positions 1, width 65537]"));
  EXPECT_THAT(wide.message, HasSubstr("width <= 65536"));
  EXPECT_THAT(catch_error([&] { ops::dropout(Tensor::zeros({1, 256, 256, 1}), params_of(0.1f, 0, 0, 0), true); })
                  .message,
              HasSubstr("positions 65536, width 1]; the mask needs positions < 65536"));
  EXPECT_THAT(catch_error([&] { ops::dropout(Tensor::zeros({2, 3}), params_of(0.1f, 0, 0, 0, -1), true); }).message,
              HasSubstr("dropout: row_offset -1 with the 2 rows of x f32[2, 3] on cpu must keep global rows in [0, "
                        "4294967296)"));
  EXPECT_THAT(
      catch_error([&] { ops::dropout(Tensor::zeros({2, 3}), params_of(0.1f, 0, 0, 0, (int64_t{1} << 32) - 1), true); })
          .message,
      HasSubstr("row_offset 4294967295"));
  // The limits themselves are fine: width 2^16, positions 2^16 - 1, the last global row.
  EXPECT_NO_THROW(ops::dropout(Tensor::zeros({1, 65536}), params_of(0.1f, 0, 0, 0), true));
  EXPECT_NO_THROW(ops::dropout(Tensor::zeros({1, 65535, 1}), params_of(0.1f, 0, 0, 0), true));
  EXPECT_NO_THROW(ops::dropout(Tensor::zeros({2, 3}), params_of(0.1f, 0, 0, 0, (int64_t{1} << 32) - 2), true));
  // No mask is drawn outside training, so nothing is keyed or checked.
  EXPECT_NO_THROW(ops::dropout(Tensor::zeros({2, 65537}), params_of(0.1f, 0, 0, 0), false));
}

}  // namespace
}  // namespace la3
