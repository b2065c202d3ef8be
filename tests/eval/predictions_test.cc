// MolT5's predictions TSV: malformed rows and rows with invalid UTF-8 are counted and named,
// never scored (RDKit could accept stray bytes inside a SMILES as valid).
#include "eval/predictions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "eval/molecule_metrics.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;

std::string write_temp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/la3_predictions_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(Predictions, InvalidUtf8RowsAreSkippedCountedAndNamed) {
  const std::string path = write_temp("utf8.tsv",
                                      "description\tground truth\toutput\n"
                                      "an alcohol\tCCO\tCCO\n"
                                      "an acid\tCC(=O)O\tCC(=O)O\xFF\n"        // invalid output
                                      "caf\xC3\x28\tC\tC\n"                      // invalid input
                                      "two fields only\tC\n");
  absl::StatusOr<PredictionFile> file = read_predictions(path);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->outputs.size(), 1u);
  EXPECT_EQ(file->outputs[0], "CCO");
  EXPECT_EQ(file->rows_skipped, 3);
  EXPECT_EQ(file->rows_invalid_utf8, 2);
  ASSERT_EQ(file->problems.size(), 3u);
  EXPECT_EQ(file->problems[0], path + ":3: invalid UTF-8 in the output column at byte 7 (0xff)");
  EXPECT_EQ(file->problems[1], path + ":4: invalid UTF-8 in the input column at byte 3 (0xc3)");
  EXPECT_THAT(file->problems[2], HasSubstr(":5: expected 3 tab-separated fields, found 2"));
  // Only the scored row counts: validity is 1 of 1, not 2 of 2.
  const MoleculeMetrics m = molecule_metrics(file->references, file->outputs);
  EXPECT_EQ(m.rows, 1);
  EXPECT_DOUBLE_EQ(m.validity, 1.0);
}

}  // namespace
}  // namespace la3
