// The prediction TSV reader of `engine eval`: both headers, CRLF, blank lines, bad rows
// (malformed, invalid UTF-8: RDKit could accept stray bytes inside a SMILES as valid)
// counted with file:line and never scored, and the in-memory reader (what fuzz/ feeds) equal
// to the file one.
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

TEST(Predictions, ReadsRowsAndCountsBadOnesFromFileOrMemory) {
  const std::string bytes =
      "SMILES\tground truth\toutput\r\nCCO\tAn alcohol.\tAn alcohol, too.\r\n\r\nbroken row\r\nC\tmethane\tgas\n";
  const std::string path = ::testing::TempDir() + "/la3_predictions.tsv";
  std::ofstream(path, std::ios::binary) << bytes;
  for (const absl::StatusOr<PredictionFile>& file : {read_predictions(path), parse_predictions(bytes, path)}) {
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->input_column, "SMILES");
    EXPECT_EQ(file->inputs, (std::vector<std::string>{"CCO", "C"}));
    EXPECT_EQ(file->references, (std::vector<std::string>{"An alcohol.", "methane"}));
    EXPECT_EQ(file->outputs, (std::vector<std::string>{"An alcohol, too.", "gas"}));
    EXPECT_EQ(file->rows_skipped, 1);
    ASSERT_EQ(file->problems.size(), 1u);
    EXPECT_EQ(file->problems[0], path + ":4: expected 3 tab-separated fields, found 1");
  }
}

TEST(Predictions, RejectsAnEmptyFileAndAWrongHeader) {
  EXPECT_EQ(parse_predictions("", "p.tsv").status().message(), "p.tsv: empty file, expected a header");
  EXPECT_FALSE(parse_predictions("input\toutput\n", "p.tsv").ok());
  EXPECT_TRUE(parse_predictions("description\tground truth\toutput", "p.tsv").ok());
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
  EXPECT_EQ(file->lines, (std::vector<int64_t>{2}));
  // Only the scored row counts: validity is 1 of 1, not 2 of 2.
  const MoleculeMetrics m = molecule_metrics(file->references, file->outputs);
  EXPECT_EQ(m.rows, 1);
  EXPECT_DOUBLE_EQ(m.validity, 1.0);
}

}  // namespace
}  // namespace la3
