// Philox4x32-10 against the Random123 known-answer vectors (kat_vectors: counter[4] key[2]
// -> output[4]), and the LA3 keying built on it.
#include "kernels/philox.cuh"

#include <gtest/gtest.h>

#include <set>

namespace la3 {
namespace {

struct KnownAnswer {
  uint32_t counter[4];
  uint32_t key[2];
  uint32_t expected[4];
};

TEST(Philox, Random123KnownAnswers) {
  const KnownAnswer cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const KnownAnswer& c : cases) {
    uint32_t out[4];
    kernels::philox4x32_10(c.counter, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.expected[i]) << "word " << i;
  }
}

TEST(Philox, ElementIndexMapsToCounterBlockAndWord) {
  // Element 4n + w is word w of the block with counter (n, 0, stream, step), key = seed.
  const uint64_t seed = 0x299f31d0a4093822ull;
  const uint32_t counter[4] = {5, 0, 7, 3};
  const uint32_t key[2] = {0xa4093822u, 0x299f31d0u};
  uint32_t block[4];
  kernels::philox4x32_10(counter, key, block);
  for (uint32_t w = 0; w < 4; ++w) EXPECT_EQ(kernels::philox_bits(seed, 3, 7, 4 * 5 + w), block[w]);
  // Indices above 2^34 reach the counter's second word.
  const uint32_t high_counter[4] = {1, 1, 7, 3};
  kernels::philox4x32_10(high_counter, key, block);
  EXPECT_EQ(kernels::philox_bits(seed, 3, 7, ((uint64_t{1} << 32) + 1) * 4 + 2), block[2]);
}

TEST(Philox, UniformIsInUnitIntervalAndStreamsDiffer) {
  double sum = 0.0;
  std::set<float> distinct;
  for (uint64_t i = 0; i < 20000; ++i) {
    const float u = kernels::philox_uniform(1, 2, 3, i);
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    distinct.insert(u);
  }
  EXPECT_NEAR(sum / 20000.0, 0.5, 0.01);  // sd of the mean ~0.002
  EXPECT_GT(distinct.size(), 19900u);
  EXPECT_NE(kernels::philox_bits(1, 2, 3, 0), kernels::philox_bits(1, 2, 4, 0));  // stream
  EXPECT_NE(kernels::philox_bits(1, 2, 3, 0), kernels::philox_bits(1, 3, 3, 0));  // step
  EXPECT_NE(kernels::philox_bits(1, 2, 3, 0), kernels::philox_bits(2, 2, 3, 0));  // seed
}

}  // namespace
}  // namespace la3
