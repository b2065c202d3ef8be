// Gradient buckets in one process, against a recording communicator: packing in backward's
// order, gradients as views of the buckets, each all-reduce started during backward exactly
// when its bucket is final (the values it sees are the final ones), the rest by finish().
#include "dist/gradient_buckets.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/autograd/tape.h"
#include "engine/ops/elementwise.h"
#include "engine/error.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"

namespace la3::dist {
namespace {

// Records every all-reduce: which buffer, how many elements, and the values at launch.
class RecordingCommunicator : public Communicator {
 public:
  struct Call {
    const float* buffer;
    int64_t count;
    std::vector<float> values;
  };
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "recording"; }
  std::unique_ptr<Work> all_reduce_sum(void* buffer, int64_t count, ElementType type) override {
    EXPECT_EQ(type, ElementType::kF32);
    const float* data = static_cast<const float*>(buffer);
    calls.push_back({data, count, std::vector<float>(data, data + count)});
    return completed_work();
  }
  std::unique_ptr<Work> broadcast(void*, int64_t, ElementType, int) override { return completed_work(); }
  std::unique_ptr<Work> reduce_scatter_sum(const void*, void*, int64_t, ElementType) override { return completed_work(); }
  std::unique_ptr<Work> all_gather(const void*, void*, int64_t, ElementType) override { return completed_work(); }
  absl::Status barrier() override { return absl::OkStatus(); }
  std::vector<Call> calls;
};

// A three-layer chain x -> w1 -> w2 -> w3 -> loss: backward finishes w3, then w2, then w1.
struct Chain {
  Tensor x = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, -1, 0.5f, 2, -3});
  Tensor w1 = Tensor::from_vector<float>({4, 4}, std::vector<float>(16, 0.25f));
  Tensor w2 = Tensor::from_vector<float>({3, 4}, {1, -1, 2, 0, 0.5f, 1, -2, 1, 3, 0, 1, -1});
  Tensor w3 = Tensor::from_vector<float>({1, 3}, {1, 2, -1});
  Chain() {
    for (const Tensor* w : {&w1, &w2, &w3}) w->set_requires_grad(true);
  }
  std::vector<Tensor> parameters() const { return {w1, w2, w3}; }
  Tensor loss() const {
    const Tensor y = ops::linear(ops::linear(ops::linear(x, w1), w2), w3);  // [2, 1]
    return ops::linear(ops::reshape(y, {1, 2}), Tensor::full({1, 2}, 1.0));
  }
};

std::vector<float> plain_gradient(const Tensor& w) { return w.grad().to_vector<float>(); }

TEST(GradientBuckets, PackInBackwardOrderAndStartEachAllReduceWhenItsBucketIsFinal) {
  // Reference gradients without buckets.
  Chain reference;
  {
    Tape tape;
    const Tensor loss = reference.loss();
    tape.backward(loss);
  }
  Chain chain;
  RecordingCommunicator comm;
  std::vector<Tensor> order;
  {
    Tape probe;
    chain.loss();
    order = probe.leaves_in_ready_order();
    probe.clear();
  }
  ASSERT_EQ(order.size(), 3u);
  EXPECT_TRUE(order[0].same(chain.w3));
  // 16 floats per bucket: w3 (3) + w2 (12) fill the first; w1 (16) gets the second.
  GradientBuckets buckets(order, chain.parameters(), 16 * 4, comm);
  ASSERT_EQ(buckets.bucket_count(), 2);
  EXPECT_EQ(buckets.bucket_buffer(0).numel(), 15);
  EXPECT_EQ(buckets.bucket_buffer(1).numel(), 16);
  EXPECT_EQ(buckets.total_elements(), 31);
  buckets.zero();
  {
    Tape tape;
    const Tensor loss = chain.loss();
    tape.backward(loss, Tensor(), buckets.ready_hook());
  }
  // Both buckets started during backward, in order, and each saw its final gradients.
  ASSERT_EQ(comm.calls.size(), 2u);
  EXPECT_EQ(buckets.launch_order(), (std::vector<int>{0, 1}));
  EXPECT_EQ(buckets.launched_during_backward(), (std::vector<bool>{true, true}));
  ASSERT_TRUE(buckets.finish().ok());
  EXPECT_EQ(comm.calls[0].buffer, buckets.bucket_buffer(0).data<float>());
  EXPECT_EQ(comm.calls[0].count, 15);
  std::vector<float> expected0 = plain_gradient(reference.w3);
  const std::vector<float> w2_grad = plain_gradient(reference.w2);
  expected0.insert(expected0.end(), w2_grad.begin(), w2_grad.end());
  EXPECT_EQ(comm.calls[0].values, expected0);
  EXPECT_EQ(comm.calls[1].values, plain_gradient(reference.w1));
  // The parameters' gradients are views of the buckets, equal to the plain ones.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(chain.parameters()[static_cast<size_t>(i)].grad().to_vector<float>(),
              reference.parameters()[static_cast<size_t>(i)].grad().to_vector<float>());
  }
  EXPECT_EQ(chain.w1.grad().data<float>(), buckets.bucket_buffer(1).data<float>());
  // zero() clears them in place; a second step accumulates afresh.
  buckets.zero();
  EXPECT_EQ(chain.w2.grad().to_vector<float>(), std::vector<float>(12, 0.0f));
}

TEST(GradientBuckets, BucketsNotStartedDuringBackwardAreStartedByFinish) {
  Chain chain;
  RecordingCommunicator comm;
  GradientBuckets buckets({}, chain.parameters(), 1 << 20, comm);  // no order known: given order
  ASSERT_EQ(buckets.bucket_count(), 1);
  buckets.zero();
  {
    Tape tape;
    const Tensor loss = chain.loss();
    tape.backward(loss);  // accumulation micro-batch: no hook
  }
  EXPECT_TRUE(comm.calls.empty());
  ASSERT_TRUE(buckets.finish().ok());
  ASSERT_EQ(comm.calls.size(), 1u);
  EXPECT_EQ(buckets.launched_during_backward(), (std::vector<bool>{false}));
}

TEST(GradientBuckets, RefusesParametersItCannotHold) {
  RecordingCommunicator comm;
  const Tensor strided = Tensor::zeros({4, 4}).narrow(1, 0, 2);
  strided.set_requires_grad(true);
  EXPECT_THROW(GradientBuckets({}, {strided}, 64, comm), EngineError);
  const Tensor fine = Tensor::zeros({4});
  EXPECT_THROW(GradientBuckets({}, {fine}, 2, comm), EngineError);
}

}  // namespace
}  // namespace la3::dist
