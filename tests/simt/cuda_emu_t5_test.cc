// A full T5 training step on the cuda-emu device against the cpu device and transformers'
// golden numbers: both variants, loss, every parameter gradient, and three AdamW steps.
// Every non-GEMM op runs as a CUDA kernel under the SIMT emulation.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include <chrono>
#include <cmath>
#include <cstdlib>

#include "engine/autograd/tape.h"
#include "model/generation.h"
#include "engine/backend.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/io/safetensors.h"
#include "engine/optim/adamw.h"
#include "model/t5_checkpoint.h"
#include "tests/model/generation_golden.h"

namespace la3 {
namespace {

const Device kEmu{DeviceType::kCudaEmu, 0};

class CudaEmuT5 : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaEmuT5, TrainingStepMatchesTransformersGolden) {
  register_cuda_emu_backend();
  // fp32 GEMMs: everything but the GEMM is the CUDA backend, checked to fp32 accuracy.
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kFp32);
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + GetParam();
  const T5Model model = load_t5_checkpoint(dir)->to_device(kEmu);
  EXPECT_EQ(model.device(), kEmu);
  const SafetensorsContents golden = *read_safetensors(dir + "/expected.safetensors");
  const Tensor ids = golden.tensors.at("input_ids").to_device(kEmu);
  const Tensor mask = golden.tensors.at("attention_mask").to_device(kEmu);
  const Tensor labels = golden.tensors.at("labels").to_device(kEmu);

  model.set_requires_grad(true);
  {
    Tape tape;
    const Tensor loss = model.loss(ids, mask, labels, {});
    EXPECT_NEAR(loss.item(), golden.tensors.at("loss").item(), 1e-5 * std::abs(golden.tensors.at("loss").item()));
    tape.backward(loss);
  }
  double worst = 0.0;
  for (const auto& [name, parameter] : model.parameters()) {
    ASSERT_TRUE(parameter.grad().defined()) << name;
    const double error = testing::normalized_error(parameter.grad(), golden.tensors.at("grad." + name));
    EXPECT_LT(error, 1e-9) << name;
    worst = std::max(worst, error);
  }
  std::printf("[cuda-emu %s] worst gradient normalised error vs transformers %.3g\n", GetParam().c_str(), worst);

  AdamWOptions options;
  options.lr = 1e-2;
  options.weight_decay = 0.01;
  AdamW optimizer(model.parameter_list(), options);
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    Tape tape;
    const Tensor loss = model.loss(ids, mask, labels, {});
    tape.backward(loss);
    optimizer.step();
  }
  double worst_weight = 0.0;
  for (const auto& [name, parameter] : model.parameters()) {
    const double error = testing::normalized_error(parameter, golden.tensors.at("final." + name));
    EXPECT_LT(error, 1e-10) << name;
    worst_weight = std::max(worst_weight, error);
  }
  std::printf("[cuda-emu %s] worst weight error after 3 AdamW steps %.3g\n", GetParam().c_str(), worst_weight);
}

// Tolerances of a cuda-emu training run against the CPU's (fp32) one.
struct AgainstCpu {
  double loss = 1e-2;      // relative, every step
  double gradient = 1e-2;  // normalised error of each first-step gradient
  double weight = 5e-3;    // normalised error of each weight after 3 AdamW steps
};

// Three training steps (loss, backward, AdamW) of the golden model on the cpu (fp32) and on
// cuda-emu with bf16 GEMM operands and the given activation type, compared step by step.
void train_against_cpu(const std::string& variant, DType activations, const AgainstCpu& tolerance) {
  register_cuda_emu_backend();
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kBf16);
  const auto started = std::chrono::steady_clock::now();
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + variant;
  const T5Model cpu = *load_t5_checkpoint(dir);
  const T5Model emu = cpu.to_device(kEmu);
  const SafetensorsContents golden = *read_safetensors(dir + "/expected.safetensors");
  const Tensor& ids = golden.tensors.at("input_ids");
  const Tensor& mask = golden.tensors.at("attention_mask");
  const Tensor& labels = golden.tensors.at("labels");
  const Tensor emu_ids = ids.to_device(kEmu), emu_mask = mask.to_device(kEmu), emu_labels = labels.to_device(kEmu);
  T5ForwardOptions emu_forward;
  emu_forward.activations = activations;

  cpu.set_requires_grad(true);
  emu.set_requires_grad(true);
  AdamWOptions options;
  options.lr = 1e-2;
  options.weight_decay = 0.01;
  AdamW cpu_optimizer(cpu.parameter_list(), options), emu_optimizer(emu.parameter_list(), options);
  double worst_gradient = 0.0, worst_loss = 0.0;
  for (int step = 0; step < 3; ++step) {
    cpu_optimizer.zero_grad();
    emu_optimizer.zero_grad();
    double cpu_loss = 0.0, emu_loss = 0.0;
    {
      Tape tape;
      const Tensor loss = cpu.loss(ids, mask, labels, {});
      cpu_loss = loss.item();
      tape.backward(loss);
    }
    {
      Tape tape;
      const Tensor loss = emu.loss(emu_ids, emu_mask, emu_labels, emu_forward);
      EXPECT_EQ(loss.dtype(), DType::kF32);  // the loss is fp32 whatever the activations
      emu_loss = loss.item();
      tape.backward(loss);
    }
    worst_loss = std::max(worst_loss, std::abs(emu_loss - cpu_loss) / std::abs(cpu_loss));
    EXPECT_NEAR(emu_loss, cpu_loss, tolerance.loss * std::abs(cpu_loss)) << "step " << step;
    // Gradients are compared at the first step, where both devices hold the same weights;
    // later steps compare gradients of weights that already differ (Adam turns a small
    // gradient difference into a full-size update of sign), so only loss and weights.
    for (const auto& [name, parameter] : cpu.parameters()) {
      if (step > 0) break;
      const Tensor& gradient = emu.parameters().at(name).grad();
      EXPECT_EQ(gradient.dtype(), DType::kF32) << name;  // parameter gradients stay fp32
      const double error = testing::normalized_error(gradient, parameter.grad());
      EXPECT_LT(error, tolerance.gradient) << name;
      if (std::getenv("LA3_PRINT_ERRORS") != nullptr) std::printf("%s %.3g\n", name.c_str(), error);
      worst_gradient = std::max(worst_gradient, error);
    }
    cpu_optimizer.step();
    emu_optimizer.step();
  }
  double worst_weight = 0.0;
  for (const auto& [name, parameter] : cpu.parameters()) {
    const double error = testing::normalized_error(emu.parameters().at(name), parameter);
    EXPECT_LT(error, tolerance.weight) << name;
    worst_weight = std::max(worst_weight, error);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("[cuda-emu bf16 GEMMs, %s activations, %s] worst loss relative error %.3g, first-step gradient "
              "normalised error %.3g, weight normalised error after 3 AdamW steps %.3g; %.2f s for 3 steps on both "
              "devices\n",
              dtype_name(activations), variant.c_str(), worst_loss, worst_gradient, worst_weight, seconds);
}

// The CUDA backend as it trains (bf16 GEMM operands, fp32 accumulation) against the CPU
// backend (fp32): one training step and three AdamW steps, loss, every gradient and every
// updated weight within the bf16 tolerances documented in docs/CUDA.md.
TEST_P(CudaEmuT5, Bf16TrainingStepMatchesTheCpuBackend) { train_against_cpu(GetParam(), DType::kF32, AgainstCpu{}); }

// bf16 activations and activation gradients as well (training.activations: bf16): every
// activation is rounded to 8 significant bits once per op, so the tolerances are those of the
// bf16 GEMMs above with room for the extra roundings; the parameter gradients and the loss are
// still fp32 tensors.
TEST_P(CudaEmuT5, Bf16ActivationsTrainingStepMatchesTheCpuBackend) {
  train_against_cpu(GetParam(), DType::kBF16, AgainstCpu{.loss = 1e-2, .gradient = 3e-2, .weight = 1e-2});
}

// Beam search with the model on the CUDA backend: with fp32 GEMMs the same tokens and scores as
// on the cpu; with bf16 GEMMs (how a GPU decodes) the scores within bf16 accuracy.
TEST_P(CudaEmuT5, BeamSearchMatchesTheCpu) {
  register_cuda_emu_backend();
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + GetParam();
  const T5Model cpu = *load_t5_checkpoint(dir);
  const T5Model emu = cpu.to_device(kEmu);
  const SafetensorsContents inputs = *read_safetensors(dir + "/expected.safetensors");
  GenerationOptions options;
  options.num_beams = 3;
  options.num_return_sequences = 2;
  options.max_new_tokens = 6;
  options.no_repeat_ngram_size = 2;
  const auto expected = generate(cpu, inputs.tensors.at("input_ids"), inputs.tensors.at("attention_mask"), options);
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  for (GemmPrecision precision : {GemmPrecision::kFp32, GemmPrecision::kBf16}) {
    SCOPED_TRACE(precision == GemmPrecision::kFp32 ? "fp32 GEMM" : "bf16 GEMM");
    backend_for(kEmu).set_gemm_precision(precision);
    const auto got = generate(emu, inputs.tensors.at("input_ids"), inputs.tensors.at("attention_mask"), options);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), expected->size());
    for (size_t b = 0; b < got->size(); ++b) {
      ASSERT_EQ((*got)[b].size(), (*expected)[b].size());
      for (size_t j = 0; j < (*got)[b].size(); ++j) {
        const double tolerance = precision == GemmPrecision::kFp32 ? 1e-5 : 2e-2;
        EXPECT_NEAR((*got)[b][j].score, (*expected)[b][j].score, tolerance * std::abs((*expected)[b][j].score) + 1e-6);
        if (precision == GemmPrecision::kFp32) {
          EXPECT_EQ((*got)[b][j].tokens, (*expected)[b][j].tokens) << b << " " << j;
        }
      }
    }
  }
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kBf16);
}

// Every golden generate() case (greedy, beams, length penalties, early stopping, n-gram,
// repetition and min-length processors) with the model on cuda-emu: decoding runs on the
// device (cache, processors, top-k), fp32 GEMMs, and must give transformers' token ids.
TEST_P(CudaEmuT5, GenerateMatchesTransformersGoldens) {
  register_cuda_emu_backend();
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kFp32);
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + GetParam();
  testing::expect_generate_matches_goldens(load_t5_checkpoint(dir)->to_device(kEmu), dir);
  backend_for(kEmu).set_gemm_precision(GemmPrecision::kBf16);
}

// Device-resident decoding: a step reads back from the device only what the host needs to
// extend the hypotheses, the k ids and scores of each input (beam search: 2 * beams; greedy
// search: the best id and its log-probability per row) plus the step's input ids (the
// embedding's range check), never the [rows, vocab] scores. Counted by the backend's
// copy_to_host over runs of 4 and 8 steps (min_length forces the length), so the one-time
// reads (encoder mask, results) cancel; the vocabulary is enlarged to show it does not count.
TEST_P(CudaEmuT5, DecodingStepReadsBackKIdsAndScoresNotTheVocabulary) {
  register_cuda_emu_backend();
  Backend& backend = backend_for(kEmu);
  backend.set_gemm_precision(GemmPrecision::kFp32);
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + GetParam();
  T5Config config = load_t5_checkpoint(dir)->config();
  config.vocab_size = 2000;
  const T5Model emu = T5Model::create(config, 7)->to_device(kEmu);
  const SafetensorsContents inputs = *read_safetensors(dir + "/expected.safetensors");
  const Tensor& ids = inputs.tensors.at("input_ids");
  const int64_t batch = ids.size(0);
  for (int beams : {1, 3}) {
    SCOPED_TRACE(beams);
    auto bytes_for = [&](int64_t new_tokens) {
      GenerationOptions options;
      options.num_beams = beams;
      options.max_new_tokens = new_tokens;
      options.min_length = new_tokens + 1;  // no early end: every run decodes new_tokens steps
      options.no_repeat_ngram_size = 2;
      options.repetition_penalty = 1.2;
      const uint64_t before = backend.device_to_host_bytes();
      const auto out = generate(emu, ids, inputs.tensors.at("attention_mask"), options);
      EXPECT_TRUE(out.ok()) << out.status().ToString();
      return backend.device_to_host_bytes() - before;
    };
    const uint64_t per_step = (bytes_for(8) - bytes_for(4)) / 4;
    const uint64_t rows = static_cast<uint64_t>(batch * beams);
    const uint64_t input_ids = rows * sizeof(int64_t);
    const uint64_t selection = beams == 1 ? rows * (sizeof(int64_t) + sizeof(float))  // id, log-probability
                                          : static_cast<uint64_t>(batch * 2 * beams) * (sizeof(int64_t) + sizeof(float));
    const uint64_t logits = rows * static_cast<uint64_t>(config.vocab_size) * sizeof(float);
    std::printf("[cuda-emu %s] beams %d, %llu rows, vocab %lld: %llu device-to-host bytes per step (a logits copy "
                "alone would be %llu)\n",
                GetParam().c_str(), beams, static_cast<unsigned long long>(rows),
                static_cast<long long>(config.vocab_size), static_cast<unsigned long long>(per_step),
                static_cast<unsigned long long>(logits));
    EXPECT_EQ(per_step, input_ids + selection);
  }
  backend.set_gemm_precision(GemmPrecision::kBf16);
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaEmuT5, ::testing::Values("t5_v1_0", "t5_v1_1"));

}  // namespace
}  // namespace la3
