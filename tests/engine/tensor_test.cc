// Tensor: creation, views, narrowing, copies, dtype conversion (bf16 rounding), and errors.
#include "engine/tensor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
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
  // A view of a row range keeps the range's offset into the storage.
  const Tensor flat_row = rows.view({2, -1});
  EXPECT_EQ(flat_row.to_vector<float>(), (std::vector<float>{8, 9, 10, 11}));
  flat_row.data<float>()[3] = 111.0f;
  EXPECT_EQ(t.item(11), 111.0);
  // A single row's column range is contiguous too: the stride of a length-1 dimension never
  // matters, so it can be viewed without a copy.
  const Tensor piece = t.narrow(0, 1, 1).narrow(1, 1, 2);  // shape [1, 2], strides [4, 1]
  EXPECT_TRUE(piece.is_contiguous());
  const Tensor piece_flat = piece.view({2});
  EXPECT_EQ(piece_flat.to_vector<float>(), (std::vector<float>{-5, 6}));
  piece_flat.data<float>()[1] = 60.0f;
  EXPECT_EQ(t.item(6), 60.0);
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
  // Just above a tie rounds up; far below stays.
  EXPECT_EQ(bf16_bits(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(bf16_bits(std::bit_cast<float>(0x3f807fffu)), 0x3f80);
  // The largest float is above bf16's largest finite value plus half an ulp: it rounds to inf
  // (as torch does); -inf and signed zero keep their sign.
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(bf16_bits(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  // A NaN whose payload lives only in the low 16 bits must not truncate to inf (0x7f80).
  const uint16_t low_payload_nan = bf16_bits(std::bit_cast<float>(0x7f800001u));
  EXPECT_EQ(low_payload_nan & 0x7f80, 0x7f80);
  EXPECT_NE(low_payload_nan & 0x007f, 0);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16{low_payload_nan})));
  // The smallest subnormal float is far below half of bf16's smallest subnormal: it rounds to 0.
  EXPECT_EQ(bf16_bits(std::bit_cast<float>(0x00000001u)), 0x0000);

  const Tensor f = Tensor::from_vector<float>({3}, {1.0f, 3.14159f, -0.5f});
  const Tensor b = f.to(DType::kBF16);
  EXPECT_EQ(b.dtype(), DType::kBF16);
  EXPECT_EQ(b.nbytes(), 6u);
  EXPECT_EQ(b.data<bf16>()[1].bits, 0x4049);
  EXPECT_EQ(b.to(DType::kF32).to_vector<float>(), (std::vector<float>{1.0f, 3.140625f, -0.5f}));

  // Through Tensor::to as well: NaN stays NaN, infinities stay infinite, bf16 -> f32 is exact.
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor special = Tensor::from_vector<float>({4}, {std::numeric_limits<float>::quiet_NaN(), inf, -inf,
                                                          std::bit_cast<float>(0x3f818000u)});
  const std::vector<float> round_trip = special.to(DType::kBF16).to(DType::kF32).to_vector<float>();
  EXPECT_TRUE(std::isnan(round_trip[0]));
  EXPECT_EQ(round_trip[1], inf);
  EXPECT_EQ(round_trip[2], -inf);
  EXPECT_EQ(std::bit_cast<uint32_t>(round_trip[3]), 0x3f820000u);  // tie to even
  // Conversion makes a new tensor: writing it leaves the source alone.
  const Tensor converted = f.to(DType::kBF16);
  converted.fill(0.0);
  EXPECT_EQ(f.item(0), 1.0);
}

TEST(Tensor, IntegerConversions) {
  const Tensor ids = Tensor::from_vector<int64_t>({3}, {-100, 0, 32127});
  EXPECT_EQ(ids.to(DType::kI32).to_vector<int32_t>(), (std::vector<int32_t>{-100, 0, 32127}));
  EXPECT_EQ(ids.to(DType::kF32).to_vector<float>(), (std::vector<float>{-100.0f, 0.0f, 32127.0f}));
  EXPECT_EQ(Tensor::from_vector<float>({2}, {2.7f, -2.7f}).to(DType::kI64).to_vector<int64_t>(),
            (std::vector<int64_t>{2, -2}));  // truncation toward zero, as torch
  const Tensor small_ints = Tensor::from_vector<int32_t>({3}, {-7, 0, 2147483647});
  EXPECT_EQ(small_ints.to(DType::kI64).to_vector<int64_t>(), (std::vector<int64_t>{-7, 0, 2147483647}));
  EXPECT_EQ(small_ints.to(DType::kF32).to_vector<float>(), (std::vector<float>{-7.0f, 0.0f, 2147483648.0f}));
  EXPECT_EQ(Tensor::from_vector<float>({2}, {-3.9f, 3.9f}).to(DType::kI32).to_vector<int32_t>(),
            (std::vector<int32_t>{-3, 3}));
  // 2^24 + 1 is not a float: i64 -> f32 rounds it to nearest (2^24).
  EXPECT_EQ(Tensor::from_vector<int64_t>({1}, {16777217}).to(DType::kF32).item(), 16777216.0);
  // bf16 -> integer goes through the bf16 value: 3.14159 is 3.140625 in bf16, so 3.
  EXPECT_EQ(Tensor::from_vector<float>({1}, {3.14159f}).to(DType::kBF16).to(DType::kI64).item(), 3.0);
  // item() reads every dtype as a double.
  EXPECT_EQ(Tensor::from_vector<int64_t>({2}, {5, -(int64_t{1} << 40)}).item(1), -1099511627776.0);
  EXPECT_EQ(Tensor::full({2}, -2.5, DType::kBF16).item(1), -2.5);
}

TEST(Tensor, NarrowOfNarrowFillAndCopyIntoAView) {
  const Tensor t = Tensor::from_vector<float>({4, 5}, std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                                                         14, 15, 16, 17, 18, 19});
  // Rows 1..2, then columns 2..4 of those, via a negative dimension index: [[7, 8, 9], [12, 13, 14]].
  const Tensor block = t.narrow(0, 1, 2).narrow(-1, 2, 3);
  EXPECT_EQ(block.shape(), (Shape{2, 3}));
  EXPECT_EQ(block.strides(), (Shape{5, 1}));
  EXPECT_EQ(block.to_vector<float>(), (std::vector<float>{7, 8, 9, 12, 13, 14}));
  EXPECT_EQ(block.item(4), 13.0);  // item() indexes the logical (row-major) view
  // fill and copy_from write only the view's elements.
  block.fill(-1.0);
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0,  1,  2,  3,  4,  5,  6,  -1, -1, -1,
                                                     10, 11, -1, -1, -1, 15, 16, 17, 18, 19}));
  block.copy_from(Tensor::from_vector<float>({2, 3}, {70, 80, 90, 120, 130, 140}));
  EXPECT_EQ(t.item(7), 70.0);
  EXPECT_EQ(t.item(14), 140.0);
  EXPECT_EQ(t.item(10), 10.0);
  // Copying a strided view into another dtype.
  EXPECT_EQ(block.to(DType::kI32).to_vector<int32_t>(), (std::vector<int32_t>{70, 80, 90, 120, 130, 140}));
  // clone() of a view is contiguous and independent of the storage it came from.
  const Tensor copy = block.clone();
  EXPECT_TRUE(copy.is_contiguous());
  t.fill(0.0);
  EXPECT_EQ(copy.item(0), 70.0);
  // An empty narrow is allowed; so is one that reaches the end exactly.
  EXPECT_EQ(t.narrow(1, 5, 0).numel(), 0);
  EXPECT_EQ(t.narrow(1, 0, 5).shape(), (Shape{4, 5}));
  EXPECT_THAT(error_of([&] { t.narrow(0, -1, 2); }), HasSubstr("narrow: range [-1, 1) of dimension 0"));
  EXPECT_THAT(error_of([&] { t.narrow(2, 0, 1); }), HasSubstr("narrow: dimension 2 is out of range"));
}

TEST(Tensor, CreationHelpers) {
  const Tensor ids = Tensor::full({2, 2}, 7.0, DType::kI64);
  EXPECT_EQ(ids.to_vector<int64_t>(), (std::vector<int64_t>{7, 7, 7, 7}));
  const Tensor like = Tensor::zeros_like(ids);
  EXPECT_EQ(like.dtype(), DType::kI64);
  EXPECT_EQ(like.shape(), (Shape{2, 2}));
  EXPECT_EQ(like.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0, 0}));
  EXPECT_EQ(Tensor::empty_like(Tensor::zeros({3}, DType::kBF16)).nbytes(), 6u);
  EXPECT_EQ(Tensor::from_vector<int32_t>({3}, {1, 2, 3}).dtype(), DType::kI32);
  const Tensor nothing = Tensor::zeros({0, 4});
  EXPECT_EQ(nothing.numel(), 0);
  EXPECT_TRUE(nothing.to_vector<float>().empty());
  EXPECT_EQ(nothing.view({-1, 2}).shape(), (Shape{0, 2}));  // -1 resolves to 0 rows of 2
}

TEST(Tensor, WrongTypeAndUndefinedAccessAreErrors) {
  const Tensor t = Tensor::zeros({2});
  EXPECT_THAT(error_of([&] { t.data<int64_t>(); }), HasSubstr("tensor f32[2] on cpu read as i64"));
  const Tensor undefined;
  EXPECT_FALSE(undefined.defined());
  EXPECT_THAT(error_of([&] { undefined.shape(); }), HasSubstr("undefined tensor"));
  // Every member that touches the tensor reports the undefined handle instead of crashing.
  EXPECT_EQ(undefined.describe(), "undefined");
  EXPECT_THAT(error_of([&] { undefined.numel(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.data<float>(); }), HasSubstr("data(): the tensor is undefined"));
  EXPECT_THAT(error_of([&] { undefined.item(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.clone(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.to(DType::kBF16); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.view({1}); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.fill(1.0); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { t.copy_from(undefined); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.requires_grad(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.set_requires_grad(false); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.zero_grad(); }), HasSubstr("undefined tensor"));
  EXPECT_THAT(error_of([&] { undefined.grad(); }), HasSubstr("undefined tensor"));
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
