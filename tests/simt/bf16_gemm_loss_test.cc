// bf16 activations through the ops and the autograd tape on cuda-emu: linear (an f32 weight read
// through its bf16 cast beside a bf16 activation) followed by the k+1-caption loss or the token
// cross-entropy, forward and backward, against the f32 CPU ops on the same bf16-rounded inputs
// (x and the weight rounded to bf16 on both sides, so the only differences are the roundings the
// bf16 path makes: the logits and the activation gradients stored in bf16).
//
// Tolerances (measured values in the comments of each check): the bf16 logits carry a relative
// error up to 2^-9 each, which moves the loss by about that much relative; the gradients inherit
// it through the softmax (dlogits) and the GEMMs (dx rounded to bf16 once more, dW in f32).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/matmul.h"
#include "engine/ops/sequence_loss.h"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

const Device kEmu{DeviceType::kCudaEmu, 0};

// The loss of bf16 logits against f32 ones from the same rounded x and W: the logits' roundings
// (relative 2^-9 each) averaged over the tokens (measured 2.5e-6 to 1.4e-4 over the cases).
constexpr double kLossRelative = 1e-3;
// Gradients, normalised squared error: dlogits from bf16 logits, rounded once, then through a GEMM
// (dx rounded to bf16 again; dW in f32). Measured 6e-6 to 1.6e-5 for dx and dW.
constexpr double kGradientNormalised = 1e-4;

Tensor bf16_rounded(const Tensor& f32) { return f32.to(DType::kBF16).to(DType::kF32); }

Tensor random_values(const Shape& shape, std::mt19937& rng, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  Tensor t = Tensor::empty(shape, DType::kF32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

struct Inputs {
  int64_t rows = 5, length = 3, d_model = 24, vocab = 300;
  Tensor x, weight, labels;  // x and weight bf16-representable f32 on the cpu
  std::vector<int64_t> group;
};

Inputs make_inputs(uint32_t seed, ops::CaptionLoss mode) {
  std::mt19937 rng(seed);
  Inputs in;
  in.x = bf16_rounded(random_values({in.rows, in.length, in.d_model}, rng, 1.0f));
  in.weight = bf16_rounded(random_values({in.vocab, in.d_model}, rng, 0.5f));
  in.group = {0, 0, 1, 2, 2};
  std::vector<int64_t> labels(static_cast<size_t>(in.rows * in.length));
  std::uniform_int_distribution<int64_t> token(0, in.vocab - 1);
  for (int64_t r = 0; r < in.rows; ++r) {
    for (int64_t t = 0; t < in.length; ++t) {
      // token_mixture: one target per group (its first row's); the last position of row 3 padded.
      const int64_t source = mode == ops::CaptionLoss::kTokenMixture && (r == 1 || r == 4) ? r - 1 : r;
      labels[static_cast<size_t>(r * in.length + t)] =
          source != r ? labels[static_cast<size_t>(source * in.length + t)] : (r == 3 && t == 2 ? -100 : token(rng));
    }
  }
  in.labels = Tensor::from_vector<int64_t>({in.rows, in.length}, labels);
  return in;
}

struct Outcome {
  double loss = 0.0;
  Tensor dx, dweight;  // f32 on the cpu
};

// x in `act` on `device`, the weight an f32 leaf there; loss_of(logits) -> scalar.
template <typename LossFn>
Outcome run(const Inputs& in, Device device, DType act, LossFn loss_of) {
  // Fresh leaves (clone): on the cpu in f32, to_device and to would hand back the inputs themselves.
  const Tensor x = in.x.to_device(device).to(act).clone();
  const Tensor weight = in.weight.to_device(device).clone();
  x.set_requires_grad(true);
  weight.set_requires_grad(true);
  Tensor loss;
  {
    Tape tape;
    const Tensor logits = ops::linear(x, weight);
    EXPECT_EQ(logits.dtype(), act);
    loss = loss_of(logits, in.labels.to_device(device));
    EXPECT_EQ(loss.dtype(), DType::kF32);  // the loss is f32 whatever the logits' type
    tape.backward(loss, Tensor::full({}, 0.75, DType::kF32, device));  // upstream != 1
  }
  EXPECT_EQ(x.grad().dtype(), act);              // the activation gradient in its type
  EXPECT_EQ(weight.grad().dtype(), DType::kF32);  // the weight gradient in f32
  Outcome out;
  out.loss = loss.item();
  out.dx = x.grad().to(DType::kF32).to_device(Device::cpu());
  out.dweight = weight.grad().to_device(Device::cpu());
  return out;
}

void expect_close(const Outcome& emu, const Outcome& cpu, const char* what) {
  const double loss_error = std::abs(emu.loss - cpu.loss) / std::max(std::abs(cpu.loss), 1e-6);
  const double dx_error = testing::normalized_error(emu.dx, cpu.dx);
  const double dw_error = testing::normalized_error(emu.dweight, cpu.dweight);
  std::printf("[bf16 linear+loss] %-20s loss rel %.2e  dx nmse %.2e  dW nmse %.2e\n", what, loss_error, dx_error,
              dw_error);
  EXPECT_LT(loss_error, kLossRelative) << what;
  EXPECT_LT(dx_error, kGradientNormalised) << what;
  EXPECT_LT(dw_error, kGradientNormalised) << what;
}

TEST(Bf16Activations, LinearAndCaptionLossMatchTheF32CpuOpsInEveryMode) {
  register_cuda_emu_backend();
  for (ops::CaptionLoss mode :
       {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    const Inputs in = make_inputs(17, mode);
    auto loss_of = [&](const Tensor& logits, const Tensor& labels) {
      const Tensor group = Tensor::from_vector<int64_t>({in.rows}, in.group, logits.device());
      return ops::caption_loss_from_logits(logits, labels, group, mode);
    };
    const Outcome cpu = run(in, Device::cpu(), DType::kF32, loss_of);
    const Outcome emu = run(in, kEmu, DType::kBF16, loss_of);
    expect_close(emu, cpu, ops::caption_loss_name(mode));
    // The f32 path on cuda-emu is unchanged by the bf16 one (fp32 GEMMs: summation order only).
    backend_for(kEmu).set_gemm_precision(GemmPrecision::kFp32);
    const Outcome emu32 = run(in, kEmu, DType::kF32, loss_of);
    backend_for(kEmu).set_gemm_precision(GemmPrecision::kBf16);
    EXPECT_NEAR(emu32.loss, cpu.loss, 1e-5 * std::abs(cpu.loss));
    EXPECT_LT(testing::normalized_error(emu32.dx, cpu.dx), 1e-10);
  }
}

TEST(Bf16Activations, LinearAndTokenLogProbsMatchTheF32CpuOps) {
  register_cuda_emu_backend();
  const Inputs in = make_inputs(23, ops::CaptionLoss::kSequenceMixture);
  // token_log_probs (caption_loss_backward with a per-token weight) then the f32 caption loss.
  auto loss_of = [&](const Tensor& logits, const Tensor& labels) {
    return ops::caption_loss(ops::token_log_probs(logits, labels), labels, in.group, ops::CaptionLoss::kSequenceMixture);
  };
  expect_close(run(in, kEmu, DType::kBF16, loss_of), run(in, Device::cpu(), DType::kF32, loss_of), "token_log_probs");
}

TEST(Bf16Activations, LinearAndCrossEntropyMatchTheF32CpuOps) {
  register_cuda_emu_backend();
  const Inputs in = make_inputs(29, ops::CaptionLoss::kMean);
  auto loss_of = [](const Tensor& logits, const Tensor& labels) { return ops::cross_entropy(logits, labels); };
  expect_close(run(in, kEmu, DType::kBF16, loss_of), run(in, Device::cpu(), DType::kF32, loss_of), "cross_entropy");
}

// Batched matmul of two bf16 activations (the attention fallback's shape): bf16 product and
// bf16 gradients for both operands.
TEST(Bf16Activations, BatchedMatmulOfTwoActivations) {
  register_cuda_emu_backend();
  std::mt19937 rng(31);
  const Tensor a = bf16_rounded(random_values({3, 5, 8}, rng, 1.0f));
  const Tensor b = bf16_rounded(random_values({3, 6, 8}, rng, 1.0f));
  const Tensor upstream = bf16_rounded(random_values({3, 5, 6}, rng, 1.0f));
  auto run_on = [&](Device device, DType act, Tensor& da, Tensor& db) {
    const Tensor x = a.to_device(device).to(act).clone(), y = b.to_device(device).to(act).clone();
    x.set_requires_grad(true);
    y.set_requires_grad(true);
    Tensor out;
    {
      Tape tape;
      out = ops::matmul(x, y, {.trans_b = true});
      // The root's gradient is given in f32; the tape converts it to the root's type.
      tape.backward(out, upstream.to_device(device));
    }
    EXPECT_EQ(out.dtype(), act);
    EXPECT_EQ(x.grad().dtype(), act);
    EXPECT_EQ(y.grad().dtype(), act);
    da = x.grad().to(DType::kF32).to_device(Device::cpu());
    db = y.grad().to(DType::kF32).to_device(Device::cpu());
    return out.to(DType::kF32).to_device(Device::cpu());
  };
  Tensor da_cpu, db_cpu, da_emu, db_emu;
  const Tensor out_cpu = run_on(Device::cpu(), DType::kF32, da_cpu, db_cpu);
  const Tensor out_emu = run_on(kEmu, DType::kBF16, da_emu, db_emu);
  // Same fp32 sums of the same values, then one rounding to bf16 (NMSE ~1e-6).
  EXPECT_LT(testing::normalized_error(out_emu, out_cpu), 1e-5);
  EXPECT_LT(testing::normalized_error(da_emu, da_cpu), 1e-5);
  EXPECT_LT(testing::normalized_error(db_emu, db_cpu), 1e-5);
}

}  // namespace
}  // namespace la3
