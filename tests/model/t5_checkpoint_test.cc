// Checkpoint directories: save -> load reproduces the logits bit for bit and writes the
// names transformers expects; broken directories give errors that name the file.
#include "model/t5_checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "engine/autograd/tape.h"
#include "engine/io/file_io.h"
#include "engine/io/safetensors.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

const std::string kGolden = std::string(LA3_GOLDEN_DIR);

std::string temp_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/la3_ckpt_" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(T5Checkpoint, SaveThenLoadGivesIdenticalLogitsAndHfNames) {
  for (const std::string variant : {"t5_v1_0", "t5_v1_1"}) {
    absl::StatusOr<T5Model> model = load_t5_checkpoint(kGolden + "/" + variant);
    ASSERT_TRUE(model.ok()) << model.status();
    const std::string dir = temp_dir(variant);
    ASSERT_TRUE(save_t5_checkpoint(*model, dir).ok());
    // Exactly the tensor names transformers' save_pretrained wrote.
    const SafetensorsContents original = *read_safetensors(kGolden + "/" + variant + "/model.safetensors");
    const SafetensorsContents saved = *read_safetensors(dir + "/model.safetensors");
    ASSERT_EQ(saved.tensors.size(), original.tensors.size());
    for (const auto& [name, tensor] : original.tensors) {
      ASSERT_TRUE(saved.tensors.count(name)) << name;
      EXPECT_EQ(saved.tensors.at(name).to_vector<float>(), tensor.to_vector<float>()) << name;
    }
    absl::StatusOr<T5Model> reloaded = load_t5_checkpoint(dir);
    ASSERT_TRUE(reloaded.ok()) << reloaded.status();
    EXPECT_EQ(reloaded->config().feed_forward, model->config().feed_forward);
    EXPECT_EQ(reloaded->config().num_decoder_layers, 3);
    const Tensor ids = Tensor::from_vector<int64_t>({1, 4}, {5, 6, 7, 1});
    const Tensor labels = Tensor::from_vector<int64_t>({1, 3}, {8, 9, 1});
    NoGradGuard no_grad;
    EXPECT_EQ(model->logits(ids, Tensor(), labels, {}).to_vector<float>(),
              reloaded->logits(ids, Tensor(), labels, {}).to_vector<float>());
  }
}

TEST(T5Checkpoint, BrokenDirectoriesNameTheFileAndProblem) {
  const absl::Status missing = load_t5_checkpoint("/nonexistent/ckpt").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("/nonexistent/ckpt/config.json"));

  // A parameter with the wrong shape.
  const std::string dir = temp_dir("wrong_shape");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kGolden + "/t5_v1_1/config.json", dir + "/config.json");
  SafetensorsContents weights = *read_safetensors(kGolden + "/t5_v1_1/model.safetensors");
  weights.tensors["decoder.final_layer_norm.weight"] = Tensor::zeros({7});
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  const absl::Status wrong = load_t5_checkpoint(dir).status();
  EXPECT_THAT(std::string(wrong.message()), HasSubstr("\"decoder.final_layer_norm.weight\" is f32[7]"));
  EXPECT_THAT(std::string(wrong.message()), HasSubstr(dir + "/model.safetensors"));

  // A missing parameter, and an unexpected one.
  weights.tensors.erase("decoder.final_layer_norm.weight");
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()),
              HasSubstr("missing parameter \"decoder.final_layer_norm.weight\""));
  weights.tensors["decoder.final_layer_norm.weight"] = Tensor::full({20}, 1.0);
  weights.tensors["encoder.extra.weight"] = Tensor::zeros({2});
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()),
              HasSubstr("\"encoder.extra.weight\" f32[2] on cpu that this T5 config does not use"));

  // A config that is not JSON, and one with an unsupported activation.
  ASSERT_TRUE(write_file_atomically(dir + "/config.json", "{not json").ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()), HasSubstr("config.json: not a JSON object"));
  ASSERT_TRUE(write_file_atomically(dir + "/config.json", R"({"model_type": "t5", "feed_forward_proj": "gated-silu"})").ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()),
              HasSubstr("feed_forward_proj \"gated-silu\" is not supported"));
  std::filesystem::remove_all(dir);
}

TEST(T5Checkpoint, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const std::string dir = temp_dir("non_finite");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kGolden + "/t5_v1_1/config.json", dir + "/config.json");
  SafetensorsContents weights = *read_safetensors(kGolden + "/t5_v1_1/model.safetensors");
  for (const double bad : {std::nan(""), double{INFINITY}, -double{INFINITY}}) {
    SafetensorsContents broken = weights;
    Tensor table = broken.tensors.at("encoder.block.0.layer.0.SelfAttention.q.weight").clone();
    std::vector<float> values = table.to_vector<float>();
    values[5] = static_cast<float>(bad);
    broken.tensors["encoder.block.0.layer.0.SelfAttention.q.weight"] = Tensor::from_vector<float>(table.shape(), values);
    ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", broken.tensors).ok());
    const absl::Status status = load_t5_checkpoint(dir).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("\"encoder.block.0.layer.0.SelfAttention.q.weight\""));
    EXPECT_THAT(std::string(status.message()), HasSubstr("at element 5"));
  }
  // bf16 weights are checked too.
  SafetensorsContents bf16 = weights;
  std::vector<float> values = bf16.tensors.at("shared.weight").to_vector<float>();
  values.back() = INFINITY;
  bf16.tensors["shared.weight"] = Tensor::from_vector<float>(bf16.tensors.at("shared.weight").shape(), values).to(DType::kBF16);
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", bf16.tensors).ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()), HasSubstr("\"shared.weight\""));
  std::filesystem::remove_all(dir);
}

// Original T5 conversions (t5-small, some MolT5 .bin files) carry an unused cross-attention
// relative bias; transformers ignores it on load, so do we. A wrong shape is still an error,
// and any other extra tensor too.
TEST(T5Checkpoint, TheUnusedCrossAttentionBiasIsIgnoredAsTransformersDoes) {
  const std::string dir = temp_dir("cross_bias");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(kGolden + "/t5_v1_1/config.json", dir + "/config.json");
  SafetensorsContents weights = *read_safetensors(kGolden + "/t5_v1_1/model.safetensors");
  const Tensor self_bias = weights.tensors.at("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
  const std::string key = "decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight";
  weights.tensors[key] = self_bias.clone();
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  absl::StatusOr<T5Model> model = load_t5_checkpoint(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->parameters().count(key), 0u);
  weights.tensors[key] = Tensor::zeros({3, 2});
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()), HasSubstr(key + "\" is"));
  weights.tensors.erase(key);
  weights.tensors["decoder.block.0.layer.1.EncDecAttention.extra.weight"] = self_bias.clone();
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", weights.tensors).ok());
  EXPECT_THAT(std::string(load_t5_checkpoint(dir).status().message()), HasSubstr("that this T5 config does not use"));
  std::filesystem::remove_all(dir);
}

TEST(T5Config, PresetsAndValidation) {
  const T5Config small = *T5Config::preset("molt5-small");
  EXPECT_EQ(small.d_model, 512);
  EXPECT_EQ(small.d_ff, 1024);
  EXPECT_EQ(small.num_heads, 6);
  EXPECT_EQ(small.num_layers, 8);
  EXPECT_EQ(small.num_decoder_layers, 8);
  EXPECT_EQ(small.vocab_size, 32128);
  EXPECT_EQ(small.feed_forward, FeedForwardKind::kGatedGelu);
  EXPECT_FALSE(small.tie_word_embeddings);
  // MolT5-small has about 77M parameters.
  const std::map<std::string, Shape> shapes = t5_parameter_shapes(small);
  int64_t count = 0;
  for (const auto& entry : shapes) count += shape_numel(entry.second);
  EXPECT_NEAR(static_cast<double>(count), 77e6, 1e6);
  EXPECT_FALSE(T5Config::preset("gpt2").ok());
  T5Config bad = small;
  bad.relative_attention_num_buckets = 7;
  EXPECT_THAT(std::string(validate_t5_config(bad).message()), HasSubstr("relative_attention_num_buckets"));
  bad = small;
  bad.eos_token_id = 40000;
  EXPECT_THAT(std::string(validate_t5_config(bad).message()), HasSubstr("eos_token_id = 40000 is outside"));
}

}  // namespace
}  // namespace la3
