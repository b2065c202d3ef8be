// Molecule metrics against the Python reference (rdkit, nltk, python-Levenshtein) on
// predictions made from the sample molecules (tests/fixtures/eval, scripts/make_eval_golden.py),
// plus the edge cases of BLEU and Levenshtein.
#include "eval/molecule_metrics.h"

#include <gtest/gtest.h>

#include <fstream>
#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "eval/bleu.h"

namespace la3 {
namespace {

TEST(MoleculeMetrics, MatchTheMolT5ScriptDefinitionsInPython) {
  const std::string dir = std::string(LA3_TEST_FIXTURES_DIR) + "/eval";
  std::ifstream tsv(dir + "/molecule_predictions.tsv");
  std::string line;
  std::getline(tsv, line);
  std::vector<std::string> references, outputs;
  while (std::getline(tsv, line)) {
    const std::vector<std::string> fields = absl::StrSplit(line, '\t');
    ASSERT_EQ(fields.size(), 3u) << line;
    references.push_back(fields[1]);
    outputs.push_back(fields[2]);
  }
  std::ifstream json_stream(dir + "/molecule_expected.json");
  const nlohmann::json expected = nlohmann::json::parse(json_stream);
  const MoleculeMetrics m = molecule_metrics(references, outputs);
  EXPECT_EQ(m.rows, expected["rows"].get<int64_t>());
  EXPECT_NEAR(m.bleu, expected["bleu"].get<double>(), 1e-9);
  EXPECT_NEAR(m.levenshtein, expected["levenshtein"].get<double>(), 1e-9);
  EXPECT_NEAR(m.validity, expected["validity"].get<double>(), 1e-9);
  EXPECT_NEAR(m.exact_canonical, expected["exact_canonical"].get<double>(), 1e-9);
  EXPECT_NEAR(m.exact_inchi, expected["exact_inchi"].get<double>(), 1e-9);
  EXPECT_EQ(m.fingerprint_pairs, expected["fingerprint_pairs"].get<int64_t>());
  // Fingerprints: Debian's RDKit 2022.09 vs PyPI rdkit 2026.09 of the golden; equal here.
  EXPECT_NEAR(m.maccs_fts, expected["maccs_fts"].get<double>(), 1e-6);
  EXPECT_NEAR(m.rdk_fts, expected["rdk_fts"].get<double>(), 1e-6);
  EXPECT_NEAR(m.morgan_fts, expected["morgan_fts"].get<double>(), 1e-6);
}

TEST(Bleu, EdgeCases) {
  // Identical corpus: 1. No unigram match: 0. Empty hypothesis: 0.
  EXPECT_DOUBLE_EQ(corpus_bleu({character_tokens("CCOCCN")}, {character_tokens("CCOCCN")}), 1.0);
  EXPECT_DOUBLE_EQ(corpus_bleu({character_tokens("CCCC")}, {character_tokens("NNNN")}), 0.0);
  EXPECT_DOUBLE_EQ(corpus_bleu({character_tokens("CCCC")}, {character_tokens("")}), 0.0);
  // Brevity penalty: a correct prefix of half the length scores exp(1 - 2) * precision 1.
  const double half = corpus_bleu({character_tokens("ABCDEFGH")}, {character_tokens("ABCD")});
  EXPECT_NEAR(half, std::exp(-1.0), 1e-12);
  // Longer hypotheses are not penalised by brevity, only by precision:
  // "ABCDX": unigram 4/5, bigram 3/4, trigram 2/3, 4-gram 1/2.
  const double longer = corpus_bleu({character_tokens("ABCD")}, {character_tokens("ABCDX")});
  EXPECT_NEAR(longer, std::pow(0.8 * 0.75 * (2.0 / 3.0) * 0.5, 0.25), 1e-12);
  // Clipping: a hypothesis repeating a reference token gets it counted once.
  EXPECT_NEAR(corpus_bleu({{"a", "b"}}, {{"a", "a"}}, {1.0}), 0.5, 1e-12);
}

TEST(Levenshtein, Distances) {
  EXPECT_EQ(levenshtein("", ""), 0);
  EXPECT_EQ(levenshtein("CCO", ""), 3);
  EXPECT_EQ(levenshtein("CCO", "CCN"), 1);
  EXPECT_EQ(levenshtein("F/C=C\\F", "F/C=C/F"), 1);
  EXPECT_EQ(levenshtein("kitten", "sitting"), 3);
}

TEST(MoleculeMetrics, EmptyInvalidAndStereoRows) {
  const MoleculeMetrics m = molecule_metrics({"F/C=C\\F", "CCO", "C1CC"}, {"F\\C=C/F", "", "CCO"});
  EXPECT_EQ(m.rows, 3);
  EXPECT_NEAR(m.validity, 2.0 / 3.0, 1e-12);         // "" does not parse
  EXPECT_NEAR(m.exact_canonical, 1.0 / 3.0, 1e-12);  // the stereo pair is the same molecule
  EXPECT_EQ(m.invalid_references, 1);                // "C1CC" is not a molecule
  EXPECT_EQ(m.fingerprint_pairs, 1);
  EXPECT_DOUBLE_EQ(m.maccs_fts, 1.0);
  EXPECT_EQ(molecule_metrics({}, {}).rows, 0);
}

}  // namespace
}  // namespace la3
