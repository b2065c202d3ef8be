// kernels/relative_position.cuh (t5_relative_position_bucket) against transformers'
// T5Attention._relative_position_bucket:
//   - a literal table of boundary positions for six configurations (below),
//   - every relative position in [-1000, 1000] for seven configurations
//     (tests/fixtures/relative_position_buckets.json, from scripts/make_bucket_golden.py),
//   - hand-derived values that say why the table looks the way it does.
#include "kernels/relative_position.cuh"

#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace la3 {
namespace {

using kernels::t5_relative_position_bucket;

struct BucketConfig {
  bool bidirectional;
  int num_buckets;
  int max_distance;
};

// The columns of kTransformersBuckets. 32/128 is every released T5 (MolT5 included);
// 16/64 a smaller power-of-two table; 11/40 bidirectional has an odd bucket count (5 per
// side, bucket 10 never used) and 10/14 causal a max_distance that is no power of two.
constexpr std::array<BucketConfig, 6> kConfigs = {{
    {true, 32, 128},
    {false, 32, 128},
    {true, 16, 64},
    {false, 16, 64},
    {true, 11, 40},
    {false, 10, 14},
}};

struct BucketRow {
  int relative_position;  // key position - query position
  std::array<int, 6> buckets;  // one per kConfigs entry
};

// Generated with transformers 4.46.3 (torch 2.15.0) by:
//   python3 -c "
//   import torch
//   from transformers.models.t5.modeling_t5 import T5Attention
//   mags = [1, 2, 5, 6, 7, 8, 11, 12, 15, 16, 22, 23, 31, 32, 45, 64, 90, 127, 128, 129, 200, 500]
//   rels = sorted([0] + mags + [-m for m in mags])
//   configs = [(True, 32, 128), (False, 32, 128), (True, 16, 64), (False, 16, 64), (True, 11, 40), (False, 10, 14)]
//   cols = [T5Attention._relative_position_bucket(torch.tensor(rels), bidirectional=b, num_buckets=n,
//                                                  max_distance=m).tolist() for b, n, m in configs]
//   for i, r in enumerate(rels): print('{%5d, {%s}},' % (r, ', '.join('%2d' % c[i] for c in cols)))"
//
// Checked by hand for bidirectional 32/128 (16 buckets per side, exact below 8, keys after
// the query add 16, beyond: 8 + floor(log(d / 8) / log(128 / 8) * 8), at most 15):
//   +1 -> 16 + 1 = 17;  -1 -> 1;  -8 -> 8 + floor(log(1)) = 8;
//   -12 -> 8 + floor(log(1.5) / log(16) * 8 = 1.17) = 9;
//   -16 -> 8 + floor(log(2) / log(16) * 8) = 10: exactly 2 in real arithmetic, and the float32
//          evaluation must land on 2 as torch's does, not on 1.99...;
//   +64 -> 16 + 8 + floor(log(8) / log(16) * 8 = 6) = 30;  +127, +128, -500 -> last bucket (31, 15).
// and for causal 32/128 (all 32 buckets for keys at or before the query, exact below 16,
// beyond: 16 + floor(log(d / 16) / log(8) * 16), at most 31; keys after the query: 0):
//   +1 -> 0;  -15 -> 15;  -16 -> 16;  -32 -> 16 + floor(16 / 3 = 5.33) = 21;
//   -64 -> 16 + floor(32 / 3 = 10.67) = 26;  -90 -> 16 + floor(13.29) = 29;  -127 -> 31.
constexpr BucketRow kTransformersBuckets[] = {
    {-500, {15, 31, 7, 15, 4, 9}},
    {-200, {15, 31, 7, 15, 4, 9}},
    {-129, {15, 31, 7, 15, 4, 9}},
    {-128, {15, 31, 7, 15, 4, 9}},
    {-127, {15, 31, 7, 15, 4, 9}},
    {-90, {14, 29, 7, 15, 4, 9}},
    {-64, {14, 26, 7, 15, 4, 9}},
    {-45, {12, 23, 7, 14, 4, 9}},
    {-32, {12, 21, 7, 13, 4, 9}},
    {-31, {11, 21, 6, 13, 4, 9}},
    {-23, {11, 18, 6, 12, 4, 9}},
    {-22, {10, 18, 6, 11, 4, 9}},
    {-16, {10, 16, 6, 10, 4, 9}},
    {-15, {9, 15, 5, 10, 4, 9}},
    {-12, {9, 12, 5, 9, 3, 9}},
    {-11, {8, 11, 5, 9, 3, 8}},
    {-8, {8, 8, 5, 8, 3, 7}},
    {-7, {7, 7, 4, 7, 3, 6}},
    {-6, {6, 6, 4, 6, 3, 5}},
    {-5, {5, 5, 4, 5, 2, 5}},
    {-2, {2, 2, 2, 2, 2, 2}},
    {-1, {1, 1, 1, 1, 1, 1}},
    {0, {0, 0, 0, 0, 0, 0}},
    {1, {17, 0, 9, 0, 6, 0}},
    {2, {18, 0, 10, 0, 7, 0}},
    {5, {21, 0, 12, 0, 7, 0}},
    {6, {22, 0, 12, 0, 8, 0}},
    {7, {23, 0, 12, 0, 8, 0}},
    {8, {24, 0, 13, 0, 8, 0}},
    {11, {24, 0, 13, 0, 8, 0}},
    {12, {25, 0, 13, 0, 8, 0}},
    {15, {25, 0, 13, 0, 9, 0}},
    {16, {26, 0, 14, 0, 9, 0}},
    {22, {26, 0, 14, 0, 9, 0}},
    {23, {27, 0, 14, 0, 9, 0}},
    {31, {27, 0, 14, 0, 9, 0}},
    {32, {28, 0, 15, 0, 9, 0}},
    {45, {28, 0, 15, 0, 9, 0}},
    {64, {30, 0, 15, 0, 9, 0}},
    {90, {30, 0, 15, 0, 9, 0}},
    {127, {31, 0, 15, 0, 9, 0}},
    {128, {31, 0, 15, 0, 9, 0}},
    {129, {31, 0, 15, 0, 9, 0}},
    {200, {31, 0, 15, 0, 9, 0}},
    {500, {31, 0, 15, 0, 9, 0}},
};

std::string describe(const BucketConfig& config) {
  return std::string(config.bidirectional ? "bidirectional " : "causal ") + std::to_string(config.num_buckets) + "/" +
         std::to_string(config.max_distance);
}

TEST(RelativePositionBucket, MatchesTransformersTableAtBoundaries) {
  for (const BucketRow& row : kTransformersBuckets) {
    for (size_t c = 0; c < kConfigs.size(); ++c) {
      const BucketConfig& config = kConfigs[c];
      EXPECT_EQ(t5_relative_position_bucket(row.relative_position, config.bidirectional, config.num_buckets,
                                            config.max_distance),
                row.buckets[c])
          << describe(config) << ", relative position " << row.relative_position;
    }
  }
}

TEST(RelativePositionBucket, HandDerivedValues) {
  // The derivations are in the comment above kTransformersBuckets.
  EXPECT_EQ(t5_relative_position_bucket(1, true, 32, 128), 17);
  EXPECT_EQ(t5_relative_position_bucket(-1, true, 32, 128), 1);
  EXPECT_EQ(t5_relative_position_bucket(-8, true, 32, 128), 8);
  EXPECT_EQ(t5_relative_position_bucket(-12, true, 32, 128), 9);
  EXPECT_EQ(t5_relative_position_bucket(-16, true, 32, 128), 10);
  EXPECT_EQ(t5_relative_position_bucket(64, true, 32, 128), 30);
  EXPECT_EQ(t5_relative_position_bucket(-500, true, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(1, false, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(-15, false, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(-16, false, 32, 128), 16);
  EXPECT_EQ(t5_relative_position_bucket(-32, false, 32, 128), 21);
  EXPECT_EQ(t5_relative_position_bucket(-64, false, 32, 128), 26);
  EXPECT_EQ(t5_relative_position_bucket(-90, false, 32, 128), 29);
  EXPECT_EQ(t5_relative_position_bucket(-127, false, 32, 128), 31);
}

// Every position in [-1000, 1000] for (bidirectional, causal) x (32/128, 16/64, 10/14) and
// bidirectional 64/256, as transformers 4.46.3 computes them (the fixture records the
// versions; regenerate with `python3 scripts/make_bucket_golden.py`).
TEST(RelativePositionBucket, MatchesTransformersEverywhere) {
  std::ifstream stream(std::string(LA3_TEST_FIXTURES_DIR) + "/relative_position_buckets.json");
  ASSERT_TRUE(stream) << "missing fixture relative_position_buckets.json";
  const nlohmann::json golden = nlohmann::json::parse(stream);
  EXPECT_EQ(golden["transformers"].get<std::string>(), "4.46.3");
  const int first = golden["first_position"].get<int>();
  int checked = 0;
  for (const auto& table : golden["tables"]) {
    const BucketConfig config{table["bidirectional"].get<bool>(), table["num_buckets"].get<int>(),
                              table["max_distance"].get<int>()};
    const std::vector<int> expected = table["buckets"].get<std::vector<int>>();
    ASSERT_EQ(expected.size(), 2001u) << describe(config);
    for (size_t i = 0; i < expected.size(); ++i) {
      const int relative = first + static_cast<int>(i);
      ASSERT_EQ(t5_relative_position_bucket(relative, config.bidirectional, config.num_buckets, config.max_distance),
                expected[i])
          << describe(config) << ", relative position " << relative;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 * 2001);
}

TEST(RelativePositionBucket, StaysInsideTheTableAndIsMonotoneInDistance) {
  // For every usable configuration (at least one exact bucket per side, max_distance beyond
  // the exact range, as ops::attention requires) a bucket indexes the table, and moving a key
  // further from the query never moves it to a nearer bucket.
  for (const BucketConfig& config : kConfigs) {
    int previous_before = -1, previous_after = -1;
    for (int distance = 0; distance <= 3000; ++distance) {
      const int before = t5_relative_position_bucket(-distance, config.bidirectional, config.num_buckets,
                                                     config.max_distance);
      const int after = t5_relative_position_bucket(distance, config.bidirectional, config.num_buckets,
                                                    config.max_distance);
      ASSERT_GE(before, 0) << describe(config) << ", distance " << distance;
      ASSERT_LT(before, config.num_buckets) << describe(config) << ", distance " << distance;
      ASSERT_GE(after, 0) << describe(config) << ", distance " << distance;
      ASSERT_LT(after, config.num_buckets) << describe(config) << ", distance " << distance;
      ASSERT_GE(before, previous_before) << describe(config) << ", distance " << distance;
      ASSERT_GE(after, previous_after) << describe(config) << ", distance " << distance;
      previous_before = before;
      previous_after = after;
    }
  }
}

}  // namespace
}  // namespace la3
