// kernels/relative_position.cuh against hand-computed buckets and against every relative
// position in [-1000, 1000] as transformers computes them (tests/fixtures, from
// scripts/make_bucket_golden.py, transformers 4.46.3).
#include "kernels/relative_position.cuh"

#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

namespace la3 {
namespace {

using kernels::t5_relative_position_bucket;

// Hand-computed for the released setting (32 buckets, max distance 128).
// Bidirectional: 16 buckets per side, exact below 8; key after query adds 16;
// beyond: 8 + floor(log(d / 8) / log(128 / 8) * 8), clamped at 15.
//   d=12: log(1.5)/log(16)*8 = 1.17 -> 9; d=16: exactly 2 -> 10; d=64: 6 -> 14; d>=128: 15.
// Causal: 32 buckets for keys at or before the query, exact below 16;
// beyond: 16 + floor(log(d / 16) / log(8) * 16): d=32 -> 16 + 5.33 -> 21; d=64 -> 26.
TEST(RelativePositionBucket, HandComputedValues) {
  struct Row {
    int relative;
    int expected;
  };
  for (const Row& row : {Row{0, 0}, Row{1, 17}, Row{-1, 1}, Row{7, 23}, Row{-7, 7}, Row{8, 24}, Row{-8, 8},
                         Row{12, 25}, Row{16, 26}, Row{-16, 10}, Row{32, 28}, Row{64, 30}, Row{127, 31},
                         Row{128, 31}, Row{-500, 15}}) {
    EXPECT_EQ(t5_relative_position_bucket(row.relative, true, 32, 128), row.expected) << "bidirectional " << row.relative;
  }
  for (const Row& row : {Row{0, 0}, Row{5, 0}, Row{-1, 1}, Row{-15, 15}, Row{-16, 16}, Row{-32, 21}, Row{-64, 26},
                         Row{-127, 31}, Row{-128, 31}, Row{-1000, 31}}) {
    EXPECT_EQ(t5_relative_position_bucket(row.relative, false, 32, 128), row.expected) << "causal " << row.relative;
  }
}

TEST(RelativePositionBucket, MatchesTransformersEverywhere) {
  std::ifstream stream(std::string(LA3_TEST_FIXTURES_DIR) + "/relative_position_buckets.json");
  ASSERT_TRUE(stream) << "missing fixture relative_position_buckets.json";
  const nlohmann::json golden = nlohmann::json::parse(stream);
  const int first = golden["first_position"].get<int>();
  int checked = 0;
  for (const auto& table : golden["tables"]) {
    const bool bidirectional = table["bidirectional"].get<bool>();
    const int buckets = table["num_buckets"].get<int>();
    const int distance = table["max_distance"].get<int>();
    const std::vector<int> expected = table["buckets"].get<std::vector<int>>();
    for (size_t i = 0; i < expected.size(); ++i) {
      const int relative = first + static_cast<int>(i);
      ASSERT_EQ(t5_relative_position_bucket(relative, bidirectional, buckets, distance), expected[i])
          << "relative " << relative << (bidirectional ? " bidirectional " : " causal ") << buckets << "/" << distance;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 7 * 2001);
}

}  // namespace
}  // namespace la3
