// The fused k+1-caption loss kernels (kernels/caption_loss.cuh) on the cuda-emu device against
// the CPU reference backend, through the ops (ops::caption_loss_from_logits, token_log_probs +
// caption_loss, cross_entropy), in the SIMT thread orders forward, reverse and shuffled with two
// workers. Random batches: groups of 1..4 rows (k = 0..3) in shuffled order, padded targets
// with all-padding rows, lengths 1..5, vocabularies that are not multiples of the 256-thread
// block (37, 300, 1001) and one smaller than a warp (5); one batch of ~150 rows, more than
// the combine kernel's 128 threads gather in one step. Each case stays below ~50K emulated
// threads (tokens x up to 256).
//
// Tolerances. The CPU sums exponentials in double, the kernels in float with an online
// log-sum-exp in a different order, so log p differs by a few float ulps of the row's lse:
// loss relative error < 2e-6 (double combine on both sides). dlogits: normalised error
// mse(emu, cpu) / mse(cpu, 0) < 1e-10 (measured <= 2e-13; the entries are w * softmax with
// float expf on both sides).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/sequence_loss.h"
#include "tests/simt/simt_modes.h"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

const Device kEmu{DeviceType::kCudaEmu, 0};
constexpr double kLossRelative = 2e-6;
constexpr double kGradientNormalised = 1e-10;

Tensor on(const Tensor& cpu_tensor, Device device) {
  Tensor out = Tensor::empty(cpu_tensor.shape(), cpu_tensor.dtype(), device);
  out.copy_from(cpu_tensor);
  return out;
}

struct Batch {
  int64_t rows = 0, length = 0, vocab = 0;
  std::vector<int64_t> group, labels;
  std::vector<float> logits;
};

Batch random_batch(std::mt19937& rng, ops::CaptionLoss mode, int64_t groups, int64_t length, int64_t vocab) {
  Batch b;
  b.length = length;
  b.vocab = vocab;
  std::uniform_int_distribution<int64_t> group_size(1, 4), token(0, vocab - 1), cut(0, length);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t j = group_size(rng); j > 0; --j) b.group.push_back(g);
  }
  std::shuffle(b.group.begin(), b.group.end(), rng);
  b.rows = static_cast<int64_t>(b.group.size());
  std::vector<std::vector<int64_t>> targets(static_cast<size_t>(groups));
  for (int64_t r = 0; r < b.rows; ++r) {
    std::vector<int64_t>& shared = targets[static_cast<size_t>(b.group[static_cast<size_t>(r)])];
    const bool reuse = mode == ops::CaptionLoss::kTokenMixture && !shared.empty();
    std::vector<int64_t> target = reuse ? shared : std::vector<int64_t>(static_cast<size_t>(length), -100);
    if (!reuse) {
      const int64_t counted = r == 0 ? 0 : cut(rng);  // row 0 is always all padding
      for (int64_t t = 0; t < counted; ++t) target[static_cast<size_t>(t)] = token(rng);
      shared = target;
    }
    b.labels.insert(b.labels.end(), target.begin(), target.end());
  }
  std::normal_distribution<float> normal(0.0f, 2.0f);
  b.logits.resize(static_cast<size_t>(b.rows * length * vocab));
  for (float& x : b.logits) x = normal(rng);
  return b;
}

struct Result {
  double loss = 0.0;
  Tensor grad;  // on the cpu
  double loss_without_tape = 0.0;
};

enum class Path { kFused, kSplit };

// normaliser: the fused op's caller-given normaliser (0 = the batch's own).
Result run(const Batch& b, ops::CaptionLoss mode, Device device, Path path, bool int32_groups,
           double normaliser = 0.0) {
  const Tensor logits = on(Tensor::from_vector<float>({b.rows, b.length, b.vocab}, b.logits), device);
  const Tensor labels = on(Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels), device);
  std::vector<int32_t> group32(b.group.begin(), b.group.end());
  const Tensor group = int32_groups ? on(Tensor::from_vector<int32_t>({b.rows}, group32), device)
                                    : on(Tensor::from_vector<int64_t>({b.rows}, b.group), device);
  auto loss_of = [&](const Tensor& x) {
    return path == Path::kFused ? ops::caption_loss_from_logits(x, labels, group, mode, -100, normaliser)
                                : ops::caption_loss(ops::token_log_probs(x, labels), labels, b.group, mode);
  };
  Result result;
  const Tensor x = logits.clone();
  x.set_requires_grad(true);
  Tensor loss;
  {
    Tape tape;
    loss = loss_of(x);
    EXPECT_EQ(loss.device(), device);
    tape.backward(loss, Tensor::full({}, 0.75, DType::kF32, device));  // upstream != 1
  }
  result.loss = loss.item();
  EXPECT_EQ(x.grad().device(), device);
  result.grad = x.grad().to_device(Device::cpu());
  result.loss_without_tape = loss_of(logits).item();
  return result;
}

class CaptionLossEmu : public testing::SimtModeTest {};

TEST_P(CaptionLossEmu, FusedLossAndGradientMatchTheCpuInEveryMode) {
  register_cuda_emu_backend();
  std::mt19937 rng(71);
  struct Shape {
    int64_t groups, length, vocab;
  };
  for (const Shape shape : {Shape{3, 4, 37}, Shape{4, 1, 300}, Shape{2, 5, 1001}, Shape{4, 3, 5},
                            Shape{60, 1, 5}}) {
    for (ops::CaptionLoss mode :
         {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
      const Batch b = random_batch(rng, mode, shape.groups, shape.length, shape.vocab);
      const bool int32_groups = shape.vocab == 300;
      SCOPED_TRACE(::testing::Message() << ops::caption_loss_name(mode) << " rows " << b.rows << " length " << b.length
                                        << " vocab " << b.vocab);
      const Result cpu = run(b, mode, Device::cpu(), Path::kFused, int32_groups);
      const Result emu = run(b, mode, kEmu, Path::kFused, int32_groups);
      EXPECT_NEAR(emu.loss, cpu.loss, kLossRelative * std::abs(cpu.loss) + 1e-7);
      EXPECT_NEAR(emu.loss_without_tape, cpu.loss, kLossRelative * std::abs(cpu.loss) + 1e-7);
      EXPECT_LT(testing::normalized_error(emu.grad, cpu.grad), kGradientNormalised);
      if (shape.vocab != 37) continue;
      // The split path (token_log_probs + caption_loss) on the device agrees as well.
      const Result split = run(b, mode, kEmu, Path::kSplit, int32_groups);
      EXPECT_NEAR(split.loss, cpu.loss, kLossRelative * std::abs(cpu.loss) + 1e-7);
      EXPECT_LT(testing::normalized_error(split.grad, cpu.grad), kGradientNormalised);
    }
  }
}

// The caller-given normaliser on the device: the batch's own (caption_loss_normaliser, computed
// on the host) reproduces the default loss and gradient bit for bit (the kernels sum the groups'
// token counts in the host's order, so even sequence_mixture's fractional sum is the same
// double), and another value agrees with the CPU as the default does.
TEST_P(CaptionLossEmu, GivenNormaliserMatchesTheCpuAndTheOwnOneIsTheDefault) {
  register_cuda_emu_backend();
  std::mt19937 rng(74);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    const Batch b = random_batch(rng, mode, 40, 2, 5);
    SCOPED_TRACE(::testing::Message() << ops::caption_loss_name(mode) << " rows " << b.rows);
    const double own =
        ops::caption_loss_normaliser(Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels), b.group, mode);
    ASSERT_GT(own, 0.0);
    const Result by_default = run(b, mode, kEmu, Path::kFused, false);
    const Result given_own = run(b, mode, kEmu, Path::kFused, false, own);
    EXPECT_EQ(given_own.loss, by_default.loss);
    EXPECT_EQ(given_own.loss_without_tape, by_default.loss_without_tape);
    EXPECT_EQ(given_own.grad.to_vector<float>(), by_default.grad.to_vector<float>());
    const double global = 3.7 * own;  // e.g. the normaliser of a global batch this one is a slice of
    const Result cpu = run(b, mode, Device::cpu(), Path::kFused, false, global);
    const Result emu = run(b, mode, kEmu, Path::kFused, false, global);
    EXPECT_NEAR(emu.loss, cpu.loss, kLossRelative * std::abs(cpu.loss) + 1e-7);
    EXPECT_NEAR(emu.loss_without_tape, cpu.loss, kLossRelative * std::abs(cpu.loss) + 1e-7);
    EXPECT_LT(testing::normalized_error(emu.grad, cpu.grad), kGradientNormalised);
    EXPECT_NEAR(emu.loss, by_default.loss * own / global, kLossRelative * std::abs(emu.loss));
  }
}

// Every label ignored: loss 0, gradient 0, on the device too.
TEST_P(CaptionLossEmu, AllPaddingGivesZeroLossAndGradient) {
  register_cuda_emu_backend();
  std::mt19937 rng(72);
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    Batch b = random_batch(rng, mode, 2, 3, 37);
    std::fill(b.labels.begin(), b.labels.end(), -100);
    const Result emu = run(b, mode, kEmu, Path::kFused, false);
    EXPECT_EQ(emu.loss, 0.0) << ops::caption_loss_name(mode);
    for (float g : emu.grad.to_vector<float>()) ASSERT_EQ(g, 0.0f) << ops::caption_loss_name(mode);
  }
}

// cross_entropy reduces on the device and reads its upstream gradient there.
TEST_P(CaptionLossEmu, CrossEntropyReducesOnTheDevice) {
  register_cuda_emu_backend();
  std::mt19937 rng(73);
  const Batch b = random_batch(rng, ops::CaptionLoss::kMean, 5, 4, 300);
  for (ops::Reduction reduction : {ops::Reduction::kMean, ops::Reduction::kSum}) {
    ops::CrossEntropyOptions options;
    options.reduction = reduction;
    Tensor grads[2];
    double losses[2];
    const Device devices[2] = {Device::cpu(), kEmu};
    for (int d = 0; d < 2; ++d) {
      const Tensor x = on(Tensor::from_vector<float>({b.rows, b.length, b.vocab}, b.logits), devices[d]);
      x.set_requires_grad(true);
      Tape tape;
      const Tensor loss = ops::cross_entropy(x, on(Tensor::from_vector<int64_t>({b.rows, b.length}, b.labels), devices[d]), options);
      EXPECT_EQ(loss.device(), devices[d]);
      tape.backward(loss, Tensor::full({}, -1.5, DType::kF32, devices[d]));
      losses[d] = loss.item();
      grads[d] = x.grad().to_device(Device::cpu());
    }
    EXPECT_NEAR(losses[1], losses[0], kLossRelative * std::abs(losses[0]));
    EXPECT_LT(testing::normalized_error(grads[1], grads[0]), kGradientNormalised);
  }
}

// Errors are raised before any kernel runs, naming the row (device inputs).
TEST(CaptionLossEmuErrors, BadGroupsAreNamed) {
  register_cuda_emu_backend();
  const Tensor logits = on(Tensor::zeros({3, 2, 5}), kEmu);
  const Tensor labels = on(Tensor::from_vector<int64_t>({3, 2}, {1, 2, 1, 3, 4, -100}), kEmu);
  auto message = [&](std::vector<int64_t> ids, ops::CaptionLoss mode) {
    try {
      ops::caption_loss_from_logits(logits, labels, on(Tensor::from_vector<int64_t>({3}, ids), kEmu), mode);
    } catch (const EngineError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({0, 0, 1}, ops::CaptionLoss::kTokenMixture)
                .find("rows 0 and 1 of group 0 differ at position 1"),
            std::string::npos);
  EXPECT_NE(message({0, 5, 1}, ops::CaptionLoss::kMean).find("group 2 has no rows"), std::string::npos);
  EXPECT_NE(message({0, -3, 1}, ops::CaptionLoss::kMean).find("negative group id -3 at row 1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Orders, CaptionLossEmu, ::testing::Values("forward", "reverse", "shuffled/2"),
                         testing::simt_mode_name);

}  // namespace
}  // namespace la3
