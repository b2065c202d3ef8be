// Dataset readers: ChEBI-20 TSV (with a real line from the shared validation split),
// LaChEBI-20 CSV grouping and quoting, our JSONL, and every malformed-row path under both
// bad-row policies.
#include "data/molecule_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace la3 {
namespace {

using ::testing::HasSubstr;

std::string write_temp(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/la3_dataset_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// Line 11 of ChEBI-20's validation.txt as published (backslashes doubled in the file).
const char* kRealChebiLine =
    "71464594\tCC/C=C\\\\C/C=C\\\\C/C=C\\\\C/C=C\\\\C/C=C\\\\CCCCCC(=O)OC(CC(=O)[O-])C[N+](C)(C)C\t"
    "The molecule is an O-acylcarnitine having (7Z,10Z,13Z,16Z,19Z)-docosapentaenoyl as the acyl substituent.";

TEST(Chebi20Reader, UndoesDoubledBackslashesOfARealLine) {
  const std::string path = write_temp("real.txt", std::string("CID\tSMILES\tdescription\n") + kRealChebiLine + "\n");
  ReadReport report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_chebi20_tsv(path, {}, &report);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].cid, "71464594");
  EXPECT_EQ((*records)[0].smiles, "CC/C=C\\C/C=C\\C/C=C\\C/C=C\\C/C=C\\CCCCCC(=O)OC(CC(=O)[O-])C[N+](C)(C)C");
  EXPECT_EQ((*records)[0].captions.size(), 1u);
  EXPECT_EQ(report.backslashes_undone, 1);
  EXPECT_EQ((*records)[0].source, path + ":2");

  ReadOptions verbatim;
  verbatim.undo_doubled_backslashes = false;
  EXPECT_THAT((*read_chebi20_tsv(path, verbatim))[0].smiles, HasSubstr("C=C\\\\C"));
}

TEST(Chebi20Reader, ReadsTheSharedValidationSplit) {
  const std::string path = std::string(LA3_SHARED_DATA_DIR) + "/chebi20/validation.txt";
  // The split CI provides beside the checkout; absent elsewhere.
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared data not found at " << path;
  ReadReport report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_chebi20_tsv(path, {}, &report);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->size(), 3301u);  // as published (scripts/fetch_chebi20.sh checks it too)
  EXPECT_EQ(report.rows_skipped, 0);
  EXPECT_EQ(report.backslashes_undone, 502);  // lines of the file with a doubled backslash
  for (const MoleculeRecord& r : *records) ASSERT_EQ(r.smiles.find("\\\\"), std::string::npos) << r.source;
}

TEST(Chebi20Reader, MalformedLinesNameFileAndLineOrAreCountedWhenSkipping) {
  const std::string path = write_temp("bad.txt", "CID\tSMILES\tdescription\n"
                                                 "1\tCCO\tEthanol is an alcohol.\n"
                                                 "2\tCC only two fields\n"
                                                 "3\t\tno smiles\n"
                                                 "4\tCCN\tEthylamine is an amine.\n");
  const absl::StatusOr<std::vector<MoleculeRecord>> strict = read_chebi20_tsv(path, {});
  ASSERT_FALSE(strict.ok());
  EXPECT_THAT(std::string(strict.status().message()), HasSubstr(path + ":3: expected 3 tab-separated fields"));

  ReadOptions lenient;
  lenient.bad_rows = BadRowPolicy::kSkip;
  ReadReport report;
  const absl::StatusOr<std::vector<MoleculeRecord>> skipped = read_chebi20_tsv(path, lenient, &report);
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(skipped->size(), 2u);
  EXPECT_EQ(report.rows_read, 4);
  EXPECT_EQ(report.rows_skipped, 2);
  ASSERT_EQ(report.problems.size(), 2u);
  EXPECT_THAT(report.problems[1], HasSubstr(":4: empty CID, SMILES or description"));
}

TEST(Chebi20Reader, WrongHeaderAndMissingFile) {
  EXPECT_THAT(std::string(read_chebi20_tsv(write_temp("hdr.txt", "id,smiles\n"), {}).status().message()),
              HasSubstr(":1: expected the ChEBI-20 header"));
  const absl::Status missing = read_chebi20_tsv("/nonexistent/train.txt", {}).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("/nonexistent/train.txt"));
}

TEST(LaChebi20Reader, GroupsRewritesByCidAndHandlesQuoting) {
  const std::string path = write_temp("la.csv",
                                      "CID,SMILES,CAPTION\r\n"
                                      "7,CCO,\"Ethanol, a primary alcohol.\"\r\n"
                                      "9,C/C=C\\\\C,\"A \"\"quoted\"\" alkene,\nspanning two lines.\"\r\n"
                                      "7,CCO,A rewrite of ethanol.\r\n"
                                      "7,CCO,\"Another rewrite.\"\r\n");
  ReadReport report;
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_lachebi20_csv(path, {}, &report);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].cid, "7");
  EXPECT_EQ((*records)[0].captions,
            (std::vector<std::string>{"Ethanol, a primary alcohol.", "A rewrite of ethanol.", "Another rewrite."}));
  EXPECT_EQ((*records)[1].smiles, "C/C=C\\C");
  EXPECT_EQ((*records)[1].captions[0], "A \"quoted\" alkene,\nspanning two lines.");
  EXPECT_EQ(report.rows_read, 4);
}

TEST(LaChebi20Reader, BadRowsNameTheirLine) {
  const std::string conflict = write_temp("conflict.csv", "CID,SMILES,CAPTION\n7,CCO,a\n7,CCN,b\n");
  EXPECT_THAT(std::string(read_lachebi20_csv(conflict, {}).status().message()),
              HasSubstr(":3: CID 7 has SMILES \"CCN\" but its first row"));
  const std::string unterminated = write_temp("open.csv", "CID,SMILES,CAPTION\n7,CCO,\"never closed\n");
  EXPECT_THAT(std::string(read_lachebi20_csv(unterminated, {}).status().message()),
              HasSubstr(":2: unterminated quoted field"));
  const std::string fields = write_temp("fields.csv", "CID,SMILES,CAPTION\n7,CCO\n8,CC,ok\n");
  ReadOptions lenient;
  lenient.bad_rows = BadRowPolicy::kSkip;
  ReadReport report;
  const absl::StatusOr<std::vector<MoleculeRecord>> records = read_lachebi20_csv(fields, lenient, &report);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 1u);
  EXPECT_EQ(report.rows_skipped, 1);
  EXPECT_THAT(report.problems[0], HasSubstr(":2: expected 3 fields"));
}

TEST(AugmentedJsonlReader, ReadsOriginalPlusRewritesAndRejectsBadObjects) {
  const std::string path = write_temp(
      "aug.jsonl",
      "{\"cid\": \"7\", \"smiles\": \"C/C=C\\\\C\", \"original\": \"An alkene.\", \"rewrites\": [\"R1\", \"R2\"],"
      " \"model\": \"m\"}\n"
      "\n"
      "{\"cid\": \"8\", \"smiles\": \"CCO\", \"original\": \"Ethanol.\"}\n");
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_augmented_jsonl(path, {});
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ((*records)[0].smiles, "C/C=C\\C");  // JSON escapes, stored verbatim
  EXPECT_EQ((*records)[0].captions, (std::vector<std::string>{"An alkene.", "R1", "R2"}));
  EXPECT_EQ((*records)[1].captions.size(), 1u);

  const std::string bad = write_temp("bad.jsonl", "{\"cid\": \"7\", \"smiles\": \"CCO\"}\n{not json\n");
  EXPECT_THAT(std::string(read_augmented_jsonl(bad, {}).status().message()),
              HasSubstr(":1: missing or non-string key \"original\""));
  ReadOptions lenient;
  lenient.bad_rows = BadRowPolicy::kSkip;
  ReadReport report;
  ASSERT_TRUE(read_augmented_jsonl(bad, lenient, &report).ok());
  EXPECT_EQ(report.rows_skipped, 2);
  EXPECT_THAT(report.problems[1], HasSubstr(":2: not a JSON object"));
}

// Invalid UTF-8 never passes silently: an error naming file:line, field and byte, or a
// counted, named skip under the skip policy. Overlong forms and surrogates are invalid too.
TEST(MoleculeDataset, InvalidUtf8IsABadRowNamingFieldAndByte) {
  const std::string tsv = write_temp("bad_utf8.tsv", "CID\tSMILES\tdescription\n1\tCCO\tGood caf\xC3\xA9.\n"
                                                     "2\tCCO\tBad \xC0\xAF slash.\n3\tC\xED\xA0\x80\tSurrogate.\n");
  absl::StatusOr<std::vector<MoleculeRecord>> records = read_chebi20_tsv(tsv, {});
  ASSERT_FALSE(records.ok());
  EXPECT_THAT(records.status().message(), HasSubstr(tsv + ":3: invalid UTF-8 in the description field at byte 4 (0xc0)"));
  ReadOptions skip;
  skip.bad_rows = BadRowPolicy::kSkip;
  ReadReport report;
  records = read_chebi20_tsv(tsv, skip, &report);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].captions[0], "Good caf\xC3\xA9.");
  EXPECT_EQ(report.rows_skipped, 2);
  ASSERT_EQ(report.problems.size(), 2u);
  EXPECT_THAT(report.problems[1], HasSubstr(":4: invalid UTF-8 in the SMILES field at byte 1 (0xed)"));

  const std::string csv = write_temp("bad_utf8.csv", "CID,SMILES,CAPTION\n1,CCO,\"A, b\"\n1,CCO,\"caf\xFF\"\n");
  records = read_lachebi20_csv(csv, {});
  ASSERT_FALSE(records.ok());
  EXPECT_THAT(records.status().message(), HasSubstr(csv + ":3: invalid UTF-8 in the CAPTION field at byte 3 (0xff)"));

  const std::string jsonl = write_temp("bad_utf8.jsonl", "{\"cid\": \"1\", \"smiles\": \"C\", \"original\": \"x\xFE\"}\n");
  records = read_augmented_jsonl(jsonl, {});
  ASSERT_FALSE(records.ok());
  EXPECT_THAT(records.status().message(), HasSubstr(jsonl + ":1: invalid UTF-8 in the line at byte 42 (0xfe)"));
}

TEST(MoleculeDataset, DispatchesOnExtension) {
  EXPECT_THAT(std::string(read_molecule_dataset("data.parquet", {}).status().message()),
              HasSubstr("unknown dataset format"));
  const std::string tsv = write_temp("d.tsv", "CID\tSMILES\tdescription\n1\tC\tMethane.\n");
  EXPECT_EQ(read_molecule_dataset(tsv, {})->size(), 1u);
}

}  // namespace
// The in-memory readers (what fuzz/ feeds) are the file readers minus the open: same
// records, reports and messages for the same bytes.
TEST(MoleculeDataset, InMemoryReadersEqualTheFileReaders) {
  struct Case {
    const char* name;
    std::string bytes;
    decltype(&read_chebi20_tsv) read;
    decltype(&parse_chebi20_tsv) parse;
  };
  const Case cases[] = {
      {"mem.txt", std::string("CID\tSMILES\tdescription\r\n") + kRealChebiLine + "\n\n2\tCC only two fields\n",
       read_chebi20_tsv, parse_chebi20_tsv},
      {"mem.csv", "CID,SMILES,CAPTION\n1,CCO,\"An alcohol, \"\"ethanol\"\".\"\n1,CCO,second\n2,C\n", read_lachebi20_csv,
       parse_lachebi20_csv},
      {"mem.jsonl", "{\"cid\": \"1\", \"smiles\": \"C\", \"original\": \"methane\", \"rewrites\": [\"CH4\"]}\n[]\n",
       read_augmented_jsonl, parse_augmented_jsonl},
  };
  for (const Case& c : cases) {
    const std::string path = write_temp(c.name, c.bytes);
    for (BadRowPolicy policy : {BadRowPolicy::kFail, BadRowPolicy::kSkip}) {
      ReadOptions options;
      options.bad_rows = policy;
      ReadReport from_file, from_memory;
      const absl::StatusOr<std::vector<MoleculeRecord>> a = c.read(path, options, &from_file);
      const absl::StatusOr<std::vector<MoleculeRecord>> b = c.parse(c.bytes, path, options, &from_memory);
      ASSERT_EQ(a.status(), b.status()) << c.name;
      EXPECT_EQ(from_file.rows_read, from_memory.rows_read) << c.name;
      EXPECT_EQ(from_file.rows_skipped, from_memory.rows_skipped) << c.name;
      EXPECT_EQ(from_file.problems, from_memory.problems) << c.name;
      if (!a.ok()) continue;
      ASSERT_EQ(a->size(), b->size()) << c.name;
      for (size_t i = 0; i < a->size(); ++i) {
        EXPECT_EQ((*a)[i].smiles, (*b)[i].smiles);
        EXPECT_EQ((*a)[i].captions, (*b)[i].captions);
        EXPECT_EQ((*a)[i].source, (*b)[i].source);
      }
    }
  }
}

}  // namespace la3
