// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator behind curand's Philox and torch's CUDA RNG.
//
// Why counter-based: a dropout mask element is a pure function of
// (seed, step, stream, element index), so the CPU backend, the CUDA kernels and the SIMT
// emulation produce the same mask bit for bit, in any thread order, and backward can
// recompute the mask instead of storing it.
//
// Keying used by every LA3 random draw:
//   key     = (seed low 32 bits, seed high 32 bits)
//   counter = (element_index / 4 low 32, element_index / 4 high 32, stream, step)
// and output word (element_index % 4) of the block is the element's 32 random bits.
// `stream` names the tensor (e.g. the dropout site of a layer), `step` the training step.
// The element index of a dropout mask is not the flat index in the tensor but a key built from
// the element's (global row, position, column) (kernels/dropout_key.cuh), so masks do not
// depend on padding or on how a global batch is split over ranks and micro-batches.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"

namespace la3::kernels {

struct PhiloxState {
  uint32_t counter[4];
  uint32_t key[2];
};

LA3_HOST_DEVICE void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

// One Philox4x32 block: 10 rounds. Writes 4 random words to `out`.
LA3_HOST_DEVICE void philox4x32_10(const uint32_t counter_in[4], const uint32_t key_in[2],
                                   uint32_t out[4]) {
  constexpr uint32_t kMultiplier0 = 0xD2511F53u;
  constexpr uint32_t kMultiplier1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;  // golden ratio
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;  // sqrt(3) - 1
  uint32_t c0 = counter_in[0], c1 = counter_in[1], c2 = counter_in[2], c3 = counter_in[3];
  uint32_t k0 = key_in[0], k1 = key_in[1];
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(kMultiplier0, c0, hi0, lo0);
    philox_mulhilo(kMultiplier1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n1 = lo1;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    const uint32_t n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// The four words of Philox block `block` of the stream (seed, step, stream): the bits of
// elements 4 block .. 4 block + 3.
LA3_HOST_DEVICE void philox_block(uint64_t seed, uint64_t step, uint32_t stream, uint64_t block, uint32_t words[4]) {
  const uint32_t counter[4] = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), stream,
                               static_cast<uint32_t>(step)};
  const uint32_t key[2] = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  philox4x32_10(counter, key, words);
}

// The 32 random bits of element `index` of the stream (seed, step, stream).
LA3_HOST_DEVICE uint32_t philox_bits(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index) {
  uint32_t words[4];
  philox_block(seed, step, stream, index >> 2, words);
  // A select, not words[index & 3]: a dynamic index puts `words` in local memory (a stack
  // frame) in every kernel that draws a dropout bit.
  const uint32_t word = static_cast<uint32_t>(index & 3u);
  return word == 0 ? words[0] : word == 1 ? words[1] : word == 2 ? words[2] : words[3];
}

// Uniform float in [0, 1) with 24 random bits (exactly representable, never 1.0).
LA3_HOST_DEVICE float bits_to_uniform(uint32_t bits) { return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f); }

LA3_HOST_DEVICE float philox_uniform(uint64_t seed, uint64_t step, uint32_t stream, uint64_t index) {
  return bits_to_uniform(philox_bits(seed, step, stream, index));
}

// Dropout keep decision: element survives when its uniform draw is >= p.
LA3_HOST_DEVICE bool dropout_keep(float p, uint64_t seed, uint64_t step, uint32_t stream, uint64_t index) {
  return philox_uniform(seed, step, stream, index) >= p;
}

// The dropout multipliers (0 or 1 / (1 - p)) of elements [first, first + count) of a stream:
// exactly dropout_keep's decisions, with one Philox block per four elements instead of one per
// element (what the CPU backend loops use; a GPU thread handles one element and calls
// dropout_keep).
inline void dropout_multipliers(float p, uint64_t seed, uint64_t step, uint32_t stream, uint64_t first,
                                int64_t count, float* out) {
  const float keep_scale = 1.0f / (1.0f - p);
  const uint64_t end = first + static_cast<uint64_t>(count);
  for (uint64_t i = first; i < end;) {
    const uint64_t block = i >> 2;
    uint32_t words[4];
    philox_block(seed, step, stream, block, words);
    const uint64_t block_end = (block + 1) << 2 < end ? (block + 1) << 2 : end;
    for (; i < block_end; ++i) {
      out[i - first] = bits_to_uniform(words[i & 3u]) >= p ? keep_scale : 0.0f;
    }
  }
}

}  // namespace la3::kernels
