// The prediction TSV reader of `engine eval`: both headers, CRLF, blank lines, bad rows
// counted with file:line, and the in-memory reader (what fuzz/ feeds) equal to the file one.
#include "eval/predictions.h"

#include <gtest/gtest.h>

#include <fstream>

namespace la3 {
namespace {

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

}  // namespace
}  // namespace la3
