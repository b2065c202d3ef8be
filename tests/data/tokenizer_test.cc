// The SentencePiece wrapper against Python sentencepiece on the same model
// (tests/fixtures/tokenizer, from scripts/make_tokenizer_golden.py), plus T5's conventions.
#include "data/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace la3 {
namespace {

using ::testing::HasSubstr;

const std::string kFixtures = std::string(LA3_TEST_FIXTURES_DIR) + "/tokenizer";

Tokenizer load_sample() {
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::load(kFixtures + "/sample.model");
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(*tokenizer);
}

TEST(Tokenizer, IdsMatchPythonSentencepieceAndEosIsAppended) {
  const Tokenizer tokenizer = load_sample();
  std::ifstream stream(kFixtures + "/expected.json");
  const nlohmann::json expected = nlohmann::json::parse(stream);
  EXPECT_EQ(tokenizer.piece_count(), expected["pieces"].get<int64_t>());
  ASSERT_GE(expected["probes"].size(), 5u);
  for (const auto& probe : expected["probes"]) {
    const std::string text = probe["text"].get<std::string>();
    std::vector<int64_t> want = probe["ids"].get<std::vector<int64_t>>();
    want.push_back(1);  // T5 appends eos
    absl::StatusOr<std::vector<int64_t>> ids = tokenizer.encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, want) << "text: \"" << text << "\"";
    absl::StatusOr<std::string> decoded = tokenizer.decode(*ids);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, probe["decoded"].get<std::string>());
  }
}

TEST(Tokenizer, SentinelsFollowT5Layout) {
  const Tokenizer tokenizer = load_sample();
  EXPECT_EQ(tokenizer.vocab_size(), tokenizer.piece_count() + 100);
  EXPECT_EQ(tokenizer.id_to_piece(tokenizer.vocab_size() - 1), "<extra_id_0>");
  EXPECT_EQ(tokenizer.id_to_piece(tokenizer.piece_count()), "<extra_id_99>");
  EXPECT_EQ(tokenizer.id_to_piece(1), "</s>");
  EXPECT_EQ(tokenizer.id_to_piece(0), "<pad>");
  // Special ids vanish when skipped; kept, a sentinel reads <extra_id_N> as in transformers.
  std::vector<int64_t> ids = *tokenizer.encode("CCO");
  ids.pop_back();  // the eos
  std::vector<int64_t> padded = ids;
  padded.insert(padded.begin(), tokenizer.vocab_size() - 1);
  padded.push_back(1);
  padded.push_back(0);
  EXPECT_EQ(*tokenizer.decode(padded), "CCO");
  std::vector<int64_t> with_sentinels = {tokenizer.vocab_size() - 1};
  with_sentinels.insert(with_sentinels.end(), ids.begin(), ids.end());
  with_sentinels.push_back(tokenizer.vocab_size() - 3);
  EXPECT_EQ(*tokenizer.decode(with_sentinels, /*skip_special=*/false), "<extra_id_0>CCO<extra_id_2>");
  // Ids past the tokenizer (a model's spare embedding rows) decode as nothing and are counted;
  // a negative id is an error naming it and its position.
  std::vector<int64_t> beyond = ids;
  beyond.insert(beyond.begin() + 1, tokenizer.vocab_size());
  beyond.push_back(tokenizer.vocab_size() + 27);
  int64_t counted = 0;
  EXPECT_EQ(*tokenizer.decode(beyond, true, &counted), "CCO");
  EXPECT_EQ(counted, 2);
  EXPECT_EQ(*tokenizer.decode(beyond), "CCO");
  const absl::StatusOr<std::string> bad = tokenizer.decode({5, -4});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("id -4 at position 1"));
}

TEST(Tokenizer, MissingOrInvalidModelFilesAreClearErrors) {
  const absl::StatusOr<Tokenizer> missing = Tokenizer::load("/nonexistent/spiece.model");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("/nonexistent/spiece.model"));

  const std::string garbage = ::testing::TempDir() + "/garbage.model";
  std::ofstream(garbage) << "this is not a protobuf";
  const absl::StatusOr<Tokenizer> invalid = Tokenizer::load(garbage);
  ASSERT_FALSE(invalid.ok());
  EXPECT_THAT(std::string(invalid.status().message()), HasSubstr("not a SentencePiece model"));
}

TEST(Tokenizer, TrainsAModelWithT5SpecialIds) {
  const std::string dir = ::testing::TempDir() + "/la3_tokenizer_train";
  std::filesystem::create_directories(dir);
  {
    std::ofstream corpus(dir + "/corpus.txt");
    for (int i = 0; i < 400; ++i) {
      corpus << "The molecule is a " << (i % 2 ? "hydroxy" : "amino") << " acid number " << i % 37
             << " with SMILES C" << std::string(static_cast<size_t>(i % 5), 'C') << "O.\n";
    }
  }
  TokenizerTrainOptions options;
  options.vocab_size = 50;
  const absl::Status trained_status = train_tokenizer(dir + "/corpus.txt", dir + "/trained", options);
  ASSERT_TRUE(trained_status.ok()) << trained_status.ToString();
  absl::StatusOr<Tokenizer> trained = Tokenizer::load(dir + "/trained.model");
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->piece_count(), 50);
  const std::vector<int64_t> ids = *trained->encode("The molecule is a hydroxy acid.");
  EXPECT_EQ(ids.back(), 1);
  EXPECT_EQ(*trained->decode(ids), "The molecule is a hydroxy acid.");

  const absl::Status no_corpus = train_tokenizer(dir + "/absent.txt", dir + "/x", options);
  EXPECT_EQ(no_corpus.code(), absl::StatusCode::kNotFound);
  options.model_type = "wordpiece";
  EXPECT_THAT(std::string(train_tokenizer(dir + "/corpus.txt", dir + "/x", options).message()),
              HasSubstr("model_type must be unigram or bpe"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace la3
