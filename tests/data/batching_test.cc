// Tokenising molecule groups, seeded length-bucketed batch plans, and collation.
#include "data/batching.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

namespace la3 {
namespace {

using ::testing::HasSubstr;

Tokenizer sample_tokenizer() {
  return std::move(*Tokenizer::load(std::string(LA3_TEST_FIXTURES_DIR) + "/tokenizer/sample.model"));
}

std::vector<MoleculeRecord> records() {
  return {
      {"1", "CCO", {"The molecule is an alcohol.", "An alcohol it is.", "Ethanol, an alcohol."}, "a:1"},
      {"2", "CC(=O)O", {"The molecule is a monocarboxylic acid that has a role as a metabolite."}, "a:2"},
      {"3", "C1=CC=CC=C1", {"The molecule is an aromatic ring.", "A benzene ring."}, "a:3"},
  };
}

TEST(Batching, CaptionToSmilesGroupsPerMoleculeUpToKRewrites) {
  const Tokenizer tokenizer = sample_tokenizer();
  TokenizeOptions options;
  options.direction = Direction::kCaptionToSmiles;
  options.max_rewrites = 1;
  options.caption_per_group = false;
  TokenizeReport report;
  const std::vector<ExampleGroup> groups = *tokenize_groups(records(), tokenizer, options, &report);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].examples.size(), 2u);  // c_0 and one rewrite (k = 1)
  EXPECT_EQ(groups[1].examples.size(), 1u);
  EXPECT_EQ(report.examples, 5);
  // caption -> SMILES: the targets of a group are the same SMILES, the sources differ.
  EXPECT_EQ(groups[0].examples[0].target, *tokenizer.encode("CCO"));
  EXPECT_EQ(groups[0].examples[1].target, groups[0].examples[0].target);
  EXPECT_EQ(groups[0].examples[1].source, *tokenizer.encode("An alcohol it is."));

  options.direction = Direction::kSmilesToCaption;
  options.caption_per_group = true;
  const std::vector<ExampleGroup> rows = *tokenize_groups(records(), tokenizer, options);
  EXPECT_EQ(rows.size(), 5u);  // mean mode: every caption is its own group
  EXPECT_EQ(rows[1].examples[0].source, *tokenizer.encode("CCO"));
  EXPECT_EQ(rows[1].examples[0].target, *tokenizer.encode("An alcohol it is."));
}

TEST(Batching, TruncationKeepsEosAndIsCounted) {
  const Tokenizer tokenizer = sample_tokenizer();
  TokenizeOptions options;
  options.max_source_length = 5;
  options.max_target_length = 3;
  TokenizeReport report;
  const std::vector<ExampleGroup> groups = *tokenize_groups(records(), tokenizer, options, &report);
  for (const ExampleGroup& g : groups) {
    for (const Example& e : g.examples) {
      EXPECT_LE(e.source.size(), 5u);
      EXPECT_LE(e.target.size(), 3u);
      EXPECT_EQ(e.source.back(), 1);
      EXPECT_EQ(e.target.back(), 1);
    }
  }
  EXPECT_EQ(report.sources_truncated, 3);
  EXPECT_GE(report.targets_truncated, 2);
  options.max_source_length = 1;
  EXPECT_THAT(std::string(tokenize_groups(records(), tokenizer, options).status().message()), HasSubstr(">= 2"));
}

TEST(Batching, PlanIsSeededCompleteAndBucketed) {
  std::vector<ExampleGroup> groups;
  for (int i = 0; i < 37; ++i) {
    groups.push_back(ExampleGroup{std::to_string(i), {Example{std::vector<int64_t>(static_cast<size_t>(1 + (i * 7) % 23), 5), {5, 1}}}});
  }
  BatchPlanOptions options;
  options.groups_per_batch = 4;
  options.seed = 9;
  options.bucket_window_batches = 3;
  const auto plan = make_batch_plan(groups, options);
  EXPECT_EQ(plan, make_batch_plan(groups, options));  // deterministic
  std::set<size_t> seen;
  for (const auto& batch : plan) {
    EXPECT_LE(batch.size(), 4u);
    seen.insert(batch.begin(), batch.end());
  }
  EXPECT_EQ(seen.size(), 37u);
  options.epoch = 1;
  EXPECT_NE(plan, make_batch_plan(groups, options));  // a new epoch reshuffles
  // Bucketing: within a batch lengths are close (each window of 12 is sorted).
  options.epoch = 0;
  size_t total_spread = 0;
  for (const auto& batch : make_batch_plan(groups, options)) {
    size_t low = 100, high = 0;
    for (size_t i : batch) {
      low = std::min(low, groups[i].examples[0].source.size());
      high = std::max(high, groups[i].examples[0].source.size());
    }
    total_spread += high - low;
  }
  options.bucket_window_batches = 1;
  size_t unbucketed_spread = 0;
  for (const auto& batch : make_batch_plan(groups, options)) {
    size_t low = 100, high = 0;
    for (size_t i : batch) {
      low = std::min(low, groups[i].examples[0].source.size());
      high = std::max(high, groups[i].examples[0].source.size());
    }
    unbucketed_spread += high - low;
  }
  EXPECT_LT(total_spread, unbucketed_spread);
}

TEST(Batching, CollatePadsAndRecordsGroups) {
  std::vector<ExampleGroup> groups = {
      ExampleGroup{"a", {Example{{5, 6, 1}, {7, 1}}, Example{{8, 1}, {7, 1}}}},
      ExampleGroup{"b", {Example{{9, 9, 9, 9, 1}, {3, 4, 5, 1}}}},
  };
  const Batch batch = collate(groups, {1, 0});
  EXPECT_EQ(batch.input_ids.shape(), (Shape{3, 5}));
  EXPECT_EQ(batch.labels.shape(), (Shape{3, 4}));
  EXPECT_EQ(batch.group, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(batch.groups, 2);
  EXPECT_EQ(batch.input_ids.to_vector<int64_t>(),
            (std::vector<int64_t>{9, 9, 9, 9, 1, /**/ 5, 6, 1, 0, 0, /**/ 8, 1, 0, 0, 0}));
  EXPECT_EQ(batch.attention_mask.to_vector<int64_t>(),
            (std::vector<int64_t>{1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, /**/ 1, 1, 0, 0, 0}));
  EXPECT_EQ(batch.labels.to_vector<int64_t>(),
            (std::vector<int64_t>{3, 4, 5, 1, /**/ 7, 1, -100, -100, /**/ 7, 1, -100, -100}));
  EXPECT_EQ(batch.target_tokens, 8);
  EXPECT_EQ(batch.source_tokens, 10);
  // The decoder inputs: each target shifted right behind the start id, padding -> pad id.
  EXPECT_EQ(batch.decoder_input_ids.to_vector<int64_t>(),
            (std::vector<int64_t>{0, 3, 4, 5, /**/ 0, 7, 1, 0, /**/ 0, 7, 1, 0}));
  const Batch other_ids = collate(groups, {1, 0}, /*pad_id=*/2, /*decoder_start_id=*/6);
  EXPECT_EQ(other_ids.decoder_start_id, 6);
  EXPECT_EQ(other_ids.pad_id, 2);
  EXPECT_EQ(other_ids.decoder_input_ids.to_vector<int64_t>(),
            (std::vector<int64_t>{6, 3, 4, 5, /**/ 6, 7, 1, 2, /**/ 6, 7, 1, 2}));
}

TEST(Batching, DirectionNames) {
  EXPECT_EQ(*parse_direction("smiles2caption"), Direction::kSmilesToCaption);
  EXPECT_THAT(std::string(parse_direction("both").status().message()), HasSubstr("caption2smiles or smiles2caption"));
}

}  // namespace
}  // namespace la3
