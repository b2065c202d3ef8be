// The embeddable decoder (include/la3/decoder.h): batching of mixed lengths equals one by
// one, concurrent const use from several threads, and clear errors for bad checkpoints,
// over-long inputs and bad options.
#include "la3/decoder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "model/t5_checkpoint.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSample = std::string(LA3_SOURCE_DIR) + "/data/sample";

// A random tiny MolT5-architecture checkpoint with the sample tokenizer.
std::string make_checkpoint() {
  const std::string dir = ::testing::TempDir() + "/la3_decoder_ckpt";
  if (fs::exists(dir + "/spiece.model")) return dir;
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 356;  // 256 pieces + 100 sentinels
  config.dropout_rate = 0.0f;
  EXPECT_TRUE(save_t5_checkpoint(*T5Model::create(config, 7), dir).ok());
  fs::copy_file(kSample + "/spiece.model", dir + "/spiece.model", fs::copy_options::overwrite_existing);
  return dir;
}

const std::vector<std::string> kInputs = {
    "The molecule is an alcohol.",
    "The molecule is a monocarboxylic acid that has a role as a metabolite and carries a methyl group.",
    "CCO",
    "A benzene ring bearing a nitro group.",
    "C1=CC=CC=C1",
};

TEST(Decoder, BatchOfMixedLengthsEqualsOneByOne) {
  auto decoder = Decoder::Load(make_checkpoint());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  for (int beams : {1, 3}) {
    TranslationOptions options;
    options.num_beams = beams;
    options.num_hypotheses = beams;
    options.max_new_tokens = 12;
    options.max_batch_size = 5;
    const std::vector<Translation> batched = *(*decoder)->Translate(kInputs, options);
    ASSERT_EQ(batched.size(), kInputs.size());
    for (size_t i = 0; i < kInputs.size(); ++i) {
      const std::vector<Translation> single = *(*decoder)->Translate({kInputs[i]}, options);
      ASSERT_EQ(single[0].hypotheses.size(), batched[i].hypotheses.size());
      for (size_t h = 0; h < single[0].hypotheses.size(); ++h) {
        EXPECT_EQ(single[0].hypotheses[h].token_ids, batched[i].hypotheses[h].token_ids) << "input " << i;
        EXPECT_NEAR(single[0].hypotheses[h].score, batched[i].hypotheses[h].score, 1e-4) << "input " << i;
      }
    }
  }
}

TEST(Decoder, ConcurrentTranslationFromSeveralThreads) {
  auto decoder = Decoder::Load(make_checkpoint());
  ASSERT_TRUE(decoder.ok());
  TranslationOptions options;
  options.num_beams = 2;
  options.max_new_tokens = 10;
  const std::vector<Translation> expected = *(*decoder)->Translate(kInputs, options);
  std::vector<std::vector<Translation>> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = *(*decoder)->Translate(kInputs, options); });
  }
  for (std::thread& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_EQ(result.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(result[i].hypotheses[0].token_ids, expected[i].hypotheses[0].token_ids);
      EXPECT_EQ(result[i].hypotheses[0].text, expected[i].hypotheses[0].text);
    }
  }
}

TEST(Decoder, ErrorsAreStatusesNamingTheProblem) {
  const absl::Status missing = Decoder::Load("/nonexistent/checkpoint").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("/nonexistent/checkpoint/config.json"));

  DecoderOptions short_inputs;
  short_inputs.max_input_length = 4;
  auto decoder = Decoder::Load(make_checkpoint(), short_inputs);
  ASSERT_TRUE(decoder.ok());
  const absl::Status too_long = (*decoder)->Translate({"CCO", kInputs[1]}).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_long.message()), HasSubstr("input 1 has"));
  EXPECT_THAT(std::string(too_long.message()), HasSubstr("more than max_input_length 4"));
  short_inputs.truncate_long_inputs = true;
  auto truncating = Decoder::Load(make_checkpoint(), short_inputs);
  EXPECT_TRUE((*truncating)->Translate({kInputs[1]}).ok());

  TranslationOptions bad;
  bad.early_stopping = "sometimes";
  EXPECT_THAT(std::string((*decoder)->Translate({"CCO"}, bad).status().message()), HasSubstr("early_stopping"));
  bad = TranslationOptions{};
  bad.num_hypotheses = 3;
  EXPECT_THAT(std::string((*decoder)->Translate({"CCO"}, bad).status().message()), HasSubstr("num_return_sequences (3)"));
  EXPECT_THAT(std::string(Version()), HasSubstr("la3 "));
}

// DecoderOptions.device: cuda-emu (the CUDA backend under the SIMT emulation) translates as
// the CPU does; truncation and the input length are reported per translation; a bad device
// or precision is an error naming it.
TEST(Decoder, DeviceOptionAndPerInputFacts) {
  TranslationOptions options;
  options.num_beams = 2;
  options.max_new_tokens = 6;
  DecoderOptions on_cpu;
  on_cpu.max_input_length = 8;
  on_cpu.truncate_long_inputs = true;
  DecoderOptions emulated = on_cpu;
  emulated.device = "cuda-emu";
  emulated.gemm_precision = "fp32";
  auto cpu = Decoder::Load(make_checkpoint(), on_cpu);
  auto emu = Decoder::Load(make_checkpoint(), emulated);
  ASSERT_TRUE(cpu.ok() && emu.ok()) << cpu.status() << emu.status();
  const std::vector<Translation> a = *(*cpu)->Translate({kInputs[2], kInputs[1]}, options);
  const std::vector<Translation> b = *(*emu)->Translate({kInputs[2], kInputs[1]}, options);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(a[i].hypotheses[0].token_ids, b[i].hypotheses[0].token_ids) << i;
    EXPECT_EQ(a[i].input_tokens, b[i].input_tokens);
  }
  EXPECT_FALSE(a[0].input_truncated);
  EXPECT_TRUE(a[1].input_truncated);
  EXPECT_EQ(a[1].input_tokens, 8);
  EXPECT_EQ((*cpu)->tokenizer_size(), 356);
  DecoderOptions bad = on_cpu;
  bad.device = "tpu";
  EXPECT_THAT(std::string(Decoder::Load(make_checkpoint(), bad).status().message()), HasSubstr("device 'tpu'"));
  bad = on_cpu;
  bad.gemm_precision = "fp16";
  EXPECT_THAT(std::string(Decoder::Load(make_checkpoint(), bad).status().message()), HasSubstr("gemm precision 'fp16': expected bf16 or fp32"));
}

}  // namespace
}  // namespace la3
