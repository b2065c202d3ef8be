// The pointwise, softmax, embedding, dropout and RMSNorm ops (engine/ops) with bf16 activations
// on cuda-emu, end to end through the tape: each op runs once on the CPU in f32 and once on
// cuda-emu with bf16 activations (weights stay f32), on the same bf16-representable input
// values and the same bf16-representable upstream gradient, and the outputs and every input
// gradient are compared by normalised error (NMSE = sum((x - ref)^2) / sum(ref^2)).
//
// Tolerance: a bf16 value carries a relative rounding error up to 2^-9 (NMSE ~1.3e-6 for
// spread-out values). The forward output is rounded once; a gradient is rounded when it is
// stored and may read a forward value that was itself rounded (softmax's probabilities, the
// fused add's sum), so at most a few such roundings compound: kBf16OpTolerance = 1e-4 leaves a
// margin over them, and a wrong index or a missing term is orders of magnitude above it.
//
// The CPU backend computes activations in f32 only: given bf16 it refuses, naming the op
// (RMSNorm excepted: the CPU keeps its bf16 RMSNorm, the reference of the bf16 kernels).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "engine/autograd/tape.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/ops/activation.h"
#include "engine/ops/dropout.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"
#include "engine/ops/rmsnorm.h"
#include "engine/ops/softmax.h"
#include "tests/support/gradcheck.h"
#include "tests/support/test_helpers.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

constexpr double kBf16OpTolerance = 1e-4;

Device emu() {
  register_cuda_emu_backend();
  return Device{DeviceType::kCudaEmu, 0};
}

// One input of the op under test: an activation (bf16 on cuda-emu) or a weight (f32
// everywhere), and whether it is differentiated.
struct Input {
  Tensor values;  // f32 on the CPU
  bool activation = true;
  bool differentiable = true;
};

// The op under test, given its inputs (on one device) and the activation type to produce.
using Op = std::function<Tensor(const std::vector<Tensor>& inputs, DType act)>;

Tensor rounded(const Tensor& f32) { return f32.to(DType::kBF16).to(DType::kF32); }

std::vector<double> host_doubles(const Tensor& t) {
  return testing::to_doubles(t.to_device(Device::cpu()).to(DType::kF32));
}

struct Run {
  Tensor output;
  std::vector<Tensor> grads;  // undefined for inputs not differentiated
};

// Runs op forward and backward (with `upstream`) on `device`, activations of type `act`.
Run run_op(const Op& op, const std::vector<Input>& inputs, const Tensor& upstream, Device device, DType act) {
  std::vector<Tensor> leaves;
  for (const Input& in : inputs) {
    Tensor leaf = rounded(in.values).to(in.activation ? act : DType::kF32).to_device(device);
    if (in.differentiable) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }
  Tape tape;
  Run run;
  run.output = op(leaves, act);
  EXPECT_EQ(run.output.dtype(), act);
  // The tape takes an f32 root gradient (bf16-representable here); the op converts it to act.
  tape.backward(run.output, upstream.to_device(device));
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!inputs[i].differentiable) {
      run.grads.emplace_back();
      continue;
    }
    const Tensor grad = leaves[i].grad();
    // Activation gradients have the activation type; weight gradients stay f32.
    EXPECT_EQ(grad.dtype(), inputs[i].activation ? act : DType::kF32) << "gradient of input " << i;
    run.grads.push_back(grad);
  }
  return run;
}

// bf16 on cuda-emu against f32 on the CPU: prints and checks the NMSE of the output and of
// every gradient; returns the two runs for op-specific checks.
std::pair<Run, Run> expect_bf16_matches_cpu(const std::string& label, const Op& op, const std::vector<Input>& inputs,
                                            const Shape& output_shape, uint32_t seed = 7) {
  std::mt19937 rng(seed);
  const Tensor upstream = rounded(testing::random_tensor(output_shape, rng));
  Run cpu = run_op(op, inputs, upstream, Device::cpu(), DType::kF32);
  Run bf16 = run_op(op, inputs, upstream, emu(), DType::kBF16);
  const double forward = testing::normalized_error(host_doubles(bf16.output), host_doubles(cpu.output));
  std::printf("[bf16-ops] %-28s output nmse %.2e", label.c_str(), forward);
  EXPECT_LE(forward, kBf16OpTolerance) << label << ": output";
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].differentiable) continue;
    const double error = testing::normalized_error(host_doubles(bf16.grads[i]), host_doubles(cpu.grads[i]));
    std::printf("  grad%zu nmse %.2e", i, error);
    EXPECT_LE(error, kBf16OpTolerance) << label << ": gradient of input " << i;
  }
  std::printf("\n");
  return {std::move(cpu), std::move(bf16)};
}

Tensor values(const Shape& shape, uint32_t seed, float low = -2.0f, float high = 2.0f) {
  std::mt19937 rng(seed);
  return testing::random_tensor(shape, rng, low, high);
}

TEST(Bf16ActivationOps, ActivationFamilyMatchesTheCpuThroughTheTape) {
  const Shape shape{6, 37};
  expect_bf16_matches_cpu("relu", [](const std::vector<Tensor>& in, DType) { return ops::relu(in[0]); },
                          {{values(shape, 1)}}, shape);
  expect_bf16_matches_cpu("gelu_new", [](const std::vector<Tensor>& in, DType) { return ops::gelu_new(in[0]); },
                          {{values(shape, 2, -5.0f, 5.0f)}}, shape);
  expect_bf16_matches_cpu("gated_gelu",
                          [](const std::vector<Tensor>& in, DType) { return ops::gated_gelu(in[0], in[1]); },
                          {{values(shape, 3, -5.0f, 5.0f)}, {values(shape, 4)}}, shape);
}

TEST(Bf16ActivationOps, DropoutMatchesTheCpuWithTheSameMask) {
  kernels::DropoutParams params;
  params.p = 0.25f;
  params.seed = 11;
  params.step = 3;
  params.stream = 2;
  const Shape shape{3, 5, 41};
  const Op op = [params](const std::vector<Tensor>& in, DType) { return ops::dropout(in[0], params, true); };
  // Inputs and the upstream gradient bounded away from 0, so a zero marks a dropped element.
  const auto [cpu, bf16] = expect_bf16_matches_cpu("dropout", op, {{values(shape, 5, 0.5f, 1.5f)}}, shape);
  const std::vector<double> cpu_out = host_doubles(cpu.output), bf16_out = host_doubles(bf16.output);
  int64_t dropped = 0;
  for (size_t i = 0; i < cpu_out.size(); ++i) {
    ASSERT_EQ(bf16_out[i] == 0.0, cpu_out[i] == 0.0) << "the mask differs at element " << i;
    dropped += cpu_out[i] == 0.0;
  }
  EXPECT_GT(dropped, 0);
}

TEST(Bf16ActivationOps, SoftmaxMatchesTheCpuThroughTheTape) {
  for (const Shape& shape : {Shape{4, 3, 29}, Shape{5, 300}}) {
    expect_bf16_matches_cpu("softmax " + Tensor::zeros(shape).describe(),
                            [](const std::vector<Tensor>& in, DType) { return ops::softmax(in[0]); },
                            {{values(shape, 6, -6.0f, 6.0f)}}, shape);
  }
}

TEST(Bf16ActivationOps, EmbeddingGivesBf16RowsAndAnF32TableGradient) {
  const Tensor ids = Tensor::from_vector<int64_t>({2, 4}, {3, 0, 3, 7, 1, 3, 9, 0});  // repeated ids accumulate
  const Op op = [ids](const std::vector<Tensor>& in, DType act) {
    return ops::embedding(in[0], ids.to_device(in[0].device()), ops::IdCheck::kByOp, act);
  };
  // The table is a weight: f32 on both devices, its gradient f32.
  expect_bf16_matches_cpu("embedding", op, {{values({10, 24}, 8), /*activation=*/false}}, Shape{2, 4, 24});
}

TEST(Bf16ActivationOps, RmsNormIsDifferentiableInBf16) {
  const Shape shape{5, 3, 40};
  const Op op = [](const std::vector<Tensor>& in, DType) { return ops::rmsnorm(in[0], in[1]); };
  // bf16 x (bf16 dx), f32 weight (f32 dweight).
  expect_bf16_matches_cpu("rmsnorm", op, {{values(shape, 9)}, {values({40}, 10, 0.5f, 1.5f), false}}, shape);
}

TEST(Bf16ActivationOps, FusedAddRmsNormAcceptsBf16) {
  const Shape shape{4, 2, 33};
  // The sum also feeds the residual stream: the output adds it to the normalised value, so the
  // sum's gradient accumulates two contributions (the tape's bf16 axpy) before the add's.
  const Op op = [](const std::vector<Tensor>& in, DType) {
    const ops::AddRmsNorm r = ops::add_rmsnorm(in[0], in[1], in[2]);
    return ops::add(r.sum, r.normed);
  };
  expect_bf16_matches_cpu("add_rmsnorm",
                          op, {{values(shape, 11)}, {values(shape, 12)}, {values({33}, 13, 0.5f, 1.5f), false}}, shape);
  // With bf16 the sum is rounded to bf16 before it is normalised: the fused op equals the
  // unfused add then rmsnorm bit for bit.
  const Tensor residual = rounded(values(shape, 14)).to(DType::kBF16).to_device(emu());
  const Tensor branch = rounded(values(shape, 15)).to(DType::kBF16).to_device(emu());
  const Tensor weight = values({33}, 16, 0.5f, 1.5f).to_device(emu());
  const ops::AddRmsNorm fused = ops::add_rmsnorm(residual, branch, weight);
  const Tensor sum = ops::add(residual, branch);
  EXPECT_EQ(host_doubles(fused.sum), host_doubles(sum));
  EXPECT_EQ(host_doubles(fused.normed), host_doubles(ops::rmsnorm(sum, weight)));
}

// The CPU backend refuses bf16 activations by op name (kUnimplemented), instead of reading
// bf16 bits as floats; RMSNorm is the exception (it keeps its bf16 reference).
TEST(Bf16ActivationOps, TheCpuRefusesBf16ActivationsNamingTheOp) {
  const Tensor x = Tensor::zeros({2, 8}, DType::kBF16);
  const Tensor table = Tensor::zeros({4, 8});
  const Tensor ids = Tensor::from_vector<int64_t>({2}, {1, 3});
  kernels::DropoutParams params;
  params.p = 0.5f;
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"relu_forward", [&] { ops::relu(x); }},
      {"gelu_new_forward", [&] { ops::gelu_new(x); }},
      {"gated_gelu_forward", [&] { ops::gated_gelu(x, x); }},
      {"dropout_forward", [&] { ops::dropout(x, params, true); }},
      {"softmax_forward", [&] { ops::softmax(x); }},
      {"embedding_forward", [&] { ops::embedding(table, ids, ops::IdCheck::kByOp, DType::kBF16); }},
  };
  for (const auto& [op, call] : calls) {
    const testing::CaughtError error = testing::catch_error(call);
    EXPECT_TRUE(error.engine_error) << op << ": " << error.message;
    EXPECT_EQ(error.kind, ErrorKind::kUnimplemented) << op;
    EXPECT_THAT(error.message, HasSubstr(op + ": the cpu backend computes activations in f32, got bf16"));
  }
  // RMSNorm on the CPU keeps bf16 (output bf16).
  EXPECT_EQ(ops::rmsnorm(x, Tensor::full({8}, 1.0)).dtype(), DType::kBF16);
}

}  // namespace
}  // namespace la3
