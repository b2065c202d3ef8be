// Tensor: creation, views, narrowing, copies, dtype conversion (bf16 rounding), and errors.
#include "engine/tensor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace la3 {
namespace {

using ::testing::HasSubstr;

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const EngineError& error) {
    return error.what();
  }
  return "no error";
}

TEST(Tensor, ShapesStridesAndCreation) {
  const Tensor t = Tensor::full({2, 3, 4}, 1.5);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.describe(), "f32[2, 3, 4] on cpu");
  EXPECT_EQ(t.item(23), 1.5);
  const Tensor scalar = Tensor::scalar(2.0f);
  EXPECT_EQ(scalar.rank(), 0);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_THAT(error_of([] { Tensor::empty({2, -1}, DType::kF32); }), HasSubstr("negative extent"));
  EXPECT_THAT(error_of([] { Tensor::from_vector<float>({2, 2}, {1, 2, 3}); }),
              HasSubstr("3 values for shape [2, 2] (4 elements)"));
  EXPECT_THAT(error_of([&] { t.size(3); }), HasSubstr("dimension 3 is out of range for a tensor of rank 3"));
}

TEST(Tensor, ViewSharesDataAndInfersOneExtent) {
  const Tensor t = Tensor::from_vector<float>({2, 3}, {0, 1, 2, 3, 4, 5});
  const Tensor v = t.view({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  v.data<float>()[5] = 50.0f;
  EXPECT_EQ(t.item(5), 50.0);
  EXPECT_THAT(error_of([&] { t.view({4, -1}); }), HasSubstr("cannot infer -1"));
  EXPECT_THAT(error_of([&] { t.view({-1, -1}); }), HasSubstr("more than one -1"));
  EXPECT_THAT(error_of([&] { t.view({7}); }), HasSubstr("shape [7] has 7 elements but tensor f32[2, 3] on cpu has 6"));
}

TEST(Tensor, NarrowIsAStridedViewAndContiguousCopiesIt) {
  const Tensor t = Tensor::from_vector<float>({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const Tensor columns = t.narrow(1, 1, 2);  // [[1, 2], [5, 6], [9, 10]]
  EXPECT_FALSE(columns.is_contiguous());
  EXPECT_EQ(columns.strides(), (Shape{4, 1}));
  EXPECT_EQ(columns.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  columns.data<float>()[4] = -5.0f;  // element (1, 0) of the view = (1, 1) of t
  EXPECT_EQ(t.item(5), -5.0);
  const Tensor dense = columns.contiguous();
  EXPECT_TRUE(dense.is_contiguous());
  dense.data<float>()[0] = 100.0f;
  EXPECT_EQ(t.item(1), 1.0);  // a copy, not a view
  const Tensor rows = t.narrow(0, 2, 1);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  EXPECT_THAT(error_of([&] { t.narrow(1, 3, 2); }), HasSubstr("range [3, 5) of dimension 1 is outside"));
  EXPECT_THAT(error_of([&] { columns.view({6}); }), HasSubstr("is not contiguous"));
}

TEST(Tensor, CloneIsIndependent) {
  const Tensor t = Tensor::full({4}, 2.0);
  const Tensor c = t.clone();
  c.fill(7.0);
  EXPECT_EQ(t.item(0), 2.0);
  EXPECT_EQ(c.item(3), 7.0);
  Tensor target = Tensor::zeros({4});
  target.copy_from(t);
  EXPECT_EQ(target.to_vector<float>(), (std::vector<float>{2, 2, 2, 2}));
  EXPECT_THAT(error_of([&] { target.copy_from(Tensor::zeros({5})); }), HasSubstr("copy_from: source f32[5]"));
}

uint16_t bf16_bits(float value) { return float_to_bf16(value).bits; }

TEST(Tensor, Bf16ConversionRoundsToNearestEven) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits(3.14159f), 0x4049);  // 0x40490fd0 rounds down
  EXPECT_EQ(bf16_bits(-2.0f), 0xc000);
  // Ties: 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: rounds to even (1.0).
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(bf16_bits(1.0f + 3.0f * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // Rounding that overflows the mantissa carries into the exponent.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.9999999f)), 2.0f);

  const Tensor f = Tensor::from_vector<float>({3}, {1.0f, 3.14159f, -0.5f});
  const Tensor b = f.to(DType::kBF16);
  EXPECT_EQ(b.dtype(), DType::kBF16);
  EXPECT_EQ(b.nbytes(), 6u);
  EXPECT_EQ(b.data<bf16>()[1].bits, 0x4049);
  EXPECT_EQ(b.to(DType::kF32).to_vector<float>(), (std::vector<float>{1.0f, 3.140625f, -0.5f}));
}

TEST(Tensor, IntegerConversions) {
  const Tensor ids = Tensor::from_vector<int64_t>({3}, {-100, 0, 32127});
  EXPECT_EQ(ids.to(DType::kI32).to_vector<int32_t>(), (std::vector<int32_t>{-100, 0, 32127}));
  EXPECT_EQ(ids.to(DType::kF32).to_vector<float>(), (std::vector<float>{-100.0f, 0.0f, 32127.0f}));
  EXPECT_EQ(Tensor::from_vector<float>({2}, {2.7f, -2.7f}).to(DType::kI64).to_vector<int64_t>(),
            (std::vector<int64_t>{2, -2}));  // truncation toward zero, as torch
}

TEST(Tensor, WrongTypeAndUndefinedAccessAreErrors) {
  const Tensor t = Tensor::zeros({2});
  EXPECT_THAT(error_of([&] { t.data<int64_t>(); }), HasSubstr("tensor f32[2] on cpu read as i64"));
  const Tensor undefined;
  EXPECT_FALSE(undefined.defined());
  EXPECT_THAT(error_of([&] { undefined.shape(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { t.item(2); }), HasSubstr("index 2 outside tensor"));
  EXPECT_THAT(error_of([] { Tensor::zeros({1}, DType::kI64).set_requires_grad(true); }),
              HasSubstr("only floating tensors have gradients"));
  // Errors become Status at API boundaries, never an abort.
  const absl::Status status = CaptureStatus([&] { t.data<int32_t>(); });
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CaptureStatus([&] { t.narrow(0, 1, 5); }).code(), absl::StatusCode::kOutOfRange);
}

TEST(Tensor, AllocatorTracksBytesInUse) {
  Allocator& allocator = allocator_for(Device::cpu());
  const size_t before = allocator.bytes_in_use();
  {
    const Tensor big = Tensor::empty({1000}, DType::kF32);
    EXPECT_EQ(allocator.bytes_in_use(), before + 4000);
    EXPECT_GE(allocator.peak_bytes(), before + 4000);
  }
  EXPECT_EQ(allocator.bytes_in_use(), before);
  EXPECT_THAT(error_of([] { Tensor::empty({2}, DType::kF32, Device{DeviceType::kCuda, 0}); }),
              HasSubstr("no allocator for device cuda:0"));
}

}  // namespace
}  // namespace la3
