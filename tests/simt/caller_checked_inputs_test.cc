// The ops' host-side checks of integer inputs on the cuda-emu device: without the caller's
// guarantee they read the ids, labels and groups back (the host waits for the device) and keep
// refusing bad values with their errors; with it (ops::IdCheck::kByCaller, a
// CaptionLossInputsChecked from check_caption_loss_inputs) they read nothing back and compute
// the same values.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "engine/cuda/cuda_devices.h"
#include "engine/ops/embedding.h"
#include "engine/ops/sequence_loss.h"
#include "kernels/simt/runtime.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

Device emu() {
  register_cuda_emu_backend();
  return Device{DeviceType::kCudaEmu, 0};
}

uint64_t waits() { return simt::runtime_counters().host_synchronizations; }

TEST(CallerCheckedInputs, EmbeddingSkipsItsReadBackOnlyWhenTheCallerChecked) {
  const Tensor host_table = Tensor::from_vector<float>({3, 2}, {0, 1, 10, 11, 20, 21});
  const Tensor table = host_table.to_device(emu());
  const Tensor ids = Tensor::from_vector<int64_t>({3}, {2, 0, 1}, emu());

  uint64_t before = waits();
  const Tensor by_op = ops::embedding(table, ids);
  EXPECT_EQ(waits() - before, 1u) << "the op's own check reads the ids back";
  before = waits();
  const Tensor by_caller = ops::embedding(table, ids, ops::IdCheck::kByCaller);
  EXPECT_EQ(waits() - before, 0u);
  EXPECT_EQ(by_caller.to_device(Device::cpu()).to_vector<float>(), by_op.to_device(Device::cpu()).to_vector<float>());
  EXPECT_EQ(by_op.to_device(Device::cpu()).to_vector<float>(), (std::vector<float>{20, 21, 0, 1, 10, 11}));

  // Without the guarantee a bad id on the device is still refused with the op's error.
  const testing::CaughtError bad = testing::catch_error(
      [&] { ops::embedding(table, Tensor::from_vector<int64_t>({2}, {1, 3}, emu())); });
  EXPECT_EQ(bad.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(bad.message, HasSubstr("embedding: id 3 at position 1"));
  // The caller's check is the op's check, run on the host copy before the upload.
  const testing::CaughtError caller = testing::catch_error(
      [&] { ops::check_embedding_ids(Tensor::from_vector<int64_t>({2}, {-1, 0}), 3); });
  EXPECT_EQ(caller.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(caller.message, HasSubstr("embedding: id -1 at position 0"));
  // Ids the host can read cost nothing to check, so they are checked even when vouched for.
  const testing::CaughtError host_ids = testing::catch_error([&] {
    ops::embedding(host_table, Tensor::from_vector<int64_t>({1}, {5}), ops::IdCheck::kByCaller);
  });
  EXPECT_EQ(host_ids.kind, ErrorKind::kOutOfRange);
}

TEST(CallerCheckedInputs, CaptionLossSkipsItsReadBacksOnlyWhenGivenTheCallersCheck) {
  // Two groups: rows 0 and 1 share a target (token_mixture), row 2 is alone.
  const std::vector<int64_t> group = {0, 0, 1};
  const Tensor host_labels = Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 2, 3, -100});
  std::vector<float> values;
  for (int i = 0; i < 3 * 2 * 4; ++i) values.push_back(0.1f * static_cast<float>((i * 7) % 11) - 0.5f);
  const Tensor logits = Tensor::from_vector<float>({3, 2, 4}, values, emu());
  const Tensor labels = host_labels.to_device(emu());
  const Tensor group_ids = Tensor::from_vector<int64_t>({3}, group, emu());
  const ops::CaptionLoss mode = ops::CaptionLoss::kTokenMixture;

  uint64_t before = waits();
  const Tensor by_op = ops::caption_loss_from_logits(logits, labels, group_ids, mode);
  EXPECT_EQ(waits() - before, 2u) << "labels and group ids are read back";
  const ops::CaptionLossInputsChecked checked = ops::check_caption_loss_inputs(host_labels, group, 4, mode);
  EXPECT_EQ(checked.groups, 2);
  EXPECT_EQ(checked.max_group_rows, 2);
  before = waits();
  const Tensor by_caller = ops::caption_loss_from_logits(logits, labels, group_ids, mode, -100, 0.0, &checked);
  EXPECT_EQ(waits() - before, 0u);
  EXPECT_EQ(by_caller.item(), by_op.item());

  // A check of other inputs is refused (the shapes, vocabulary and mode are compared).
  ops::CaptionLossInputsChecked other_mode = checked;
  other_mode.mode = ops::CaptionLoss::kMean;
  const testing::CaughtError mismatch = testing::catch_error(
      [&] { ops::caption_loss_from_logits(logits, labels, group_ids, mode, -100, 0.0, &other_mode); });
  EXPECT_EQ(mismatch.kind, ErrorKind::kInvalidArgument);
  EXPECT_THAT(mismatch.message, HasSubstr("the caller's check was of 3 x 2 labels over 4 tokens (mean"));

  // Without the guarantee bad labels and groups on the device are still refused.
  const testing::CaughtError bad_label = testing::catch_error([&] {
    ops::caption_loss_from_logits(logits, Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 2, 4, -100}, emu()),
                                  group_ids, ops::CaptionLoss::kMean);
  });
  EXPECT_EQ(bad_label.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(bad_label.message, HasSubstr("label 4 at position 4"));
  const testing::CaughtError bad_target = testing::catch_error([&] {
    ops::caption_loss_from_logits(logits, Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 3, 3, -100}, emu()),
                                  group_ids, mode);
  });
  EXPECT_THAT(bad_target.message, HasSubstr("token_mixture needs one target per group, but rows 0 and 1"));
  // The caller's check on the host gives the same errors.
  const testing::CaughtError caller_label = testing::catch_error([&] {
    ops::check_caption_loss_inputs(Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 2, 4, -100}), group, 4,
                                   ops::CaptionLoss::kMean);
  });
  EXPECT_EQ(caller_label.kind, ErrorKind::kOutOfRange);
  EXPECT_THAT(caller_label.message, HasSubstr("caption_loss_from_logits: label 4 at position 4"));
  const testing::CaughtError caller_group = testing::catch_error(
      [&] { ops::check_caption_loss_inputs(host_labels, {0, 0, 2}, 4, ops::CaptionLoss::kMean); });
  EXPECT_THAT(caller_group.message, HasSubstr("group 1 has no rows"));
}

}  // namespace
}  // namespace la3
