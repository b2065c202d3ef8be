// A full T5 training step on the cuda-emu device against the cpu device and transformers'
// golden numbers: both variants, loss, every parameter gradient, and three AdamW steps.
// Every non-GEMM op runs as a CUDA kernel under the SIMT emulation.
#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include <cmath>

#include "engine/autograd/tape.h"
#include "engine/cuda_emu/cuda_emu_backend.h"
#include "engine/io/safetensors.h"
#include "engine/optim/adamw.h"
#include "model/t5_checkpoint.h"

namespace la3 {
namespace {

const Device kEmu{DeviceType::kCudaEmu, 0};

class CudaEmuT5 : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaEmuT5, TrainingStepMatchesTransformersGolden) {
  register_cuda_emu_backend();
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

INSTANTIATE_TEST_SUITE_P(Variants, CudaEmuT5, ::testing::Values("t5_v1_0", "t5_v1_1"));

}  // namespace
}  // namespace la3
