// The communicators under a real multi-process launch: this binary runs under
// `mpirun -np 2` and `-np 3` (tests/CMakeLists.txt); every rank runs every test, and each
// checks values that depend on every rank's contribution, so a wrong offset, count or rank
// order fails on some rank.
#include <gtest/gtest.h>

#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/gradient_buckets.h"
#include "dist/sharded_adamw.h"
#include "engine/optim/adamw.h"
#include "dist/world.h"

namespace la3::dist {
namespace {

class MpiCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(world().mpi) << "run this binary under mpirun";
    comm_ = make_world_communicator(60.0);
    ASSERT_EQ(comm_->name(), "mpi");
  }
  std::unique_ptr<Communicator> comm_;
};

// A value no two (rank, index) pairs share, exactly representable in f32.
float contribution(int rank, int64_t i) { return static_cast<float>(rank * 1000 + i % 997) + 0.25f; }

TEST_F(MpiCommunicatorTest, AllReduceSumsEveryRanksBuffer) {
  const int size = comm_->size();
  for (int64_t count : {int64_t{1}, int64_t{7}, int64_t{100003}}) {
    std::vector<float> buffer(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) buffer[static_cast<size_t>(i)] = contribution(comm_->rank(), i);
    ASSERT_TRUE(comm_->all_reduce_sum(buffer.data(), count, ElementType::kF32)->wait().ok());
    for (int64_t i = 0; i < count; ++i) {
      float expected = 0.0f;
      for (int r = 0; r < size; ++r) expected += contribution(r, i);
      ASSERT_EQ(buffer[static_cast<size_t>(i)], expected) << "element " << i << " of " << count;
    }
  }
}

TEST_F(MpiCommunicatorTest, AllReduceOfDoublesAndIntegers) {
  double values[2] = {0.1 * (comm_->rank() + 1), 1e300};
  ASSERT_TRUE(comm_->all_reduce_sum(values, 2).ok());
  double expected = 0.0;
  for (int r = 0; r < comm_->size(); ++r) expected += 0.1 * (r + 1);
  EXPECT_NEAR(values[0], expected, 1e-15);
  int64_t tokens[1] = {(int64_t{1} << 40) + comm_->rank()};
  ASSERT_TRUE(comm_->all_reduce_sum(tokens, 1).ok());
  EXPECT_EQ(tokens[0], comm_->size() * (int64_t{1} << 40) + comm_->size() * (comm_->size() - 1) / 2);
}

TEST_F(MpiCommunicatorTest, ManyCollectivesInFlightCompleteInAnyWaitOrder) {
  // Buckets: several all-reduces started back to back, waited for in reverse.
  const int kBuckets = 6;
  std::vector<std::vector<float>> buckets(kBuckets);
  std::vector<std::unique_ptr<Work>> work;
  for (int b = 0; b < kBuckets; ++b) {
    buckets[b].assign(static_cast<size_t>(1000 + 333 * b), static_cast<float>(comm_->rank() + b));
    work.push_back(comm_->all_reduce_sum(buckets[b].data(), static_cast<int64_t>(buckets[b].size()), ElementType::kF32));
  }
  for (int b = kBuckets - 1; b >= 0; --b) ASSERT_TRUE(work[static_cast<size_t>(b)]->wait().ok());
  const int size = comm_->size();
  for (int b = 0; b < kBuckets; ++b) {
    const float expected = static_cast<float>(size * (size - 1) / 2 + size * b);
    for (float v : buckets[b]) ASSERT_EQ(v, expected) << "bucket " << b;
  }
}

TEST_F(MpiCommunicatorTest, BroadcastFromEveryRoot) {
  for (int root = 0; root < comm_->size(); ++root) {
    std::vector<double> buffer(5, comm_->rank() == root ? 3.5 + root : -1.0);
    ASSERT_TRUE(comm_->broadcast(buffer.data(), 5, ElementType::kF64, root)->wait().ok());
    for (double v : buffer) EXPECT_EQ(v, 3.5 + root) << "root " << root;
  }
  EXPECT_FALSE(comm_->broadcast(nullptr, 0, ElementType::kF64, comm_->size())->wait().ok());
}

TEST_F(MpiCommunicatorTest, ReduceScatterGivesEachRankTheSumOfItsShard) {
  const int size = comm_->size();
  const int64_t shard = 1001;
  std::vector<float> send(static_cast<size_t>(shard * size));
  for (int64_t i = 0; i < shard * size; ++i) send[static_cast<size_t>(i)] = contribution(comm_->rank(), i);
  std::vector<float> recv(static_cast<size_t>(shard), -7.0f);
  ASSERT_TRUE(comm_->reduce_scatter_sum(send.data(), recv.data(), shard, ElementType::kF32)->wait().ok());
  for (int64_t j = 0; j < shard; ++j) {
    const int64_t i = comm_->rank() * shard + j;
    float expected = 0.0f;
    for (int r = 0; r < size; ++r) expected += contribution(r, i);
    ASSERT_EQ(recv[static_cast<size_t>(j)], expected) << "shard element " << j;
  }
}

TEST_F(MpiCommunicatorTest, AllGatherConcatenatesInRankOrder) {
  const int size = comm_->size();
  const int64_t count = 513;
  std::vector<float> send(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) send[static_cast<size_t>(i)] = contribution(comm_->rank(), i);
  std::vector<float> recv(static_cast<size_t>(count * size), -1.0f);
  ASSERT_TRUE(comm_->all_gather(send.data(), recv.data(), count, ElementType::kF32)->wait().ok());
  for (int r = 0; r < size; ++r) {
    for (int64_t i = 0; i < count; ++i) ASSERT_EQ(recv[static_cast<size_t>(r * count + i)], contribution(r, i));
  }
}

TEST_F(MpiCommunicatorTest, TwoCommunicatorsDoNotMatchEachOthersCollectives) {
  auto other = make_world_communicator(60.0);
  std::vector<float> a(10, 1.0f), b(10, 100.0f);
  // Started in opposite orders on even and odd ranks: a shared communicator would pair them up.
  std::unique_ptr<Work> wa, wb;
  if (comm_->rank() % 2 == 0) {
    wa = comm_->all_reduce_sum(a.data(), 10, ElementType::kF32);
    wb = other->all_reduce_sum(b.data(), 10, ElementType::kF32);
  } else {
    wb = other->all_reduce_sum(b.data(), 10, ElementType::kF32);
    wa = comm_->all_reduce_sum(a.data(), 10, ElementType::kF32);
  }
  ASSERT_TRUE(wa->wait().ok());
  ASSERT_TRUE(wb->wait().ok());
  EXPECT_EQ(a[0], static_cast<float>(comm_->size()));
  EXPECT_EQ(b[9], 100.0f * static_cast<float>(comm_->size()));
}

TEST_F(MpiCommunicatorTest, ALateRankMakesTheWaitTimeOutWithAClearError) {
  auto impatient = make_world_communicator(0.3);
  double value = 1.0;
  std::unique_ptr<Work> work;
  if (comm_->rank() == comm_->size() - 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the straggler
    work = impatient->all_reduce_sum(&value, 1, ElementType::kF64);
    ASSERT_TRUE(work->wait().ok());
  } else {
    work = impatient->all_reduce_sum(&value, 1, ElementType::kF64);
    const absl::Status status = work->wait();
    EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
    EXPECT_NE(status.message().find("all_reduce_sum of 1 f64"), std::string::npos) << status;
    EXPECT_NE(status.message().find("distributed.timeout_s"), std::string::npos) << status;
    // The collective still completes once the straggler arrives.
    while (!work->wait().ok()) {
    }
  }
  EXPECT_EQ(value, static_cast<double>(comm_->size()));
  ASSERT_TRUE(impatient->barrier().ok());
}

TEST_F(MpiCommunicatorTest, GradientBucketsSumEveryRanksGradients) {
  // Three parameters in two buckets; each rank writes rank-dependent gradients.
  std::vector<Tensor> parameters = {Tensor::zeros({5}), Tensor::zeros({2, 3}), Tensor::zeros({7})};
  for (const Tensor& p : parameters) p.set_requires_grad(true);
  GradientBuckets buckets({parameters[2], parameters[0]}, parameters, 12 * 4, *comm_);
  ASSERT_EQ(buckets.bucket_count(), 2);  // [p2 (7) + p0 (5)], [p1 (6)]
  buckets.zero();
  for (size_t i = 0; i < parameters.size(); ++i) {
    parameters[i].grad().fill(static_cast<double>((comm_->rank() + 1) * (i + 1)));
  }
  ASSERT_TRUE(buckets.finish().ok());
  const int size = comm_->size();
  for (size_t i = 0; i < parameters.size(); ++i) {
    const float expected = static_cast<float>(size * (size + 1) / 2 * static_cast<int>(i + 1));
    for (float g : parameters[i].grad().to_vector<float>()) ASSERT_EQ(g, expected) << "parameter " << i;
  }
}

// ZeRO-1 against plain AdamW on the summed gradients: the same weights and moments bit for
// bit (each element's update depends only on its own values), over three steps, with
// buckets whose sizes are not multiples of the rank count (padding).
TEST_F(MpiCommunicatorTest, ShardedAdamWEqualsAdamWOnTheSummedGradients) {
  const std::vector<Shape> shapes = {{5}, {3, 7}, {11}, {2, 2}};
  auto initial = [](size_t p, int64_t i) { return 0.1f * static_cast<float>((p + 1) * (i % 13)) - 0.5f; };
  auto gradient = [](int rank, size_t p, int64_t i, int step) {
    return 0.01f * static_cast<float>((rank + 1) * ((i * 7 + static_cast<int64_t>(p) + step) % 17)) - 0.05f;
  };
  std::vector<Tensor> sharded_params, plain_params;
  for (size_t p = 0; p < shapes.size(); ++p) {
    std::vector<float> values(static_cast<size_t>(shape_numel(shapes[p])));
    for (size_t i = 0; i < values.size(); ++i) values[i] = initial(p, static_cast<int64_t>(i));
    sharded_params.push_back(Tensor::from_vector<float>(shapes[p], values));
    plain_params.push_back(Tensor::from_vector<float>(shapes[p], values));
    sharded_params.back().set_requires_grad(true);
    plain_params.back().set_requires_grad(true);
  }
  AdamWOptions options;
  options.lr = 0.01;
  options.weight_decay = 0.1;
  GradientBuckets buckets({}, sharded_params, 20 * 4, *comm_, comm_->size());
  ShardedAdamW sharded(buckets, *comm_, *comm_, options);
  AdamW plain(plain_params, options);
  for (int step = 0; step < 3; ++step) {
    buckets.zero();
    for (size_t p = 0; p < shapes.size(); ++p) {
      std::vector<float> mine(static_cast<size_t>(sharded_params[p].numel())), sum(mine.size(), 0.0f);
      for (size_t i = 0; i < mine.size(); ++i) {
        mine[i] = gradient(comm_->rank(), p, static_cast<int64_t>(i), step);
        for (int r = 0; r < comm_->size(); ++r) sum[i] += gradient(r, p, static_cast<int64_t>(i), step);
      }
      sharded_params[p].grad().copy_from(Tensor::from_vector<float>(shapes[p], mine));
      plain_params[p].set_grad(Tensor::from_vector<float>(shapes[p], sum));
    }
    ASSERT_TRUE(buckets.finish().ok());
    ASSERT_TRUE(sharded.step().ok());
    plain.step();
    for (size_t p = 0; p < shapes.size(); ++p) {
      ASSERT_EQ(sharded_params[p].to_vector<float>(), plain_params[p].to_vector<float>()) << "parameter " << p
                                                                                          << " step " << step;
    }
  }
  std::vector<Tensor> exp_avg, exp_avg_sq;
  ASSERT_TRUE(sharded.gather_state(sharded_params, &exp_avg, &exp_avg_sq).ok());
  for (size_t p = 0; p < shapes.size(); ++p) {
    EXPECT_EQ(exp_avg[p].to_vector<float>(), plain.exp_avg()[p].to_vector<float>());
    EXPECT_EQ(exp_avg_sq[p].to_vector<float>(), plain.exp_avg_sq()[p].to_vector<float>());
  }
  EXPECT_EQ(sharded.steps_taken(), 3);
  // Each rank holds about 1/n of the moments (plus padding).
  EXPECT_LE(sharded.state_bytes(), 2 * 4 * (51 / comm_->size() + 4 * comm_->size()));
  // Restoring the whole state (as from a checkpoint) keeps the same shards.
  ShardedAdamW restored(buckets, *comm_, *comm_, options);
  ASSERT_TRUE(restored.restore_state(3, sharded_params, exp_avg, exp_avg_sq).ok());
  std::vector<Tensor> again, again_sq;
  ASSERT_TRUE(restored.gather_state(sharded_params, &again, &again_sq).ok());
  for (size_t p = 0; p < shapes.size(); ++p) EXPECT_EQ(again_sq[p].to_vector<float>(), exp_avg_sq[p].to_vector<float>());
  EXPECT_FALSE(restored.restore_state(3, sharded_params, {}, {}).ok());
}

TEST_F(MpiCommunicatorTest, CountsBeyondMpisRangeAreRefused) {
  const absl::Status status = comm_->all_reduce_sum(nullptr, int64_t{1} << 32, ElementType::kF32)->wait();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("count range"), std::string::npos) << status;
}

}  // namespace
}  // namespace la3::dist

// main(): tests/support/mpi_test_main.cc
