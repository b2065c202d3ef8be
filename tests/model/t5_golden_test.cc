// T5 against Hugging Face transformers (golden files from scripts/make_golden.py, pinned
// transformers 4.46.3): logits, loss, every parameter gradient and three AdamW steps, for
// the v1.0 (relu, tied) and v1.1 / MolT5 (gated-GELU, untied) variants.
//
// Bounds are normalised errors mse(ours, theirs) / mse(theirs, 0). fp32 with a different
// summation order gives ~1e-7 relative error per element, i.e. ~1e-14 normalised; the bounds
// leave two orders of margin and are far below what any real bug produces (a wrong mask, a
// missing scale or a wrong bucket moves them above 1e-4).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "engine/autograd/tape.h"
#include "engine/io/safetensors.h"
#include "engine/optim/adamw.h"
#include "model/t5_checkpoint.h"
#include "tests/support/gradcheck.h"

namespace la3 {
namespace {

constexpr double kLogitsBound = 1e-11;
constexpr double kGradientBound = 1e-9;
constexpr double kAdamWBound = 1e-10;

struct Golden {
  T5Model model;
  std::map<std::string, Tensor> expected;
};

Golden load_golden(const std::string& variant) {
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + variant;
  absl::StatusOr<T5Model> model = load_t5_checkpoint(dir);
  EXPECT_TRUE(model.ok()) << model.status();
  absl::StatusOr<SafetensorsContents> expected = read_safetensors(dir + "/expected.safetensors");
  EXPECT_TRUE(expected.ok()) << expected.status();
  return Golden{std::move(*model), std::move(expected->tensors)};
}

class T5Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(T5Golden, LogitsAndLossMatchTransformers) {
  Golden g = load_golden(GetParam());
  const Tensor& input_ids = g.expected.at("input_ids");
  const Tensor& mask = g.expected.at("attention_mask");
  const Tensor& labels = g.expected.at("labels");
  NoGradGuard no_grad;
  const Tensor logits = g.model.logits(input_ids, mask, labels, {});
  ASSERT_EQ(logits.shape(), g.expected.at("logits").shape());
  const double logits_error =
      testing::normalized_error(testing::to_doubles(logits), testing::to_doubles(g.expected.at("logits")));
  EXPECT_LE(logits_error, kLogitsBound);
  const Tensor loss = g.model.loss(input_ids, mask, labels, {});
  EXPECT_NEAR(loss.item(), g.expected.at("loss").item(), 2e-6 * std::abs(g.expected.at("loss").item()));
  std::printf("[golden %s] logits normalised error %.3g, loss %.9g vs %.9g\n", GetParam().c_str(), logits_error,
              loss.item(), g.expected.at("loss").item());
}

TEST_P(T5Golden, EveryParameterGradientMatchesTransformers) {
  Golden g = load_golden(GetParam());
  g.model.set_requires_grad(true);
  Tape tape;
  const Tensor loss =
      g.model.loss(g.expected.at("input_ids"), g.expected.at("attention_mask"), g.expected.at("labels"), {});
  tape.backward(loss);
  double worst = 0.0;
  std::string worst_name;
  for (const auto& [name, parameter] : g.model.parameters()) {
    const auto found = g.expected.find("grad." + name);
    ASSERT_NE(found, g.expected.end()) << "golden file lacks grad." << name;
    ASSERT_TRUE(parameter.grad().defined()) << name << " got no gradient";
    const double error =
        testing::normalized_error(testing::to_doubles(parameter.grad()), testing::to_doubles(found->second));
    EXPECT_LE(error, kGradientBound) << name;
    if (error > worst) {
      worst = error;
      worst_name = name;
    }
  }
  std::printf("[golden %s] worst gradient normalised error %.3g (%s)\n", GetParam().c_str(), worst,
              worst_name.c_str());
}

TEST_P(T5Golden, ThreeAdamWStepsMatchTorch) {
  Golden g = load_golden(GetParam());
  g.model.set_requires_grad(true);
  AdamWOptions options;
  options.lr = 1e-2;
  options.beta1 = 0.9;
  options.beta2 = 0.999;
  options.eps = 1e-8;
  options.weight_decay = 0.01;
  AdamW optimizer(g.model.parameter_list(), options);
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    Tape tape;
    const Tensor loss =
        g.model.loss(g.expected.at("input_ids"), g.expected.at("attention_mask"), g.expected.at("labels"), {});
    const double expected_loss = g.expected.at("step" + std::to_string(step) + ".loss").item();
    EXPECT_NEAR(loss.item(), expected_loss, 1e-5 * std::abs(expected_loss)) << "step " << step;
    tape.backward(loss);
    optimizer.step();
  }
  double worst = 0.0;
  for (const auto& [name, parameter] : g.model.parameters()) {
    const double error = testing::normalized_error(testing::to_doubles(parameter),
                                                   testing::to_doubles(g.expected.at("final." + name)));
    EXPECT_LE(error, kAdamWBound) << name;
    worst = std::max(worst, error);
  }
  std::printf("[golden %s] worst weight normalised error after 3 AdamW steps %.3g\n", GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Variants, T5Golden, ::testing::Values("t5_v1_0", "t5_v1_1"));

}  // namespace
}  // namespace la3
