// `engine generate` end to end: every decoding option of the library reachable from the
// command line (the CLI's JSONL equals la3::Decoder with the same options, token for token),
// the input formats, and clear errors for bad flags and bad input bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "la3/decoder.h"
#include "model/t5_checkpoint.h"
#include "tests/support/run_command.h"

namespace la3 {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const std::string kSample = std::string(LA3_SOURCE_DIR) + "/data/sample";
const std::string kEngine = LA3_ENGINE_BINARY;

std::string temp_dir() {
  const std::string dir = ::testing::TempDir() + "/la3_generate_cli";
  fs::create_directories(dir);
  return dir;
}

// A random tiny MolT5-architecture checkpoint with the sample tokenizer.
std::string make_checkpoint() {
  const std::string dir = temp_dir() + "/checkpoint";
  if (fs::exists(dir + "/spiece.model")) return dir;
  T5Config config = *T5Config::preset("tiny");
  config.vocab_size = 356;  // 256 pieces + 100 sentinels
  config.dropout_rate = 0.0f;
  EXPECT_TRUE(save_t5_checkpoint(*T5Model::create(config, 11), dir).ok());
  fs::copy_file(kSample + "/spiece.model", dir + "/spiece.model", fs::copy_options::overwrite_existing);
  return dir;
}

const std::vector<std::string> kCaptions = {
    "The molecule is an alcohol.",
    "The molecule is a monocarboxylic acid that has a role as a metabolite.",
    "A benzene ring bearing a nitro group.",
};

std::string write_lines(const std::string& name, const std::vector<std::string>& lines) {
  const std::string path = temp_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary);
  for (const std::string& line : lines) out << line << "\n";
  return path;
}

testing::RunResult run_generate(const std::string& input, const std::string& out, const std::string& flags) {
  return testing::run_command(kEngine + " generate --checkpoint " + make_checkpoint() + " --input " + input +
                              " --direction caption2smiles --out " + out + " " + flags);
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

struct Case {
  std::string flags;
  TranslationOptions options;
};

std::vector<Case> cases() {
  std::vector<Case> all;
  {
    Case c{"--num-beams 4 --num-return-sequences 3 --length-penalty 0.6 --early-stopping never --max-new-tokens 9", {}};
    c.options.num_beams = 4;
    c.options.num_hypotheses = 3;
    c.options.length_penalty = 0.6;
    c.options.early_stopping = "never";
    c.options.max_new_tokens = 9;
    all.push_back(c);
  }
  {
    Case c{"--num-beams 3 --early-stopping true --min-new-tokens 6 --max-new-tokens 10 --no-repeat-ngram-size 2", {}};
    c.options.num_beams = 3;
    c.options.early_stopping = "true";
    c.options.min_length = 7;  // the decoder start token counts
    c.options.max_new_tokens = 10;
    c.options.no_repeat_ngram_size = 2;
    all.push_back(c);
  }
  {
    Case c{"--do-sample --seed 5 --temperature 0.8 --top-k 7 --top-p 0.9 --max-new-tokens 8 --repetition-penalty 1.3", {}};
    c.options.sampling = true;
    c.options.seed = 5;
    c.options.temperature = 0.8;
    c.options.top_k = 7;
    c.options.top_p = 0.9;
    c.options.max_new_tokens = 8;
    c.options.repetition_penalty = 1.3;
    all.push_back(c);
  }
  {
    Case c{"--max-length 6", {}};
    c.options.max_new_tokens = 5;  // max_length counts the decoder start token
    all.push_back(c);
  }
  return all;
}

TEST(GenerateCli, EveryDecodingOptionReachesTheDecoder) {
  const std::string input = write_lines("captions.txt", kCaptions);
  auto decoder = Decoder::Load(make_checkpoint());
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  for (const Case& c : cases()) {
    const std::string out = temp_dir() + "/out.jsonl";
    const testing::RunResult run = run_generate(input, out, c.flags);
    ASSERT_EQ(run.exit_code, 0) << c.flags << "\n" << run.output;
    const std::vector<nlohmann::json> rows = read_jsonl(out);
    const std::vector<Translation> expected = *(*decoder)->Translate(kCaptions, c.options);
    ASSERT_EQ(rows.size(), kCaptions.size()) << c.flags;
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i]["index"], i);
      EXPECT_EQ(rows[i]["input"], kCaptions[i]);
      EXPECT_EQ(rows[i]["source"], input + ":" + std::to_string(i + 1));
      const nlohmann::json& hypotheses = rows[i]["hypotheses"];
      ASSERT_EQ(hypotheses.size(), expected[i].hypotheses.size()) << c.flags;
      for (size_t h = 0; h < hypotheses.size(); ++h) {
        EXPECT_EQ(hypotheses[h]["token_ids"].get<std::vector<int64_t>>(), expected[i].hypotheses[h].token_ids)
            << c.flags << " input " << i << " hypothesis " << h;
        EXPECT_NEAR(hypotheses[h]["score"].get<double>(), expected[i].hypotheses[h].score, 1e-5) << c.flags;
        EXPECT_EQ(hypotheses[h]["text"], expected[i].hypotheses[h].text) << c.flags;
        EXPECT_TRUE(hypotheses[h].contains("valid_smiles"));
      }
    }
  }
}

TEST(GenerateCli, TsvHoldsTheBestHypothesisOfTheJsonl) {
  const std::string input = write_lines("captions_tsv.txt", kCaptions);
  const std::string tsv = temp_dir() + "/best.tsv", jsonl = temp_dir() + "/best.jsonl";
  ASSERT_EQ(run_generate(input, tsv, "--num-beams 3 --max-new-tokens 8").exit_code, 0);
  ASSERT_EQ(run_generate(input, jsonl, "--num-beams 3 --num-return-sequences 3 --max-new-tokens 8").exit_code, 0);
  std::ifstream in(tsv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "description\tground truth\toutput");
  const std::vector<nlohmann::json> rows = read_jsonl(jsonl);
  for (size_t i = 0; i < kCaptions.size(); ++i) {
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(line, kCaptions[i] + "\t\t" + rows[i]["hypotheses"][0]["text"].get<std::string>());
  }
}

TEST(GenerateCli, SamplingIsReproducibleFromItsSeed) {
  const std::string input = write_lines("captions_seed.txt", kCaptions);
  const std::string a = temp_dir() + "/a.jsonl", b = temp_dir() + "/b.jsonl";
  ASSERT_EQ(run_generate(input, a, "--do-sample --seed 9 --top-k 0 --max-new-tokens 10").exit_code, 0);
  ASSERT_EQ(run_generate(input, b, "--do-sample --seed 9 --top-k 0 --max-new-tokens 10").exit_code, 0);
  EXPECT_EQ(read_jsonl(a), read_jsonl(b));
}

TEST(GenerateCli, InputFormats) {
  // A .txt of plain captions is plain lines; ChEBI-20's own .txt table is a table.
  const std::string plain = write_lines("plain.txt", kCaptions);
  const std::string out = temp_dir() + "/formats.jsonl";
  ASSERT_EQ(run_generate(plain, out, "--max-new-tokens 4").exit_code, 0);
  EXPECT_EQ(read_jsonl(out).size(), 3u);
  const std::string table = write_lines("chebi.txt", {"CID\tSMILES\tdescription", "1\tCCO\tThe molecule is ethanol.",
                                                      "2\tC\tThe molecule is methane."});
  ASSERT_EQ(run_generate(table, out, "--max-new-tokens 4").exit_code, 0);
  std::vector<nlohmann::json> rows = read_jsonl(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["input"], "The molecule is ethanol.");
  EXPECT_EQ(rows[0]["ground_truth"], "CCO");
  EXPECT_EQ(rows[1]["source"], table + ":3");
  // Forced formats: the table read as lines holds its header as an input.
  ASSERT_EQ(run_generate(table, out, "--max-new-tokens 4 --input-format lines").exit_code, 0);
  rows = read_jsonl(out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["input"], "CID\tSMILES\tdescription");
  // Plain lines forced to be a table fail on the header, naming file:line.
  testing::RunResult run = run_generate(plain, out, "--input-format tsv");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr(plain + ":1: expected the ChEBI-20 header"));
  run = run_generate(plain, out, "--input-format xml");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--input-format 'xml': expected auto, tsv"));
}

TEST(GenerateCli, InvalidUtf8InputIsAnErrorNamingLineAndByte) {
  const std::string bad = write_lines("bad_utf8.txt", {"The molecule is an alcohol.", "An acid \xC3\x28 here."});
  const std::string out = temp_dir() + "/bad.tsv";
  fs::remove(out);
  const testing::RunResult run = run_generate(bad, out, "");
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.output, HasSubstr(bad + ":2: invalid UTF-8 in the line at byte 8 (0xc3)"));
  EXPECT_FALSE(fs::exists(out));
  // The same in a ChEBI-20 table: the field is named.
  const std::string table = write_lines("bad_utf8.tsv", {"CID\tSMILES\tdescription", "1\tCC\xFFO\tEthanol."});
  const testing::RunResult table_run = run_generate(table, out, "");
  EXPECT_EQ(table_run.exit_code, 1);
  EXPECT_THAT(table_run.output, HasSubstr(table + ":2: invalid UTF-8 in the SMILES field at byte 2 (0xff)"));
}

TEST(GenerateCli, BadFlagsAreUsageErrorsNamingTheFlag) {
  const std::string input = write_lines("flags.txt", kCaptions);
  const std::string out = temp_dir() + "/flags.tsv";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--top-p abc --do-sample", "--top-p 'abc': expected a finite number"},
      {"--temperature nan --do-sample", "--temperature 'nan': expected a finite number"},
      {"--seed -1 --do-sample", "--seed '-1': expected a non-negative integer"},
      {"--top-k 5", "--top-k applies to sampling: add --do-sample"},
      {"--early-stopping maybe", "--early-stopping 'maybe': expected true, false or never"},
      {"--num-beams 2 --num-return-sequences 2", "write --out FILE.jsonl for --num-return-sequences > 1"},
      {"--max-length 9 --max-new-tokens 4", "give --max-new-tokens or --max-length, not both"},
      {"--min-new-tokens -2", "--min-new-tokens must be >= 0"},
      {"--num-beams 99999999999", "--num-beams '99999999999': expected an integer"},
      {"--batch-size 0", "--batch-size must be >= 1"},
  };
  for (const auto& [flags, message] : cases) {
    const testing::RunResult run = run_generate(input, out, flags);
    EXPECT_EQ(run.exit_code, 2) << flags << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(message)) << flags;
  }
  // A value the library refuses comes back as a usage error too.
  const testing::RunResult run = run_generate(input, temp_dir() + "/x.jsonl", "--num-beams 2 --num-return-sequences 3");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("num_return_sequences (3) must be between 1 and num_beams (2)"));
}

}  // namespace
}  // namespace la3
