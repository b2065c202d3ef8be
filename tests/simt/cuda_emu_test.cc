// The cuda-emu device end to end through the engine's ops and autograd tape: a small T5-like
// block (embedding, RMSNorm, attention with relative-position bias and padding, gated-GELU
// FFN, residuals, cross-entropy) runs forward and backward on cpu and on cuda-emu (every
// non-GEMM op a CUDA kernel under the SIMT emulation); loss and every gradient agree.
#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"

#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include <cstdio>
#include <map>
#include <span>
#include <random>
#include <string>

#include "engine/allocator.h"
#include "engine/autograd/tape.h"
#include "engine/ops/activation.h"
#include "engine/ops/attention.h"
#include "engine/ops/cross_entropy.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/matmul.h"
#include "engine/ops/reshape.h"
#include "engine/ops/rmsnorm.h"
#include "engine/ops/sequence_loss.h"
#include "engine/optim/adamw.h"
#include "tests/simt/simt_modes.h"

namespace la3 {
namespace {

const Device kEmu{DeviceType::kCudaEmu, 0};

Tensor on(const Tensor& cpu_tensor, Device device) {
  Tensor out = Tensor::empty(cpu_tensor.shape(), cpu_tensor.dtype(), device);
  out.copy_from(cpu_tensor);
  return out;
}

// One block of a tiny T5 encoder-decoder step; returns the loss.
Tensor tiny_block(const std::map<std::string, Tensor>& w, const Tensor& ids, const Tensor& mask, const Tensor& labels) {
  const int64_t batch = 2, len = 6, heads = 2, d_kv = 4;
  Tensor h = ops::embedding(w.at("embed"), ids);                                   // [2, 6, 12]
  const Tensor normed = ops::rmsnorm(h, w.at("ln"));
  const Tensor q = ops::reshape(ops::linear(normed, w.at("q")), {batch, len, heads, d_kv});
  const Tensor k = ops::reshape(ops::linear(normed, w.at("k")), {batch, len, heads, d_kv});
  const Tensor v = ops::reshape(ops::linear(normed, w.at("v")), {batch, len, heads, d_kv});
  ops::AttentionOptions options;
  options.num_buckets = 8;
  options.max_distance = 10;
  const Tensor context = ops::attention(q, k, v, w.at("bias"), mask, options);
  // The residual add fused with the next pre-norm, as the T5 blocks do.
  const ops::AddRmsNorm after_attention =
      ops::add_rmsnorm(h, ops::linear(ops::reshape(context, {batch, len, heads * d_kv}), w.at("o")), w.at("ln2"));
  h = after_attention.sum;
  const Tensor& normed_ff = after_attention.normed;
  const Tensor inner = ops::gated_gelu(ops::linear(normed_ff, w.at("wi0")), ops::linear(normed_ff, w.at("wi1")));
  h = ops::add(h, ops::linear(inner, w.at("wo")));
  return ops::cross_entropy(ops::linear(h, w.at("head")), labels);
}

class CudaEmuDevice : public testing::SimtModeTest {};

// Tolerances (normalised error, mse(a, b) / mse(b, 0)): with fp32 GEMMs the two devices
// differ only by summation order (< 1e-10); with bf16 GEMM operands (the CUDA default) each
// operand carries a relative rounding error of up to 2^-9, which after a few layers gives
// normalised errors of 1e-5..1e-3 on the gradients.
struct PrecisionCase {
  GemmPrecision precision;
  double loss_relative;
  double gradient_normalised;
};

TEST_P(CudaEmuDevice, ForwardAndBackwardMatchTheCpuDevice) {
  register_cuda_emu_backend();
  for (const PrecisionCase& c : {PrecisionCase{GemmPrecision::kFp32, 1e-5, 1e-10},
                                 PrecisionCase{GemmPrecision::kBf16, 1e-2, 2e-3}}) {
  SCOPED_TRACE(c.precision == GemmPrecision::kFp32 ? "fp32 GEMM" : "bf16 GEMM");
  backend_for(kEmu).set_gemm_precision(c.precision);
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  auto random = [&](const Shape& shape) {
    std::vector<float> values(static_cast<size_t>(shape_numel(shape)));
    for (float& x : values) x = normal(rng);
    return Tensor::from_vector<float>(shape, values);
  };
  const std::map<std::string, Shape> shapes = {
      {"embed", {20, 12}}, {"ln", {12}},  {"q", {8, 12}},    {"k", {8, 12}},    {"v", {8, 12}},  {"o", {12, 8}},
      {"bias", {8, 2}},    {"ln2", {12}}, {"wi0", {10, 12}}, {"wi1", {10, 12}}, {"wo", {12, 10}}, {"head", {20, 12}}};
  std::map<std::string, Tensor> cpu_weights, emu_weights;
  for (const auto& [name, shape] : shapes) {
    cpu_weights[name] = random(shape);
    emu_weights[name] = on(cpu_weights[name], kEmu);
    cpu_weights[name].set_requires_grad(true);
    emu_weights[name].set_requires_grad(true);
  }
  const std::vector<int64_t> id_values = {3, 7, 1, 19, 4, 4, 2, 8, 8, 0, 0, 0};
  const std::vector<int64_t> label_values = {5, 6, 7, 8, 9, 10, 11, 12, 13, -100, -100, -100};
  const std::vector<int32_t> mask_values = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0};
  const Tensor ids = Tensor::from_vector<int64_t>({2, 6}, id_values), labels = Tensor::from_vector<int64_t>({2, 6}, label_values);
  const Tensor mask = Tensor::from_vector<int32_t>({2, 6}, mask_values);

  Tensor cpu_loss, emu_loss;
  {
    Tape tape;
    cpu_loss = tiny_block(cpu_weights, ids, mask, labels);
    tape.backward(cpu_loss);
  }
  {
    Tape tape;
    emu_loss = tiny_block(emu_weights, on(ids, kEmu), on(mask, kEmu), on(labels, kEmu));
    tape.backward(emu_loss);
  }
  EXPECT_NEAR(emu_loss.item(), cpu_loss.item(), c.loss_relative * std::abs(cpu_loss.item()));
  for (const auto& [name, weight] : cpu_weights) {
    ASSERT_TRUE(emu_weights[name].grad().defined()) << name;
    EXPECT_EQ(emu_weights[name].grad().device(), kEmu) << name;
    const double error = testing::normalized_error(emu_weights[name].grad(), weight.grad());
    EXPECT_LT(error, c.gradient_normalised) << name;
    // bf16 must actually round: a zero difference would mean the GEMM ignored the setting.
    if (c.precision == GemmPrecision::kBf16 && name != "bias") {
      EXPECT_GT(error, 0.0) << name;
    }
  }
  }
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kBf16);
}

// AdamW's bf16 weight copies: the bf16 GEMMs read them instead of casting the weights, with
// bit-identical results (a copy is the same rounding the cast would make), over three
// training steps; after weights are loaded behind the optimizer's back, refresh_bf16_copies()
// brings the copies back in line.
TEST(CudaEmuOptim, Bf16WeightCopiesFeedTheGemmsWithIdenticalResults) {
  register_cuda_emu_backend();
  Backend& emu = backend_for(kEmu);
  emu.set_gemm_precision(GemmPrecision::kBf16);
  std::mt19937 rng(12);
  const std::map<std::string, Shape> shapes = {
      {"embed", {20, 12}}, {"ln", {12}},  {"q", {8, 12}},    {"k", {8, 12}},    {"v", {8, 12}},  {"o", {12, 8}},
      {"bias", {8, 2}},    {"ln2", {12}}, {"wi0", {10, 12}}, {"wi1", {10, 12}}, {"wo", {12, 10}}, {"head", {20, 12}}};
  std::map<std::string, Tensor> initial;
  for (const auto& [name, shape] : shapes) initial[name] = testing::random_tensor(shape, rng, -0.5f, 0.5f);
  const Tensor ids = on(Tensor::from_vector<int64_t>({2, 6}, {3, 7, 1, 19, 4, 4, 2, 8, 8, 0, 0, 0}), kEmu);
  const Tensor labels =
      on(Tensor::from_vector<int64_t>({2, 6}, {5, 6, 7, 8, 9, 10, 11, 12, 13, -100, -100, -100}), kEmu);
  const Tensor mask = on(Tensor::from_vector<int32_t>({2, 6}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}), kEmu);

  struct Run {
    std::vector<float> losses;
    std::map<std::string, std::vector<float>> weights;
    Backend::GemmOperandCounts counts;
  };
  auto train = [&](bool copies) {
    std::map<std::string, Tensor> w;
    std::vector<Tensor> parameters;
    for (const auto& [name, tensor] : initial) {
      w[name] = on(tensor, kEmu);
      w[name].set_requires_grad(true);
      parameters.push_back(w[name]);
    }
    AdamWOptions options;
    options.lr = 1e-2;
    options.bf16_weight_copies = copies;
    AdamW optimizer(parameters, options);
    const Backend::GemmOperandCounts before = emu.gemm_operand_counts();
    Run run;
    for (int step = 0; step < 3; ++step) {
      Tape tape;
      const Tensor loss = tiny_block(w, ids, mask, labels);
      tape.backward(loss);
      optimizer.step();
      optimizer.zero_grad();
      run.losses.push_back(static_cast<float>(loss.item()));
    }
    const Backend::GemmOperandCounts after = emu.gemm_operand_counts();
    run.counts = {after.cast - before.cast, after.from_copy - before.from_copy};
    for (const auto& [name, tensor] : w) run.weights[name] = tensor.to_vector<float>();
    return run;
  };
  const Run plain = train(false);
  const Run with_copies = train(true);
  EXPECT_EQ(with_copies.losses, plain.losses);
  EXPECT_EQ(with_copies.weights, plain.weights);
  EXPECT_EQ(plain.counts.from_copy, 0);
  // Per step: 8 linear layers, each reading its weight in the forward and in the input-gradient
  // GEMM; the weight-gradient GEMMs read activations only.
  EXPECT_EQ(with_copies.counts.from_copy, 3 * 8 * 2);
  EXPECT_EQ(with_copies.counts.cast, plain.counts.cast - 3 * 8 * 2);

  // Loading weights behind the optimizer's back leaves stale copies until they are refreshed.
  std::vector<Tensor> parameters;
  std::map<std::string, Tensor> w;
  for (const auto& [name, tensor] : initial) {
    w[name] = on(tensor, kEmu);
    parameters.push_back(w[name]);
  }
  AdamWOptions options;
  options.bf16_weight_copies = true;
  AdamW optimizer(parameters, options);
  std::map<std::string, Tensor> reference;
  for (const auto& [name, tensor] : initial) {
    const Tensor doubled = Tensor::from_vector<float>(tensor.shape(), tensor.to_vector<float>());
    for (float& x : std::span<float>(doubled.data<float>(), static_cast<size_t>(doubled.numel()))) x *= 2.0f;
    w[name].copy_from(doubled);
    reference[name] = on(doubled, kEmu);
  }
  const double expected = tiny_block(reference, ids, mask, labels).item();  // no copies registered
  EXPECT_NE(tiny_block(w, ids, mask, labels).item(), expected) << "the GEMMs should still read the stale copies";
  optimizer.refresh_bf16_copies();
  EXPECT_EQ(tiny_block(w, ids, mask, labels).item(), expected);
}

// The copy lookup's boundaries: an operand inside a registered master reads the copy (here a
// deliberately different one, so its use shows in the product), an operand that starts inside
// but runs past the master's end is cast, and after unregistering nothing reads the copy.
TEST(CudaEmuOptim, Bf16CopyIsUsedOnlyForOperandsInsideTheMaster) {
  register_cuda_emu_backend();
  Backend& emu = backend_for(kEmu);
  emu.set_gemm_precision(GemmPrecision::kBf16);
  // b: 8 x 4 ones; the registered master is its first 4 rows, whose "copy" holds twos.
  const Tensor b = Tensor::full({8, 4}, 1.0, DType::kF32, kEmu);
  const Tensor twos = Tensor::full({4, 4}, 2.0, DType::kF32, kEmu).to(DType::kBF16);
  const Tensor a = Tensor::full({1, 4}, 1.0, DType::kF32, kEmu);
  emu.register_bf16_copy(b.data<float>(), bf16_bits(twos), 16);
  // c [1, 4] = a [1, 4] x (the 4 x 4 block of b ending at row rows_of_b)
  auto product = [&](int64_t rows_of_b) {
    kernels::GemmParams p;
    p.m = 1;
    p.n = 4;
    p.k = 4;
    p.lda = 4;
    p.ldb = 4;
    p.ldc = 4;
    Tensor c = Tensor::zeros({1, 4}, DType::kF32, kEmu);
    emu.gemm(p, a.data<float>(), b.data<float>() + (rows_of_b - 4) * 4, c.data<float>());
    return c.to_vector<float>();
  };
  EXPECT_EQ(product(4), std::vector<float>(4, 8.0f)) << "rows 0..3 lie inside the master: the copy (twos) is read";
  EXPECT_EQ(product(6), std::vector<float>(4, 4.0f)) << "rows 2..5 run past the master: cast from the fp32 ones";
  emu.unregister_bf16_copy(b.data<float>());
  EXPECT_EQ(product(4), std::vector<float>(4, 4.0f)) << "unregistered: cast again";
}

// RMSNorm on bf16 activations on the device: the kernels' bf16 loads and stores against the
// cpu's (a one-ulp difference where fp32 and double statistics round differently).
TEST(CudaEmuNorm, Bf16RmsNormMatchesTheCpu) {
  register_cuda_emu_backend();
  std::mt19937 rng(9);
  const Tensor x = testing::random_tensor({33, 70}, rng, -3.0f, 3.0f).to(DType::kBF16);
  const Tensor weight = testing::random_tensor({70}, rng, 0.5f, 1.5f);
  const Tensor cpu_out = ops::rmsnorm(x, weight);
  const Tensor emu_out = ops::rmsnorm(on(x, kEmu), on(weight, kEmu));
  ASSERT_EQ(emu_out.dtype(), DType::kBF16);
  EXPECT_EQ(emu_out.device(), kEmu);
  EXPECT_LT(testing::normalized_error(emu_out.to(DType::kF32), cpu_out.to(DType::kF32)), 1e-5);
  EXPECT_GT(testing::normalized_error(cpu_out.to(DType::kF32), ops::rmsnorm(x.to(DType::kF32), weight)), 0.0)
      << "bf16 output was not rounded";
}

// The k+1 caption losses on device logits: value and gradient equal the cpu's, and the loss
// and the gradient stay on the device.
TEST(CudaEmuLosses, CaptionLossesMatchTheCpu) {
  register_cuda_emu_backend();
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t rows = 6, length = 5, vocab = 11;
  std::vector<float> logit_values(static_cast<size_t>(rows * length * vocab));
  for (float& x : logit_values) x = normal(rng);
  std::vector<int64_t> label_values(static_cast<size_t>(rows * length));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < length; ++t) {
      // token_mixture needs one target per group: rows 2g and 2g+1 share theirs.
      label_values[static_cast<size_t>(r * length + t)] = t == length - 1 && r % 2 == 0 ? -100 : ((r / 2) * 3 + t) % vocab;
    }
  }
  for (int64_t r = 1; r < rows; r += 2) {
    for (int64_t t = 0; t < length; ++t) {
      label_values[static_cast<size_t>(r * length + t)] = label_values[static_cast<size_t>((r - 1) * length + t)];
    }
  }
  const std::vector<int64_t> group = {0, 0, 1, 1, 2, 2};
  for (ops::CaptionLoss mode : {ops::CaptionLoss::kMean, ops::CaptionLoss::kTokenMixture, ops::CaptionLoss::kSequenceMixture}) {
    SCOPED_TRACE(ops::caption_loss_name(mode));
    Tensor cpu_logits = Tensor::from_vector<float>({rows, length, vocab}, logit_values);
    Tensor emu_logits = on(cpu_logits, kEmu);
    cpu_logits.set_requires_grad(true);
    emu_logits.set_requires_grad(true);
    const Tensor cpu_labels = Tensor::from_vector<int64_t>({rows, length}, label_values);
    const Tensor emu_labels = on(cpu_labels, kEmu);
    Tensor cpu_loss, emu_loss;
    {
      Tape tape;
      cpu_loss = ops::caption_loss(ops::token_log_probs(cpu_logits, cpu_labels), cpu_labels, group, mode);
      tape.backward(cpu_loss);
    }
    {
      Tape tape;
      emu_loss = ops::caption_loss(ops::token_log_probs(emu_logits, emu_labels), emu_labels, group, mode);
      tape.backward(emu_loss);
    }
    EXPECT_EQ(emu_loss.device(), kEmu);
    EXPECT_GT(cpu_loss.item(), 0.5);
    EXPECT_NEAR(emu_loss.item(), cpu_loss.item(), 1e-6 * cpu_loss.item());
    ASSERT_TRUE(emu_logits.grad().defined());
    EXPECT_EQ(emu_logits.grad().device(), kEmu);
    EXPECT_LT(testing::normalized_error(emu_logits.grad(), cpu_logits.grad()), 1e-10);
  }
}

// The global gradient norm over several device tensors (one reduction per device) and the
// clipping it drives, against the cpu.
TEST(CudaEmuOptim, ClipGradNormMatchesTheCpu) {
  register_cuda_emu_backend();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<Tensor> cpu_params, emu_params;
  for (int64_t size : {1, 257, 4096, 70000}) {  // one element .. several reduction blocks
    std::vector<float> grad(static_cast<size_t>(size));
    for (float& g : grad) g = normal(rng);
    Tensor cpu = Tensor::zeros({size}, DType::kF32), emu = Tensor::zeros({size}, DType::kF32, kEmu);
    cpu.set_requires_grad(true);
    emu.set_requires_grad(true);
    Tape tape;
    tape.backward(ops::mul(cpu, Tensor::from_vector<float>({size}, grad)), Tensor::full({size}, 1.0));
    tape.backward(ops::mul(emu, Tensor::from_vector<float>({size}, grad, kEmu)), Tensor::full({size}, 1.0, DType::kF32, kEmu));
    cpu_params.push_back(cpu);
    emu_params.push_back(emu);
  }
  const double cpu_norm = clip_grad_norm(cpu_params, 1.0);
  const double emu_norm = clip_grad_norm(emu_params, 1.0);
  EXPECT_GT(cpu_norm, 10.0);
  EXPECT_NEAR(emu_norm, cpu_norm, 1e-12 * cpu_norm);
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    EXPECT_LT(testing::normalized_error(emu_params[i].grad(), cpu_params[i].grad()), 1e-14) << i;
  }
  EXPECT_NEAR(clip_grad_norm(emu_params, 1.0), 1.0, 1e-5);  // clipped to the bound
}

// The attention op's saved state is the backend's choice (engine/backend_ops.h): on cuda-emu
// only the row log-sum-exp [batch, heads, q_len]. At a shape where the probabilities
// [batch, heads, q_len, k_len] (4 MiB) dwarf every other tensor (64 KiB each), the device's
// peak over forward + backward stays far below their size, while the cpu, which saves them,
// peaks above it (so the measurement sees them when they are there); the results agree.
TEST(CudaEmuAttention, SavesNoProbabilitiesAndMatchesTheCpu) {
  register_cuda_emu_backend();
  const int64_t batch = 2, len = 256, heads = 8, head_dim = 4;
  const size_t probs_bytes = static_cast<size_t>(batch * heads * len * len) * sizeof(float);
  std::mt19937 rng(21);
  const Tensor q = testing::random_tensor({batch, len, heads, head_dim}, rng);
  const Tensor k = testing::random_tensor({batch, len, heads, head_dim}, rng);
  const Tensor v = testing::random_tensor({batch, len, heads, head_dim}, rng);
  const Tensor table = testing::random_tensor({32, heads}, rng);
  const Tensor dout = testing::random_tensor({batch, len, heads, head_dim}, rng);
  std::vector<int32_t> mask_values(static_cast<size_t>(batch * len), 1);
  for (int64_t j = 200; j < len; ++j) mask_values[static_cast<size_t>(len + j)] = 0;  // item 1 padded
  const Tensor mask = Tensor::from_vector<int32_t>({batch, len}, mask_values);
  ops::AttentionOptions options;  // T5 encoder: bidirectional, 32 buckets, max distance 128
  options.dropout.p = 0.1f;       // dropout on the probabilities, recomputed in backward
  options.training = true;

  struct Run {
    Tensor out, dq, dk, dv, dtable;
    size_t peak = 0;  // bytes above what was in use before the forward
  };
  auto run = [&](Device device) {
    std::vector<Tensor> inputs = {on(q, device), on(k, device), on(v, device), on(table, device)};
    for (Tensor& input : inputs) input.set_requires_grad(true);
    const Tensor device_mask = on(mask, device), device_dout = on(dout, device);
    Allocator& allocator = allocator_for(device);
    const size_t before = allocator.bytes_in_use();
    allocator.reset_peak_bytes();
    Run r;
    {
      Tape tape;
      r.out = ops::attention(inputs[0], inputs[1], inputs[2], inputs[3], device_mask, options);
      tape.backward(r.out, device_dout);
    }
    r.peak = allocator.peak_bytes() - before;
    r.dq = inputs[0].grad();
    r.dk = inputs[1].grad();
    r.dv = inputs[2].grad();
    r.dtable = inputs[3].grad();
    return r;
  };
  const Run cpu = run(Device::cpu());
  const Run emu = run(kEmu);
  EXPECT_GE(cpu.peak, probs_bytes) << "the cpu saves the probabilities";
  EXPECT_LT(emu.peak, probs_bytes / 4) << "cuda-emu allocated " << emu.peak << " bytes at the peak";
  EXPECT_EQ(emu.out.device(), kEmu);
  EXPECT_LT(testing::normalized_error(emu.out, cpu.out), 1e-10);
  EXPECT_LT(testing::normalized_error(emu.dq, cpu.dq), 1e-10);
  EXPECT_LT(testing::normalized_error(emu.dk, cpu.dk), 1e-10);
  EXPECT_LT(testing::normalized_error(emu.dv, cpu.dv), 1e-10);
  EXPECT_LT(testing::normalized_error(emu.dtable, cpu.dtable), 1e-8);
  double dtable_norm = 0.0;  // the table gradient compared above is a real one
  for (float g : cpu.dtable.to_vector<float>()) dtable_norm += static_cast<double>(g) * g;
  EXPECT_GT(dtable_norm, 1.0);
  std::printf("attention forward + backward, probabilities %zu bytes: peak above the inputs %zu bytes on cpu, %zu on "
              "cuda-emu\n", probs_bytes, cpu.peak, emu.peak);
}

// The attention op with bf16 activations through the autograd tape on cuda-emu: q, k, v in
// bf16, the bias table f32 (and the output gradient, bf16-representable, seeded in f32). The output and the q, k, v gradients come back
// in bf16, the table gradient in f32, and all of them match the f32 CPU op run on the same
// (bf16-rounded) numbers within the op table's bf16 tolerances (tests/simt/backend_ops_test.cc:
// one rounding of each stored value; the backward's D reads the forward's bf16 output).
TEST(CudaEmuAttention, Bf16ActivationsThroughTheTapeMatchTheF32CpuOp) {
  register_cuda_emu_backend();
  const int64_t batch = 2, len = 37, heads = 4, head_dim = 16;
  std::mt19937 rng(31);
  auto rounded = [&](const Shape& shape) { return testing::random_tensor(shape, rng).to(DType::kBF16).to(DType::kF32); };
  const Tensor q = rounded({batch, len, heads, head_dim}), k = rounded({batch, len, heads, head_dim}),
               v = rounded({batch, len, heads, head_dim}), dout = rounded({batch, len, heads, head_dim});
  const Tensor table = testing::random_tensor({32, heads}, rng);
  std::vector<int32_t> mask_values(static_cast<size_t>(batch * len), 1);
  for (int64_t j = 30; j < len; ++j) mask_values[static_cast<size_t>(len + j)] = 0;  // item 1 padded
  const Tensor mask = Tensor::from_vector<int32_t>({batch, len}, mask_values);
  ops::AttentionOptions options;  // T5 encoder: bidirectional, 32 buckets, max distance 128
  options.dropout.p = 0.1f;
  options.training = true;

  struct Run {
    Tensor out, dq, dk, dv, dtable;
  };
  auto run = [&](Device device, DType act) {
    std::vector<Tensor> inputs = {on(q, device).to(act), on(k, device).to(act), on(v, device).to(act), on(table, device)};
    for (Tensor& input : inputs) input.set_requires_grad(true);
    Run r;
    {
      Tape tape;
      r.out = ops::attention(inputs[0], inputs[1], inputs[2], inputs[3], on(mask, device), options);
      tape.backward(r.out, on(dout, device));  // an f32 seed (the tape's rule); the op converts it to act
    }
    r.dq = inputs[0].grad();
    r.dk = inputs[1].grad();
    r.dv = inputs[2].grad();
    r.dtable = inputs[3].grad();
    return r;
  };
  const Run cpu = run(Device::cpu(), DType::kF32);
  const Run emu = run(kEmu, DType::kBF16);
  for (const Tensor* t : {&emu.out, &emu.dq, &emu.dk, &emu.dv}) {
    EXPECT_EQ(t->dtype(), DType::kBF16);
    EXPECT_EQ(t->device(), kEmu);
  }
  EXPECT_EQ(emu.dtable.dtype(), DType::kF32);
  const double errors[] = {testing::normalized_error(emu.out.to(DType::kF32), cpu.out),
                           testing::normalized_error(emu.dq.to(DType::kF32), cpu.dq),
                           testing::normalized_error(emu.dk.to(DType::kF32), cpu.dk),
                           testing::normalized_error(emu.dv.to(DType::kF32), cpu.dv),
                           testing::normalized_error(emu.dtable, cpu.dtable)};
  std::printf("attention bf16 on cuda-emu vs f32 cpu: nmse out %.2e dq %.2e dk %.2e dv %.2e dtable %.2e\n", errors[0],
              errors[1], errors[2], errors[3], errors[4]);
  EXPECT_LT(errors[0], 1e-5) << "out";
  for (size_t i = 1; i < 5; ++i) EXPECT_LT(errors[i], 3e-5) << "gradient " << i;
}

INSTANTIATE_TEST_SUITE_P(Orders, CudaEmuDevice, ::testing::Values("forward", "shuffled/2"), testing::simt_mode_name);

}  // namespace
}  // namespace la3
