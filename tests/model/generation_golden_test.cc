// generate() against transformers 4.46.3 on the golden models (tests/golden/*/generate.json
// from scripts/make_golden.py): token ids exactly, beam scores within 1e-5 relative; and
// incremental (KV-cache) decoding equal to full recomputation.
#include "model/generation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/autograd/tape.h"
#include "engine/io/safetensors.h"
#include "model/t5_checkpoint.h"
#include "model/t5_decoding.h"
#include "tests/model/generation_golden.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

class GenerationGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GenerationGolden, MatchesTransformersGenerate) {
  const std::string dir = std::string(LA3_GOLDEN_DIR) + "/" + GetParam();
  testing::expect_generate_matches_goldens(*load_t5_checkpoint(dir), dir);
}

INSTANTIATE_TEST_SUITE_P(Variants, GenerationGolden, ::testing::Values("t5_v1_0", "t5_v1_1"));

TEST(IncrementalDecoding, EqualsFullRecomputation) {
  const T5Model model = *load_t5_checkpoint(std::string(LA3_GOLDEN_DIR) + "/t5_v1_1");
  const SafetensorsContents inputs = *read_safetensors(std::string(LA3_GOLDEN_DIR) + "/t5_v1_1/expected.safetensors");
  const Tensor& ids = inputs.tensors.at("input_ids");
  const Tensor& mask = inputs.tensors.at("attention_mask");
  NoGradGuard no_grad;
  const Tensor encoded = model.encode(ids, mask, {});
  const std::vector<std::vector<int64_t>> prefixes = {{0, 5, 9, 3, 7, 7}, {0, 2, 2, 8, 1, 4}, {0, 11, 12, 13, 14, 15}};
  const Tensor decoder_ids = Tensor::from_vector<int64_t>(
      {3, 6}, {0, 5, 9, 3, 7, 7, 0, 2, 2, 8, 1, 4, 0, 11, 12, 13, 14, 15});
  const Tensor full = model.decode(decoder_ids, encoded, mask, {});  // [3, 6, vocab]
  const T5Decoder decoder(model);
  T5DecodingCache cache = decoder.start(encoded, mask, 1, /*max_steps=*/6);
  const int64_t vocab = model.config().vocab_size;
  double worst = 0.0;
  for (int64_t t = 0; t < 6; ++t) {
    const Tensor step = decoder.step(cache, {prefixes[0][static_cast<size_t>(t)], prefixes[1][static_cast<size_t>(t)],
                                             prefixes[2][static_cast<size_t>(t)]});
    for (int64_t r = 0; r < 3; ++r) {
      for (int64_t v = 0; v < vocab; ++v) {
        worst = std::max(worst, std::abs(step.item(r * vocab + v) - full.item((r * 6 + t) * vocab + v)));
      }
    }
  }
  EXPECT_LT(worst, 1e-5);
}

TEST(Generation, BadOptionsAreNamed) {
  const T5Model model = *load_t5_checkpoint(std::string(LA3_GOLDEN_DIR) + "/t5_v1_0");
  const Tensor ids = Tensor::from_vector<int64_t>({1, 3}, {5, 6, 1});
  GenerationOptions o;
  o.num_beams = 2;
  o.num_return_sequences = 3;
  EXPECT_THAT(std::string(generate(model, ids, Tensor(), o).status().message()),
              HasSubstr("num_return_sequences (3) must be between 1 and num_beams (2)"));
  o = GenerationOptions{};
  o.max_length = 1;
  EXPECT_THAT(std::string(generate(model, ids, Tensor(), o).status().message()), HasSubstr("max_length must be >= 2"));
  EXPECT_THAT(std::string(generate(model, Tensor::from_vector<int64_t>({3}, {1, 2, 3}), Tensor(), {}).status().message()),
              HasSubstr("input_ids must be integer [batch, src_len]"));
  // An id outside the vocabulary is an error, not a crash.
  EXPECT_EQ(generate(model, Tensor::from_vector<int64_t>({1, 2}, {500, 1}), Tensor(), {}).status().code(),
            absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace la3

namespace la3 {
namespace {

TEST(Generation, ValidityRankingPutsAcceptedHypothesesFirstKeepingScoreOrder) {
  const T5Model model = *load_t5_checkpoint(std::string(LA3_GOLDEN_DIR) + "/t5_v1_1");
  const SafetensorsContents inputs = *read_safetensors(std::string(LA3_GOLDEN_DIR) + "/t5_v1_1/expected.safetensors");
  GenerationOptions o;
  o.num_beams = 4;
  o.num_return_sequences = 4;
  o.max_new_tokens = 10;
  const auto plain = *generate(model, inputs.tensors.at("input_ids"), inputs.tensors.at("attention_mask"), o);
  // "Valid" = contains token 13: some hypotheses do, some do not (checked below).
  auto accepts = [](const std::vector<int64_t>& tokens) {
    return std::find(tokens.begin(), tokens.end(), 13) != tokens.end();
  };
  o.is_valid = accepts;
  const auto ranked = *generate(model, inputs.tensors.at("input_ids"), inputs.tensors.at("attention_mask"), o);
  int mixed_inputs = 0;
  for (size_t b = 0; b < plain.size(); ++b) {
    std::vector<GeneratedSequence> valid, invalid;
    for (const GeneratedSequence& s : plain[b]) (accepts(s.tokens) ? valid : invalid).push_back(s);
    if (!valid.empty() && !invalid.empty()) ++mixed_inputs;
    std::vector<GeneratedSequence> expected = valid;
    expected.insert(expected.end(), invalid.begin(), invalid.end());
    ASSERT_EQ(ranked[b].size(), expected.size());
    for (size_t j = 0; j < expected.size(); ++j) EXPECT_EQ(ranked[b][j].tokens, expected[j].tokens) << "input " << b;
  }
  EXPECT_GE(mixed_inputs, 1) << "the test needs an input with both kinds of hypotheses";
}

}  // namespace
}  // namespace la3

namespace la3 {
namespace {

TEST(Generation, SeededSamplingIsReproducibleAndTopKOneIsGreedy) {
  const T5Model model = *load_t5_checkpoint(std::string(LA3_GOLDEN_DIR) + "/t5_v1_0");
  const SafetensorsContents inputs = *read_safetensors(std::string(LA3_GOLDEN_DIR) + "/t5_v1_0/expected.safetensors");
  const Tensor& ids = inputs.tensors.at("input_ids");
  const Tensor& mask = inputs.tensors.at("attention_mask");
  GenerationOptions o;
  o.max_new_tokens = 10;
  const auto greedy = *generate(model, ids, mask, o);
  o.do_sample = true;
  o.seed = 11;
  o.temperature = 1.5;
  const auto first = *generate(model, ids, mask, o);
  const auto again = *generate(model, ids, mask, o);
  bool differs_from_greedy = false;
  for (size_t b = 0; b < first.size(); ++b) {
    EXPECT_EQ(first[b][0].tokens, again[b][0].tokens);
    differs_from_greedy |= first[b][0].tokens != greedy[b][0].tokens;
  }
  EXPECT_TRUE(differs_from_greedy);
  o.seed = 12;
  const auto other_seed = *generate(model, ids, mask, o);
  bool seed_matters = false;
  for (size_t b = 0; b < first.size(); ++b) seed_matters |= first[b][0].tokens != other_seed[b][0].tokens;
  EXPECT_TRUE(seed_matters);
  o.top_k = 1;  // only the argmax survives: sampling degenerates to greedy search
  const auto top1 = *generate(model, ids, mask, o);
  for (size_t b = 0; b < top1.size(); ++b) EXPECT_EQ(top1[b][0].tokens, greedy[b][0].tokens);
  o.num_beams = 2;
  EXPECT_FALSE(generate(model, ids, mask, o).ok());  // sampling with beams is rejected
}

}  // namespace
}  // namespace la3
