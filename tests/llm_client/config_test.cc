// Prompt templates, the augment YAML configuration and the evaluation-split guard.
#include <gtest/gtest.h>

#include "engine/io/file_io.h"
#include "llm_client/augment_config.h"
#include "llm_client/augment_pipeline.h"
#include "llm_client/prompt_template.h"

namespace la3::llm {
namespace {

TEST(PromptTemplate, RendersBothPlaceholdersOnce) {
  auto t = PromptTemplate::parse("S={smiles} C={caption} {other}", "t.txt");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->render("CCO", "has {smiles} inside"), "S=CCO C=has {smiles} inside {other}");
  EXPECT_EQ(t->sha256().size(), 64u);
}

TEST(PromptTemplate, AMissingPlaceholderIsAConfigError) {
  auto t = PromptTemplate::parse("Rewrite: {caption}", "prompts/bad.txt");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(std::string(t.status().message()),
            "prompts/bad.txt: the prompt template has no {smiles} placeholder (both {smiles} and {caption} are required)");
  EXPECT_FALSE(PromptTemplate::parse("no placeholders at all", "x").ok());
  auto missing = PromptTemplate::load("/nonexistent/template.txt");
  EXPECT_NE(std::string(missing.status().message()).find("/nonexistent/template.txt"), std::string::npos);
}

TEST(PromptTemplate, TheShippedDefaultIsValid) {
  auto t = PromptTemplate::load(std::string(LA3_SOURCE_DIR) + "/configs/prompts/la3_rewrite.txt");
  ASSERT_TRUE(t.ok()) << t.status();
}

TEST(AugmentConfig, TheShippedConfigParsesAndMatchesTheDefaults) {
  auto c = load_augment_config(std::string(LA3_SOURCE_DIR) + "/configs/augment.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  const AugmentConfig defaults;
  EXPECT_EQ(c->client.base_url, defaults.client.base_url);
  EXPECT_EQ(c->client.max_in_flight, defaults.client.max_in_flight);
  EXPECT_EQ(c->client.max_attempts, defaults.client.max_attempts);
  EXPECT_EQ(c->k, defaults.k);
  EXPECT_EQ(c->template_path, defaults.template_path);
  EXPECT_EQ(c->filter.preamble_prefixes, defaults.filter.preamble_prefixes);
  EXPECT_DOUBLE_EQ(c->filter.min_entity_recall, defaults.filter.min_entity_recall);
  EXPECT_EQ(c->max_rejections, defaults.max_rejections);
  EXPECT_EQ(c->api_key_env, "OPENAI_API_KEY");
}

// A list or mapping as a key used to throw out of the parser (yaml-cpp's bad conversion:
// `engine augment` died in std::terminate); found by the config fuzz targets in fuzz/.
TEST(AugmentConfig, KeysThatAreNotNamesAreErrorsNamingTheLine) {
  EXPECT_EQ(parse_augment_config("[a, b]: 1\n", "k.yaml").status().message(),
            "k.yaml:1: a key of the document must be a plain name, not a list or mapping");
  EXPECT_EQ(parse_augment_config("endpoint:\n  model: m\n  ? {x: 1}\n  : 2\n", "k.yaml").status().message(),
            "k.yaml:3: a key of endpoint must be a plain name, not a list or mapping");
}

TEST(AugmentConfig, UnknownKeysAndBadValuesNameFileAndLine) {
  auto unknown = parse_augment_config("endpoint:\n  model: m\n  temprature: 0.5\n", "a.yaml");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(std::string(unknown.status().message()).find("a.yaml:3: unknown key 'endpoint.temprature'"), std::string::npos)
      << unknown.status();
  auto bad = parse_augment_config("concurrency:\n  max_in_flight: lots\n", "b.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("b.yaml:2: concurrency.max_in_flight has an invalid value"),
            std::string::npos)
      << bad.status();
}

TEST(AugmentConfig, DerivedPathsAndRangeChecks) {
  auto c = parse_augment_config("endpoint: {model: m}\noutput: {jsonl: runs/x/train.jsonl}\n", "c.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_TRUE(c->finalize().ok());
  EXPECT_EQ(c->output_csv, "runs/x/train.csv");
  EXPECT_EQ(c->journal, "runs/x/train.journal.jsonl");
  c->k = 0;
  EXPECT_FALSE(c->finalize().ok());
  auto no_model = parse_augment_config("", "d.yaml");
  EXPECT_NE(std::string(no_model->finalize().message()).find("endpoint.model is required"), std::string::npos);
}

TEST(AugmentConfig, EvaluationSplitsAreRecognised) {
  EXPECT_EQ(eval_split_name("data/chebi20/validation.txt"), "validation");
  EXPECT_EQ(eval_split_name("/data/chebi20/test.txt"), "test");
  EXPECT_EQ(eval_split_name("data/lachebi_val.csv"), "val");
  EXPECT_EQ(eval_split_name("data/train.txt"), "");
  EXPECT_EQ(eval_split_name("data/subset_train.txt"), "");
  EXPECT_EQ(eval_split_name("data/contest.txt"), "");
}

}  // namespace
}  // namespace la3::llm
