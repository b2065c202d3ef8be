// The autograd tape: a composite expression against finite differences, accumulation into
// shared inputs and across backward passes, no-grad mode, memory release, and errors.
#include "engine/autograd/tape.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "engine/ops/cross_entropy.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/matmul.h"
#include "engine/ops/rmsnorm.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

TEST(Tape, CompositeExpressionMatchesFiniteDifferences) {
  // loss = cross_entropy(linear(rmsnorm(x, w1), w2), labels) with an ignored label.
  std::mt19937 rng(41);
  const std::vector<int64_t> labels = {3, -100, 0, 5};
  const Tensor label_tensor = Tensor::from_vector<int64_t>({4}, labels);
  auto op = [&](const std::vector<Tensor>& in) {
    return ops::cross_entropy(ops::linear(ops::rmsnorm(in[0], in[1]), in[2]), label_tensor);
  };
  auto reference = [&](const testing::DoubleInputs& in) {
    double total = 0.0;
    int counted = 0;
    for (size_t r = 0; r < 4; ++r) {
      double mean_square = 0.0;
      for (size_t c = 0; c < 5; ++c) mean_square += in[0][r * 5 + c] * in[0][r * 5 + c] / 5.0;
      const double inv = 1.0 / std::sqrt(mean_square + 1e-6);
      std::vector<double> logits(6, 0.0);
      for (size_t o = 0; o < 6; ++o) {
        for (size_t c = 0; c < 5; ++c) logits[o] += in[0][r * 5 + c] * inv * in[1][c] * in[2][o * 5 + c];
      }
      if (labels[r] == -100) continue;
      double max_value = -INFINITY, sum = 0.0;
      for (double z : logits) max_value = std::max(max_value, z);
      for (double z : logits) sum += std::exp(z - max_value);
      total += max_value + std::log(sum) - logits[static_cast<size_t>(labels[r])];
      ++counted;
    }
    return std::vector<double>{total / counted};
  };
  const testing::GradCheckReport report = testing::check_op(
      "composite", op, reference,
      {testing::random_tensor({4, 5}, rng), testing::random_tensor({5}, rng, 0.5f, 1.5f),
       testing::random_tensor({6, 5}, rng)},
      {true, true, true});
  testing::print_report("cross_entropy(linear(rmsnorm(x, w1), w2))", report);
}

TEST(Tape, GradientsAccumulateForReusedTensorsAndAcrossPasses) {
  const Tensor x = Tensor::from_vector<float>({3}, {1.0f, -2.0f, 0.5f});
  x.set_requires_grad(true);
  {
    Tape tape;
    const Tensor y = ops::add(ops::mul(x, x), x);  // dy/dx = 2x + 1
    tape.backward(y, Tensor::full({3}, 1.0));
    EXPECT_EQ(tape.size(), 0u);
  }
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3.0f, -3.0f, 2.0f}));
  {
    Tape tape;
    tape.backward(ops::scale(x, 2.0f), Tensor::full({3}, 1.0));
  }
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5.0f, -1.0f, 4.0f}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Tape, IntermediateUsedTwiceCollectsBothContributionsBeforeItsProducerRuns) {
  // h = 2x; y = h*h + h = 4x^2 + 2x, so dy/dx = 8x + 2. h's gradient (2h + 1) must be
  // complete, from both uses, before scale's backward maps it to x.
  const Tensor x = Tensor::from_vector<float>({3}, {1.0f, -0.5f, 2.0f});
  const Tensor constant = Tensor::full({3}, 3.0);  // does not require a gradient
  x.set_requires_grad(true);
  Tape tape;
  const Tensor h = ops::scale(x, 2.0f);
  const Tensor y = ops::add(ops::mul(h, h), h);
  const Tensor unused = ops::mul(x, constant);  // a branch the root does not depend on
  EXPECT_EQ(tape.size(), 4u);  // scale, mul, add, and the unused mul
  tape.backward(y, Tensor::full({3}, 1.0));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{10.0f, -2.0f, 18.0f}));
  // Intermediates give their gradient up once consumed; only leaves (and the root) keep one.
  EXPECT_FALSE(h.grad().defined());
  EXPECT_TRUE(y.grad().defined());
  EXPECT_FALSE(unused.grad().defined());
  EXPECT_FALSE(constant.grad().defined());
  EXPECT_TRUE(x.is_leaf());
  EXPECT_FALSE(h.is_leaf());
}

// The first contribution to a gradient is taken over when nothing else references it and
// copied otherwise: a copy of every activation gradient per step is what this saves, and a
// wrong take-over would make two gradients share memory.
TEST(Tape, AFreshFirstContributionIsTakenOverAndASharedOneCopied) {
  const Tensor x = Tensor::from_vector<float>({4}, {1.0f, 2.0f, 3.0f, 4.0f});
  const Tensor w = Tensor::from_vector<float>({4}, {-1.0f, 0.5f, 2.0f, 1.0f});
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  const float* fresh = nullptr;
  Tensor kept;  // a gradient the op also keeps: must be copied
  {
    Tape tape;
    const Tensor out = Tensor::full({4}, 0.0);
    record_op("probe", {x, w}, out, [&](const Tensor&) {
      Tensor dx = Tensor::full({4}, 3.0);
      fresh = dx.data<float>();
      kept = Tensor::full({4}, 5.0);
      return std::vector<Tensor>{dx, kept};
    });
    tape.backward(out, Tensor::full({4}, 1.0));
  }
  EXPECT_EQ(x.grad().data<float>(), fresh);
  EXPECT_NE(w.grad().data<float>(), kept.data<float>());
  kept.fill(0.0);  // the caller's tensor changing must not change w's gradient
  EXPECT_EQ(w.grad().to_vector<float>(), (std::vector<float>{5.0f, 5.0f, 5.0f, 5.0f}));

  // An op that sends one gradient to two inputs (the add of add_rmsnorm does): the two
  // gradients end up in separate memory, and a later contribution to one leaves the other.
  const Tensor a = Tensor::from_vector<float>({2}, {1.0f, 2.0f});
  const Tensor b = Tensor::from_vector<float>({2}, {3.0f, 4.0f});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  {
    Tape tape;
    const Tensor out = Tensor::full({2}, 0.0);
    record_op("pass_through", {a, b}, out,
              [](const Tensor& dout) { return std::vector<Tensor>{dout, dout}; });
    tape.backward(out, Tensor::from_vector<float>({2}, {1.0f, -1.0f}));
  }
  EXPECT_NE(a.grad().data<float>(), b.grad().data<float>());
  {
    Tape tape;
    tape.backward(ops::scale(a, 2.0f), Tensor::full({2}, 1.0));
  }
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3.0f, 1.0f}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{1.0f, -1.0f}));
}

// A parameter that already has a gradient (a slot of a gradient bucket) receives its weight
// gradient in place: the linear's dW GEMM accumulates into it (beta = 1), the embedding and
// RMSNorm kernels add into it, and the values equal the fresh-buffer path's.
TEST(Tape, ParameterGradientsAccumulateInPlace) {
  std::mt19937 rng(7);
  const Tensor x = testing::random_tensor({5, 6}, rng, -1.0f, 1.0f);
  const Tensor weight = testing::random_tensor({4, 6}, rng, -1.0f, 1.0f);
  const Tensor norm = testing::random_tensor({4}, rng, 0.5f, 1.5f);
  weight.set_requires_grad(true);
  norm.set_requires_grad(true);
  auto run = [&] {
    Tape tape;
    tape.backward(ops::rmsnorm(ops::linear(x, weight), norm), testing::random_tensor({5, 4}, rng, -1.0f, 1.0f));
  };
  rng.seed(8);
  run();  // no gradient yet: fresh buffers, taken over
  const std::vector<float> dweight = weight.grad().to_vector<float>(), dnorm = norm.grad().to_vector<float>();
  // Preset slots, as gradient buckets give: written in place, twice = the sum.
  const Tensor weight_slot = Tensor::zeros({4, 6}), norm_slot = Tensor::zeros({4});
  weight.set_grad(weight_slot);
  norm.set_grad(norm_slot);
  rng.seed(8);
  run();
  EXPECT_EQ(weight.grad().data<float>(), weight_slot.data<float>());
  EXPECT_EQ(norm.grad().data<float>(), norm_slot.data<float>());
  EXPECT_EQ(weight_slot.to_vector<float>(), dweight);
  EXPECT_EQ(norm_slot.to_vector<float>(), dnorm);
  rng.seed(8);
  run();
  for (size_t i = 0; i < dweight.size(); ++i) EXPECT_FLOAT_EQ(weight_slot.to_vector<float>()[i], 2.0f * dweight[i]);
  for (size_t i = 0; i < dnorm.size(); ++i) EXPECT_FLOAT_EQ(norm_slot.to_vector<float>()[i], 2.0f * dnorm[i]);
}

TEST(Tape, NestedTapesAndGuards) {
  const Tensor x = Tensor::full({2}, 1.0);
  x.set_requires_grad(true);
  EXPECT_EQ(Tape::active(), nullptr);
  Tape outer;
  EXPECT_EQ(Tape::active(), &outer);
  {
    Tape inner;  // records while alive, then hands recording back to outer
    EXPECT_EQ(Tape::active(), &inner);
    ops::scale(x, 2.0f);
    EXPECT_EQ(inner.size(), 1u);
    {
      NoGradGuard first;
      {
        NoGradGuard second;
      }
      ops::scale(x, 2.0f);  // still disabled after the nested guard ends
      EXPECT_EQ(inner.size(), 1u);
    }
    ops::scale(x, 2.0f);
    EXPECT_EQ(inner.size(), 2u);
  }
  EXPECT_EQ(Tape::active(), &outer);
  EXPECT_EQ(outer.size(), 0u);
  ops::scale(x, 2.0f);
  EXPECT_EQ(outer.size(), 1u);
}

TEST(Tape, NothingIsRecordedWithoutATapeOrUnderNoGrad) {
  const Tensor x = Tensor::full({2}, 1.0);
  x.set_requires_grad(true);
  const Tensor untaped = ops::scale(x, 3.0f);
  EXPECT_FALSE(untaped.requires_grad());
  Tape tape;
  {
    NoGradGuard no_grad;
    const Tensor y = ops::scale(x, 3.0f);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(tape.size(), 0u);
  }
  const Tensor z = ops::scale(x, 3.0f);
  EXPECT_TRUE(z.requires_grad());
  EXPECT_FALSE(z.is_leaf());
  EXPECT_EQ(tape.size(), 1u);
  // Inputs that do not require a gradient record nothing either.
  ops::scale(Tensor::full({2}, 1.0), 2.0f);
  EXPECT_EQ(tape.size(), 1u);
}

TEST(Tape, SavedActivationsAreFreedByBackward) {
  Allocator& allocator = allocator_for(Device::cpu());
  const Tensor w = Tensor::full({64, 64}, 0.01);
  w.set_requires_grad(true);
  const size_t before = allocator.bytes_in_use();
  {
    Tape tape;
    Tensor h = Tensor::full({32, 64}, 1.0);
    for (int layer = 0; layer < 4; ++layer) h = ops::linear(h, w);
    Tensor loss = ops::cross_entropy(h, Tensor::zeros({32}, DType::kI64));
    h = Tensor();
    const size_t during = allocator.bytes_in_use();
    EXPECT_GT(during, before + 4 * 32 * 64 * 4);  // the tape holds the activations
    tape.backward(loss);
    loss = Tensor();
    // Only w's gradient (64 x 64 floats) remains.
    EXPECT_EQ(allocator.bytes_in_use(), before + 64 * 64 * 4);
  }
  w.zero_grad();
  EXPECT_EQ(allocator.bytes_in_use(), before);
}

TEST(Tape, BackwardErrorsNameTheProblem) {
  const Tensor x = Tensor::full({2}, 1.0);
  x.set_requires_grad(true);
  Tape tape;
  const Tensor y = ops::scale(x, 2.0f);
  auto message = [](auto&& fn) {
    try {
      fn();
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_THAT(message([&] { tape.backward(y); }), HasSubstr("has more than one element; pass its gradient"));
  EXPECT_THAT(message([&] { tape.backward(y, Tensor::full({3}, 1.0)); }), HasSubstr("does not match root"));
  EXPECT_THAT(message([&] { tape.backward(Tensor::full({1}, 1.0)); }), HasSubstr("does not require a gradient"));
}

}  // namespace
}  // namespace la3

namespace la3 {
namespace {

// y = sum((w1 * x) * w2) + sum(w1 * w3): w2 is read once, late; w1 twice (first use early);
// w3 once, last. Backward replays in reverse, so the order in which gradients become final
// is w3, w2, w1.
TEST(TapeLeafReady, LeavesBecomeFinalInReverseOrderOfFirstUseWithTheirFinalGradient) {
  const Tensor x = Tensor::from_vector<float>({1, 3}, {1.0f, -2.0f, 0.5f});
  const Tensor w1 = Tensor::from_vector<float>({1, 3}, {0.5f, 1.5f, -1.0f});
  const Tensor w2 = Tensor::from_vector<float>({1, 3}, {2.0f, 0.25f, 3.0f});
  const Tensor w3 = Tensor::from_vector<float>({1, 3}, {-1.0f, 1.0f, 4.0f});
  const Tensor unused = Tensor::from_vector<float>({1}, {7.0f});
  for (const Tensor* w : {&w1, &w2, &w3, &unused}) w->set_requires_grad(true);
  const Tensor ones = Tensor::full({1, 3}, 1.0);
  auto sum = [&](const Tensor& t) { return ops::linear(t, ones); };  // [1, 1]
  Tape tape;
  const Tensor a = ops::mul(w1, x);
  const Tensor b = ops::mul(a, w2);
  const Tensor c = ops::mul(w1, w3);
  const Tensor loss = ops::add(sum(b), sum(c));
  const std::vector<Tensor> order = tape.leaves_in_ready_order();
  ASSERT_EQ(order.size(), 3u);  // x does not require a gradient; `unused` is never read
  EXPECT_TRUE(order[0].same(w3));
  EXPECT_TRUE(order[1].same(w2));
  EXPECT_TRUE(order[2].same(w1));
  std::vector<const void*> ready;
  std::vector<std::vector<float>> gradient_when_ready;
  tape.backward(loss, Tensor(), [&](const Tensor& leaf) {
    ready.push_back(leaf.identity());
    gradient_when_ready.push_back(leaf.grad().to_vector<float>());
  });
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[0], w3.identity());
  EXPECT_EQ(ready[1], w2.identity());
  EXPECT_EQ(ready[2], w1.identity());
  // Each was already complete when announced: dw1 = x * w2 + w3 (both contributions).
  EXPECT_EQ(gradient_when_ready[2], w1.grad().to_vector<float>());
  EXPECT_EQ(gradient_when_ready[2], (std::vector<float>{1.0f, 0.5f, 5.5f}));
  EXPECT_EQ(gradient_when_ready[1], (std::vector<float>{0.5f, -3.0f, -0.5f}));
  EXPECT_FALSE(unused.grad().defined());
}

TEST(TapeLeafReady, ALeafReadByANodeOffTheRootsPathIsStillAnnounced) {
  const Tensor w = Tensor::from_vector<float>({1, 2}, {1.0f, 2.0f});
  const Tensor v = Tensor::from_vector<float>({1, 2}, {3.0f, 4.0f});
  w.set_requires_grad(true);
  v.set_requires_grad(true);
  const Tensor ones = Tensor::full({1, 2}, 1.0);
  Tape tape;
  const Tensor dead_end = ops::mul(v, v);  // never reaches the loss: no gradient, still final
  const Tensor loss = ops::linear(ops::mul(w, w), ones);
  std::vector<const void*> ready;
  tape.backward(loss, Tensor(), [&](const Tensor& leaf) { ready.push_back(leaf.identity()); });
  EXPECT_THAT(ready, ::testing::UnorderedElementsAre(w.identity(), v.identity()));
  (void)dead_end;
}

}  // namespace
}  // namespace la3
