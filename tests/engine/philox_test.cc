// Philox4x32-10 against the Random123 known-answer vectors (kat_vectors: counter[4] key[2]
// -> output[4]), and the LA3 keying built on it.
//
// Where the expected numbers come from:
//  - The three "philox4x32 10" lines of Random123's tests/kat_vectors (DEShawResearch/random123;
//    the same three lines appear verbatim in many independent ports, e.g. the kat table of
//    E. Sarmas' philox.py). They were also reproduced by an independent Python implementation
//    written from the SC'11 paper (below).
//  - Single-bit counters/keys from Random123's examples/kat_vectors (as mirrored in
//    girving/random123-manual), reproduced by the same Python implementation.
//  - The LA3-keyed values (philox_bits / philox_uniform) were computed with that Python
//    implementation and the keying documented in kernels/philox.cuh:
//
//      M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
//      def philox(c, k, rounds=10):
//          for r in range(rounds):
//              if r: k = [(k[0] + W0) & 0xffffffff, (k[1] + W1) & 0xffffffff]
//              p0, p1 = M0 * c[0], M1 * c[2]
//              c = [((p1 >> 32) ^ c[1] ^ k[0]) & 0xffffffff, p1 & 0xffffffff,
//                   ((p0 >> 32) ^ c[3] ^ k[1]) & 0xffffffff, p0 & 0xffffffff]
//          return c
//      def la3_bits(seed, step, stream, i):
//          b = i >> 2
//          return philox([b & 0xffffffff, b >> 32, stream, step & 0xffffffff],
//                        [seed & 0xffffffff, seed >> 32])[i & 3]
#include "kernels/philox.cuh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>
#include <vector>

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
      // examples/kat_vectors: one bit set in the counter and/or key.
      {{1, 0, 0, 0}, {1, 0}, {0xac08141b, 0xdfc5ccbe, 0x79c07a47, 0xa7f66093}},
      {{0, 0, 0, 0x80000000}, {0, 0x80000000}, {0xf7a0b371, 0xe51dc93d, 0x56ce135d, 0x1d4b5580}},
      {{0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89}, {0, 0xffffffff},
       {0x9fcce05d, 0x837d3f3c, 0x5cdf3e61, 0xdb2544c0}},
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

TEST(Philox, La3KeyingMatchesAnIndependentImplementation) {
  // (seed, step, stream, index) -> bits, from the Python implementation in the header comment.
  EXPECT_EQ(kernels::philox_bits(0, 0, 0, 0), 0x6627e8d5u);  // = word 0 of the all-zero KAT
  EXPECT_EQ(kernels::philox_bits(2024, 5, 1, 99999), 0x73937732u);
  EXPECT_EQ(kernels::philox_bits(0x0123456789abcdefull, 7, 3, (uint64_t{1} << 35) + 6), 0x8d26fa52u);
  EXPECT_EQ(kernels::philox_bits(42, 10, 3, 4098), 0xaef17b67u);
  // The uniform keeps the top 24 bits: (bits >> 8) / 2^24.
  EXPECT_EQ(kernels::philox_uniform(0, 0, 0, 0), 0.3990464210510254f);
  EXPECT_EQ(kernels::philox_uniform(2024, 5, 1, 99999), 0.45146888494491577f);
  // dropout_keep is exactly "uniform >= p".
  const float draw = kernels::philox_uniform(0, 0, 0, 0);
  EXPECT_TRUE(kernels::dropout_keep(draw, 0, 0, 0, 0));
  EXPECT_FALSE(kernels::dropout_keep(std::nextafter(draw, 1.0f), 0, 0, 0, 0));
}

TEST(Philox, UniformIsExactlyTheTop24BitsAndNeverOne) {
  float largest = 0.0f;
  for (uint64_t i = 0; i < 4096; ++i) {
    const uint32_t bits = kernels::philox_bits(9, 8, 7, i);
    const float u = kernels::philox_uniform(9, 8, 7, i);
    ASSERT_EQ(u, static_cast<float>(bits >> 8) / 16777216.0f) << "index " << i;
    largest = std::max(largest, u);
  }
  EXPECT_LT(largest, 1.0f);
  // The largest value the mapping can produce, (2^24 - 1) / 2^24, is still below 1 in fp32.
  EXPECT_LT(static_cast<float>(0xffffffu) * (1.0f / 16777216.0f), 1.0f);
  // p = 0 keeps everything (uniform >= 0 always).
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_TRUE(kernels::dropout_keep(0.0f, 3, 2, 1, i));
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

// The block-wise multipliers (one Philox block per four elements, used by the CPU loops) make
// exactly the per-element dropout_keep decisions, for ranges that start and end inside a block.
TEST(Philox, BlockwiseDropoutMultipliersMatchPerElementDecisions) {
  const float p = 0.3f;
  for (const auto& [first, count] : {std::pair<uint64_t, int64_t>{0, 17}, {3, 1}, {5, 2}, {6, 11}, {1u << 20, 1000}}) {
    std::vector<float> out(static_cast<size_t>(count), -1.0f);
    kernels::dropout_multipliers(p, 77, 5, 9, first, count, out.data());
    int dropped = 0;
    for (int64_t i = 0; i < count; ++i) {
      const bool keep = kernels::dropout_keep(p, 77, 5, 9, first + static_cast<uint64_t>(i));
      ASSERT_EQ(out[static_cast<size_t>(i)], keep ? 1.0f / (1.0f - p) : 0.0f) << first << " + " << i;
      dropped += keep ? 0 : 1;
    }
    if (count >= 1000) {
      EXPECT_NEAR(dropped / static_cast<double>(count), p, 0.05);
    }
  }
}

}  // namespace
}  // namespace la3
