// Molecule metrics against the Python reference (rdkit, nltk, python-Levenshtein) on
// predictions made from the sample molecules (tests/fixtures/eval, scripts/make_eval_golden.py),
// plus the edge cases of BLEU and Levenshtein.
#include "eval/molecule_metrics.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "eval/bleu.h"
#include "eval/budgeted_rows.h"

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
  // Worker processes under the per-row budget, and in-process threads without one: the same.
  for (double budget : {10.0, 0.0}) {
  SCOPED_TRACE(budget);
  MoleculeMetricsOptions options;
  options.row_budget_seconds = budget;
  const MoleculeMetrics m = molecule_metrics(references, outputs, options);
  EXPECT_TRUE(m.unscored.empty());
  EXPECT_EQ(m.note, "");
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

// One degenerate prediction must not block an evaluation: a 2,000-atom chain (half a minute
// of RDKit CIP ranking) overruns the budget, a 10 MB SMILES is over the length cap; both are
// counted invalid and named, and the other rows are scored as usual.
TEST(MoleculeMetrics, DegenerateRowsAreCappedOrOverBudgetAndNamed) {
  const std::vector<std::string> references = {"CCO", "CCO", "c1ccccc1O", "CC(=O)O"};
  const std::vector<std::string> outputs = {"CCO", std::string(2000, 'C'), "c1ccccc1O", std::string(10'000'000, 'C')};
  MoleculeMetricsOptions options;
  options.row_budget_seconds = 1.0;
  const MoleculeMetrics m = molecule_metrics(references, outputs, options);
  EXPECT_EQ(m.rows, 4);
  EXPECT_EQ(m.rows_over_budget, 1);
  EXPECT_EQ(m.outputs_too_long, 1);
  EXPECT_EQ(m.invalid_outputs, 2);
  EXPECT_DOUBLE_EQ(m.validity, 0.5);
  EXPECT_DOUBLE_EQ(m.exact_inchi, 0.5);
  EXPECT_EQ(m.fingerprint_pairs, 2);
  EXPECT_DOUBLE_EQ(m.morgan_fts, 1.0);
  ASSERT_EQ(m.unscored.size(), 2u);
  EXPECT_EQ(m.unscored[0].row, 1);
  EXPECT_EQ(m.unscored[0].reason, "RDKit/InChI work took over 1 s: counted invalid");
  EXPECT_EQ(m.unscored[1].row, 3);
  EXPECT_EQ(m.unscored[1].reason, "output is 10000000 characters (cap 4096): counted invalid");
  // The string metrics still see the whole strings.
  EXPECT_DOUBLE_EQ(m.levenshtein, (0.0 + 1999.0 + 0.0 + (10'000'000.0 - 3.0)) / 4.0);
}

TEST(MoleculeMetrics, ReferencesOverTheCapAreNotParsed) {
  MoleculeMetricsOptions options;
  options.max_smiles_chars = 5;
  const MoleculeMetrics m = molecule_metrics({"CCCCCO", "CCO"}, {"CCCCCO", "CCO"}, options);
  EXPECT_EQ(m.references_too_long, 1);
  EXPECT_EQ(m.outputs_too_long, 1);
  EXPECT_EQ(m.invalid_references, 1);
  EXPECT_EQ(m.fingerprint_pairs, 1);
  ASSERT_EQ(m.unscored.size(), 1u);
  EXPECT_EQ(m.unscored[0].reason,
            "output is 6 characters (cap 5): counted invalid; ground truth is 6 characters (cap 5): not parsed");
}

// The worker pool itself: results in row order whatever the worker count, an overrun row
// killed and reported, a crashing row reported, and the rows after them still done.
TEST(BudgetedRows, OverrunsAndCrashesCostOnlyTheirRow) {
  auto work = [](int64_t row, std::byte* record) {
    if (row == 3) std::this_thread::sleep_for(std::chrono::seconds(30));
    if (row == 5) std::raise(SIGKILL);  // a crash (without a core file)
    const int64_t value = row * row + 1;
    std::memcpy(record, &value, sizeof value);
  };
  for (int workers : {1, 3}) {
    SCOPED_TRACE(workers);
    const BudgetedRows result = run_rows_with_budget(9, sizeof(int64_t), work, 0.5, workers);
    ASSERT_EQ(result.outcomes.size(), 9u);
    EXPECT_FALSE(result.ran_in_process);
    for (int64_t row = 0; row < 9; ++row) {
      int64_t value = 0;
      std::memcpy(&value, result.records.data() + row * 8, sizeof value);
      if (row == 3) {
        EXPECT_EQ(result.outcomes[3], RowOutcome::kOverBudget);
        EXPECT_EQ(value, 0);
      } else if (row == 5) {
        EXPECT_EQ(result.outcomes[5], RowOutcome::kWorkerDied);
        EXPECT_EQ(value, 0);
      } else {
        EXPECT_EQ(result.outcomes[static_cast<size_t>(row)], RowOutcome::kDone) << row;
        EXPECT_EQ(value, row * row + 1) << row;
      }
    }
  }
}

}  // namespace
}  // namespace la3
