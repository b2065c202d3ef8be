// Text metrics against transformers' BERT tokenizers, nltk and rouge-score
// (tests/fixtures/eval/text_*, scripts/make_text_eval_golden.py): WordPiece tokens row by
// row, corpus BLEU-2/4 over them, ROUGE-1/2/L per row.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "eval/bleu.h"
#include "eval/rouge.h"
#include "eval/wordpiece.h"

namespace la3 {
namespace {

const std::string kDir = std::string(LA3_TEST_FIXTURES_DIR) + "/eval";

struct TextGolden {
  std::vector<std::string> references, outputs;
  nlohmann::json expected;
};

TextGolden load() {
  TextGolden g;
  std::ifstream tsv(kDir + "/text_predictions.tsv");
  std::string line;
  std::getline(tsv, line);
  while (std::getline(tsv, line)) {
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    EXPECT_EQ(fields.size(), 3u) << line;
    g.references.push_back(fields[1]);
    g.outputs.push_back(fields.size() > 2 ? fields[2] : "");
  }
  std::ifstream json(kDir + "/text_expected.json");
  g.expected = nlohmann::json::parse(json);
  return g;
}

TEST(WordPiece, TokensMatchTransformersRowByRow) {
  const TextGolden g = load();
  const absl::StatusOr<WordPieceTokenizer> tokenizer = WordPieceTokenizer::load(kDir + "/text_vocab.txt");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  ASSERT_EQ(g.references.size(), g.expected["rows"].get<size_t>());
  for (size_t i = 0; i < g.references.size(); ++i) {
    EXPECT_EQ(tokenizer->tokenize(g.references[i]), g.expected["reference_tokens"][i].get<std::vector<std::string>>())
        << "reference " << i << ": " << g.references[i];
    EXPECT_EQ(tokenizer->tokenize(g.outputs[i]), g.expected["output_tokens"][i].get<std::vector<std::string>>())
        << "output " << i << ": " << g.outputs[i];
  }
  EXPECT_EQ(WordPieceTokenizer::load("/nonexistent/vocab.txt").status().code(), absl::StatusCode::kNotFound);
}

TEST(TextMetrics, Bleu2And4OverWordPiecesMatchNltk) {
  const TextGolden g = load();
  const WordPieceTokenizer tokenizer = *WordPieceTokenizer::load(kDir + "/text_vocab.txt");
  std::vector<Tokens> references, outputs;
  for (size_t i = 0; i < g.references.size(); ++i) {
    references.push_back(tokenizer.tokenize(g.references[i]));
    outputs.push_back(tokenizer.tokenize(g.outputs[i]));
  }
  EXPECT_NEAR(corpus_bleu(references, outputs, {0.5, 0.5}), g.expected["bleu2"].get<double>(), 1e-12);
  EXPECT_NEAR(corpus_bleu(references, outputs), g.expected["bleu4"].get<double>(), 1e-12);
}

TEST(TextMetrics, RougeMatchesRougeScoreRowByRow) {
  const TextGolden g = load();
  for (size_t i = 0; i < g.references.size(); ++i) {
    const RougeScores s = rouge(g.outputs[i], g.references[i]);  // MolT5's argument order
    const auto& want = g.expected["rouge_rows"][i];
    EXPECT_NEAR(s.rouge1, want[0].get<double>(), 1e-12) << "row " << i;
    EXPECT_NEAR(s.rouge2, want[1].get<double>(), 1e-12) << "row " << i;
    EXPECT_NEAR(s.rougeL, want[2].get<double>(), 1e-12) << "row " << i;
  }
}

}  // namespace
}  // namespace la3
