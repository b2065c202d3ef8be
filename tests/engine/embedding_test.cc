// Embedding lookup: gather forward, scatter-add backward (repeated ids accumulate), i32 and
// i64 ids of any shape, a table shared by two lookups, and out-of-range ids reported as
// OutOfRange errors naming the id and its position.
#include "engine/ops/embedding.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "engine/autograd/tape.h"
#include "engine/ops/elementwise.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::DoubleInputs;

// Rows of a [vocab, dim] table picked by `ids`, in double.
std::vector<double> gather_reference(const std::vector<double>& table, const std::vector<int64_t>& ids, int64_t dim) {
  std::vector<double> out;
  for (int64_t id : ids) {
    for (int64_t c = 0; c < dim; ++c) out.push_back(table[static_cast<size_t>(id * dim + c)]);
  }
  return out;
}

TEST(Embedding, RepeatedIdsAccumulateForI32AndI64Ids) {
  std::mt19937 rng(71);
  // Id 3 appears three times; ids 2, 4 and 5 never (their gradient rows must be 0).
  const std::vector<int64_t> ids = {3, 0, 3, 6, 3, 1};
  for (DType id_type : {DType::kI64, DType::kI32}) {
    const Tensor id_tensor = Tensor::from_vector<int64_t>({2, 3}, ids).to(id_type);
    ASSERT_EQ(id_tensor.dtype(), id_type);
    const std::string label = std::string("embedding ") + dtype_name(id_type) + " ids [2,3], table [7,5]";
    const testing::GradCheckReport report = testing::check_op(
        label, [&](const std::vector<Tensor>& in) { return ops::embedding(in[0], id_tensor); },
        [&](const DoubleInputs& in) { return gather_reference(in[0], ids, 5); },
        {testing::random_tensor({7, 5}, rng)}, {true});
    testing::print_report(label, report);
  }
}

TEST(Embedding, TableGradientByHand) {
  Tape tape;
  const Tensor table = Tensor::from_vector<float>({3, 2}, {0, 1, 2, 3, 4, 5});
  table.set_requires_grad(true);
  const Tensor ids = Tensor::from_vector<int32_t>({4}, {2, 2, 0, 2});
  const Tensor out = ops::embedding(table, ids);
  EXPECT_EQ(out.shape(), (Shape{4, 2}));
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{4, 5, 4, 5, 0, 1, 4, 5}));
  tape.backward(out, Tensor::from_vector<float>({4, 2}, {1, 10, 2, 20, 3, 30, 4, 40}));
  // Row 2 collects positions 0, 1 and 3; row 0 position 2; row 1 nothing.
  EXPECT_EQ(table.grad().to_vector<float>(), (std::vector<float>{3, 30, 0, 0, 1 + 2 + 4, 10 + 20 + 40}));
}

TEST(Embedding, SharedTableAccumulatesAcrossLookups) {
  // Tied embeddings: two lookups of one table in one backward pass both reach its gradient.
  Tape tape;
  const Tensor table = Tensor::from_vector<float>({2, 1}, {1.0f, 2.0f});
  table.set_requires_grad(true);
  const Tensor single = ops::embedding(table, Tensor::from_vector<int64_t>({}, {1}));    // [1]
  const Tensor pair = ops::embedding(table, Tensor::from_vector<int64_t>({2}, {1, 0}));  // [2, 1]
  const Tensor combined = ops::add(pair, single);  // single broadcast over both rows
  EXPECT_EQ(combined.to_vector<float>(), (std::vector<float>{4.0f, 3.0f}));
  tape.backward(combined, Tensor::from_vector<float>({2, 1}, {1.0f, 10.0f}));
  // Row 0: from pair position 1 (10). Row 1: pair position 0 (1) + single, used by both rows (11).
  EXPECT_EQ(table.grad().to_vector<float>(), (std::vector<float>{10.0f, 12.0f}));
}

TEST(Embedding, IdShapesIncludingScalarAndEmpty) {
  const Tensor table = Tensor::from_vector<float>({4, 3}, {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32});
  // A scalar id gives one row; [2, 1, 2] ids give [2, 1, 2, 3].
  const Tensor one = ops::embedding(table, Tensor::from_vector<int64_t>({}, {3}));
  EXPECT_EQ(one.shape(), (Shape{3}));
  EXPECT_EQ(one.to_vector<float>(), (std::vector<float>{30, 31, 32}));
  const Tensor nested = ops::embedding(table, Tensor::from_vector<int32_t>({2, 1, 2}, {0, 3, 2, 1}));
  EXPECT_EQ(nested.shape(), (Shape{2, 1, 2, 3}));
  EXPECT_EQ(nested.to_vector<float>(), (std::vector<float>{0, 1, 2, 30, 31, 32, 20, 21, 22, 10, 11, 12}));
  EXPECT_EQ(ops::embedding(table, Tensor::zeros({0}, DType::kI64)).shape(), (Shape{0, 3}));
  // Strided ids (every other column of a [2, 4] id matrix).
  const Tensor id_matrix = Tensor::from_vector<int64_t>({2, 4}, {0, 1, 2, 3, 3, 2, 1, 0});
  const Tensor strided = ops::embedding(table, id_matrix.narrow(1, 1, 1));
  EXPECT_EQ(strided.to_vector<float>(), (std::vector<float>{10, 11, 12, 20, 21, 22}));
}

TEST(Embedding, OutOfRangeIdsNameTheIdAndPosition) {
  const Tensor table = Tensor::zeros({10, 4});
  const testing::CaughtError too_large = testing::catch_error(
      [&] { ops::embedding(table, Tensor::from_vector<int64_t>({2, 2}, {1, 2, 10, 3})); });
  EXPECT_TRUE(too_large.engine_error);
  EXPECT_EQ(too_large.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(too_large.message,
              HasSubstr("embedding: id 10 at position 2 of ids i64[2, 2] on cpu is outside the table's vocabulary [0, 10)"));
  const testing::CaughtError negative =
      testing::catch_error([&] { ops::embedding(table, Tensor::from_vector<int32_t>({3}, {0, 9, -1})); });
  EXPECT_EQ(negative.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(negative.message, AllOf(HasSubstr("id -1 at position 2"), HasSubstr("i32[3] on cpu")));
  // At the API boundary the error becomes an OutOfRange status.
  EXPECT_EQ(CaptureStatus([&] { ops::embedding(table, Tensor::from_vector<int64_t>({1}, {99})); }).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(Embedding, BadInputNamesTheOpAndShapes) {
  using testing::error_message;
  EXPECT_THAT(error_message([] { ops::embedding(Tensor::zeros({4, 2}), Tensor::zeros({3})); }),
              HasSubstr("embedding: ids must be i32 or i64, got f32[3] on cpu"));
  EXPECT_THAT(error_message([] { ops::embedding(Tensor::zeros({4, 2, 1}), Tensor::zeros({3}, DType::kI64)); }),
              HasSubstr("embedding: table must have 2 dimensions, got f32[4, 2, 1] on cpu"));
  EXPECT_THAT(error_message([] { ops::embedding(Tensor::zeros({4, 2}, DType::kBF16), Tensor::zeros({3}, DType::kI64)); }),
              HasSubstr("embedding: table must be f32, got bf16[4, 2] on cpu"));
  EXPECT_THAT(error_message([] { ops::embedding(Tensor::zeros({4, 2}), Tensor()); }),
              HasSubstr("embedding: ids is undefined"));
}

}  // namespace
}  // namespace la3
