// The tiled attention CUDA kernels under the SIMT emulation against the CPU backend, launched
// by the launchers CudaBackend calls (launch_attention_forward / launch_attention_backward):
// encoder-style (bias, padding, a fully padded item), causal decoder with a cache offset,
// cross-attention without bias, dropout (with row and query offsets; the masks bit for bit,
// and independent of padding and of the batch split), lengths that are not multiples of the tiles,
// length 1, causal rows that are fully padded, head_dim 7, 64 and 128, and more keys than the
// old row-per-block kernels could hold in shared memory. Forward output and dq, dk, dv,
// d(bias table). bf16 activations: the bf16 instantiations against the f32 ones on the same
// bf16-representable numbers.
#include "kernels/attention.cuh"
#include "kernels/launch.h"

#include <gtest/gtest.h>

#include "tests/support/gradcheck.h"

#include "tests/simt/simt_modes.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace {

using la3::kernels::AttentionParams;

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Tolerances (normalised error mse(a, b) / mse(a, 0)): f32 with other summation orders (online
// softmax rescaling, tile-wise partial sums, atomics for dq and dbias) against the CPU's BLAS
// products: ~1e-6 relative per element, i.e. ~1e-12 normalised; 1e-10 leaves room for long
// rows (13000 keys) and cancellation in dS without hiding a wrong element (a single wrong
// element of these tensors is >= 1e-4).
constexpr double kOutTolerance = 1e-11;
constexpr double kGradTolerance = 1e-10;
// d(bias table) against the double reference below: the kernels sum dS in f32 (per-block shared
// partials, then atomics), and with thousands of keys the last bucket is the small remainder of
// a sum of ~10^4 terms that cancels (sum_j dS_ij = 0): ~2e-9 at 7000 causal keys, < 1e-11 in the
// short cases. A wrong bucket or a lost partial is >= 1e-4.
constexpr double kDbiasTolerance = 1e-8;

// d(bias table) in double from the CPU's (f32) probabilities: with thousands of keys nearly all
// of a row falls into the last bucket, whose gradient is the small remainder of a sum that
// cancels (sum_j dS_ij = 0), and the CPU's f32 row dot products (D) dominate its error there
// (normalised ~1e-7 at 13000 keys). Both the CPU and the kernels are compared with this.
std::vector<double> dbias_reference(const AttentionParams& p, const std::vector<int32_t>& mask,
                                    const std::vector<float>& probs, const std::vector<float>& dout,
                                    const std::vector<float>& v) {
  std::vector<double> table(static_cast<size_t>(p.num_buckets * p.heads), 0.0);
  std::vector<double> dprob(static_cast<size_t>(p.k_len));
  const int64_t row = p.heads * p.head_dim;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        bool all_masked = true;
        for (int64_t j = 0; j < p.k_len && all_masked; ++j) {
          all_masked = (p.has_key_mask && mask[static_cast<size_t>(b * p.k_len + j)] == 0) ||
                       (p.causal && j > p.query_offset + i);
        }
        if (all_masked) continue;
        const float* prob = probs.data() + ((b * p.heads + h) * p.q_len + i) * p.k_len;
        double row_dot = 0.0;
        for (int64_t j = 0; j < p.k_len; ++j) {
          double dot = 0.0;
          for (int64_t dd = 0; dd < p.head_dim; ++dd) {
            dot += static_cast<double>(dout[static_cast<size_t>((b * p.q_len + i) * row + h * p.head_dim + dd)]) *
                   v[static_cast<size_t>((b * p.k_len + j) * row + h * p.head_dim + dd)];
          }
          const uint64_t key = la3::kernels::attention_dropout_key(p, b, h, i, j);
          const double keep = p.dropout.p <= 0.0f ? 1.0
                              : la3::kernels::dropout_keep(p.dropout.p, p.dropout.seed, p.dropout.step,
                                                           p.dropout.stream, key)
                                  ? 1.0 / (1.0 - static_cast<double>(p.dropout.p))
                                  : 0.0;
          dprob[static_cast<size_t>(j)] = keep * dot;
          row_dot += prob[j] * dprob[static_cast<size_t>(j)];
        }
        for (int64_t j = 0; j < p.k_len; ++j) {
          const int bucket = la3::kernels::t5_relative_position_bucket(
              static_cast<int>(j - (p.query_offset + i)), p.bidirectional, p.num_buckets, p.max_distance);
          table[static_cast<size_t>(bucket * p.heads + h)] += prob[j] * (dprob[static_cast<size_t>(j)] - row_dot);
        }
      }
    }
  }
  return table;
}

std::vector<double> as_doubles(const std::vector<float>& values) { return {values.begin(), values.end()}; }

struct KernelOutputs {
  std::vector<float> out, lse;  // [b, q_len, h, d], [b, h, q_len]
  std::vector<float> dq, dk, dv, dbias;
};

// Forward, row dot and backward kernels through their launchers (kernels/attention.cuh), the
// ones CudaBackend calls. dq starts from zero (the launcher's precondition; the backend zeroes
// it); dk and dv start as NaN (they must be overwritten); the table gradient accumulates onto
// dbias_start.
void run_kernels(const AttentionParams& p, const int32_t* mask_data, const float* table_data,
                 const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                 const std::vector<float>& dout, const std::vector<float>& dbias_start, KernelOutputs* result) {
  const la3::kernels::SimtLaunch launch;
  result->out.assign(q.size(), -1.0f);
  result->lse.assign(static_cast<size_t>(la3::kernels::attention_lse_floats(p)), -1.0f);
  const la3::kernels::AttentionForwardTiles forward =
      la3::kernels::launch_attention_forward(launch, p, q.data(), k.data(), v.data(), table_data, mask_data,
                                             result->out.data(), result->lse.data());
  ASSERT_GT(forward.rows, 0);
  ASSERT_LE(forward.shared_bytes, 48u * 1024u);

  std::vector<float> row_dot(static_cast<size_t>(la3::kernels::attention_backward_scratch_floats(p)), -1.0f);
  result->dq.assign(q.size(), 0.0f);
  result->dk.assign(k.size(), NAN);
  result->dv.assign(v.size(), NAN);
  result->dbias = dbias_start;
  const la3::kernels::AttentionBackwardTiles backward = la3::kernels::launch_attention_backward(
      launch, p, dout.data(), q.data(), k.data(), v.data(), result->out.data(), table_data, mask_data,
      result->lse.data(), row_dot.data(), result->dq.data(), result->dk.data(), result->dv.data(),
      p.has_bias ? result->dbias.data() : nullptr);
  ASSERT_GT(backward.keys, 0);
  ASSERT_LE(backward.shared_bytes, 48u * 1024u);
}

void check(const AttentionParams& p, const std::vector<int32_t>& mask, const char* name) {
  SCOPED_TRACE(name);
  std::mt19937 rng(17);
  const size_t q_size = static_cast<size_t>(p.batch * p.q_len * p.heads * p.head_dim);
  const size_t kv_size = static_cast<size_t>(p.batch * p.k_len * p.heads * p.head_dim);
  const std::vector<float> q = random_values(q_size, rng), k = random_values(kv_size, rng), v = random_values(kv_size, rng),
                           table = random_values(static_cast<size_t>(p.num_buckets * p.heads), rng),
                           dout = random_values(q_size, rng);
  const int32_t* mask_data = p.has_key_mask ? mask.data() : nullptr;
  const float* table_data = p.has_bias ? table.data() : nullptr;
  la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
  std::vector<float> out_cpu(q_size), probs(static_cast<size_t>(cpu.attention_saved_elements(p)));
  cpu.attention_forward(p, la3::DType::kF32, q.data(), k.data(), v.data(), table_data, mask_data, out_cpu.data(), probs.data());
  std::vector<float> dq_cpu(q_size), dk_cpu(kv_size), dv_cpu(kv_size), dbias_cpu(table.size(), 0.0f);
  cpu.attention_backward(p, la3::DType::kF32, dout.data(), q.data(), k.data(), v.data(), out_cpu.data(), table_data, mask_data,
                         probs.data(), dq_cpu.data(), dk_cpu.data(), dv_cpu.data(), dbias_cpu.data());

  // The table gradient accumulates onto what is there: start from the CPU's gradient, so
  // twice the gradient is expected (a constant offset would cost the small buckets their
  // precision).
  KernelOutputs kernel;
  run_kernels(p, mask_data, table_data, q, k, v, dout, dbias_cpu, &kernel);
  if (::testing::Test::HasFatalFailure()) return;
  const std::vector<float>& out = kernel.out;
  const std::vector<float>& lse = kernel.lse;
  // A fully masked row is marked by lse = +inf; every other lse is finite.
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t i = 0; i < p.q_len; ++i) {
      bool all_masked = true;
      for (int64_t j = 0; j < p.k_len && all_masked; ++j) {
        all_masked = (p.has_key_mask && mask[static_cast<size_t>(b * p.k_len + j)] == 0) ||
                     (p.causal && j > p.query_offset + i);
      }
      for (int64_t h = 0; h < p.heads; ++h) {
        const float row_lse = lse[static_cast<size_t>((b * p.heads + h) * p.q_len + i)];
        if (all_masked) {
          EXPECT_EQ(row_lse, INFINITY) << "b " << b << " h " << h << " i " << i;
        } else {
          EXPECT_TRUE(std::isfinite(row_lse)) << "b " << b << " h " << h << " i " << i;
        }
      }
    }
  }

  const std::vector<float>&dq = kernel.dq, &dk = kernel.dk, &dv = kernel.dv, &dbias = kernel.dbias;
  EXPECT_LT(la3::testing::normalized_error(out, out_cpu), kOutTolerance) << "out";
  EXPECT_LT(la3::testing::normalized_error(dq, dq_cpu), kGradTolerance) << "dq";
  EXPECT_LT(la3::testing::normalized_error(dk, dk_cpu), kGradTolerance) << "dk";
  EXPECT_LT(la3::testing::normalized_error(dv, dv_cpu), kGradTolerance) << "dv";
  if (p.has_bias) {
    const std::vector<double> reference = dbias_reference(p, mask, probs, dout, v);
    std::vector<double> twice = reference;
    for (double& g : twice) g *= 2.0;
    EXPECT_LT(la3::testing::normalized_error(as_doubles(dbias), twice), kDbiasTolerance) << "dbias";
    // The CPU backend's own f32 error, for the record (bounded loosely: see dbias_reference).
    EXPECT_LT(la3::testing::normalized_error(as_doubles(dbias_cpu), reference), 1e-6) << "cpu dbias";
  }
}

AttentionParams encoder_params() {
  AttentionParams encoder;
  encoder.batch = 2; encoder.heads = 3; encoder.q_len = 7; encoder.k_len = 7; encoder.head_dim = 5;
  encoder.has_bias = true; encoder.bidirectional = true; encoder.num_buckets = 8; encoder.max_distance = 12;
  encoder.has_key_mask = true;
  return encoder;
}

class AttentionKernel : public la3::testing::SimtModeTest {};

TEST_P(AttentionKernel, MatchesTheCpuBackend) {
  const AttentionParams encoder = encoder_params();
  check(encoder, {1, 1, 1, 1, 1, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0}, "encoder, padding, fully padded item");

  AttentionParams decoder = encoder;
  decoder.batch = 1; decoder.q_len = 2; decoder.k_len = 19; decoder.causal = true; decoder.bidirectional = false;
  decoder.query_offset = 17; decoder.has_key_mask = false; decoder.num_buckets = 10; decoder.max_distance = 12;
  check(decoder, {}, "causal decoder step with cache offset");

  AttentionParams cross = encoder;
  cross.q_len = 4; cross.k_len = 9; cross.has_bias = false;
  check(cross, std::vector<int32_t>(18, 1), "cross-attention without bias");

  AttentionParams dropped = encoder;
  dropped.has_key_mask = false;
  dropped.dropout = la3::kernels::DropoutParams{0.3f, 42, 5, 9};
  check(dropped, {}, "dropout on the probabilities");
  dropped.dropout.row_offset = 5;
  check(dropped, {}, "dropout, row_offset 5");

  AttentionParams dropped_step = decoder;
  dropped_step.dropout = la3::kernels::DropoutParams{0.3f, 42, 5, 9};
  dropped_step.dropout.row_offset = 2;
  check(dropped_step, {}, "causal decoder step with cache offset, dropout");

  AttentionParams single = encoder;
  single.batch = 1; single.heads = 2; single.q_len = 1; single.k_len = 1;
  check(single, {1}, "length 1");
  single.dropout = la3::kernels::DropoutParams{0.5f, 3, 1, 2};
  check(single, {1}, "length 1 with dropout");
}

// Several query and key tiles, none of them full: causal self-attention over padded items, so
// rows 0..2 of item 0 (and all of item 1) see no key at all and attend uniformly to every key
// (the future ones included), and odd head_dim 7.
TEST_P(AttentionKernel, PartialTilesAndFullyMaskedCausalRows) {
  AttentionParams p;
  p.batch = 2; p.heads = 2; p.q_len = 41; p.k_len = 41; p.head_dim = 7;
  p.has_bias = true; p.bidirectional = false; p.causal = true; p.num_buckets = 32; p.max_distance = 128;
  p.has_key_mask = true;
  std::vector<int32_t> mask(82, 1);
  for (int j = 0; j < 3; ++j) mask[static_cast<size_t>(j)] = 0;    // item 0: first 3 keys padded
  for (int j = 37; j < 41; ++j) mask[static_cast<size_t>(j)] = 0;  // ... and the last 4
  for (int j = 41; j < 82; ++j) mask[static_cast<size_t>(j)] = 0;  // item 1: all padding
  check(p, mask, "causal, partial tiles, fully masked rows, head_dim 7");
  p.dropout = la3::kernels::DropoutParams{0.2f, 7, 3, 11};
  check(p, mask, "the same with dropout");
  AttentionParams shifted = p;
  shifted.dropout.row_offset = 1000;
  check(shifted, mask, "the same, row_offset 1000");

  // Incremental decoding over a cache spanning several key tiles: the forward stops after the
  // last visible key tile, the backward skips query steps that cannot see a key tile.
  AttentionParams step = p;
  step.batch = 1; step.q_len = 5; step.k_len = 70; step.query_offset = 65; step.has_key_mask = false;
  check(step, {}, "causal, query_offset 65, 70 keys, dropout");
  step.dropout = {};
  check(step, {}, "causal, query_offset 65, 70 keys");
  step.q_len = 20; step.query_offset = 9; step.k_len = 29;  // keys 29..: none; query 19 sees keys <= 28
  check(step, {}, "causal, query_offset 9, more queries than a tile");

  AttentionParams cross = p;
  cross.causal = false; cross.has_bias = false; cross.q_len = 17; cross.k_len = 33; cross.head_dim = 7;
  std::vector<int32_t> cross_mask(66, 1);
  for (int j = 30; j < 33; ++j) cross_mask[static_cast<size_t>(j)] = 0;
  check(cross, cross_mask, "cross-attention without bias, partial tiles");
}

TEST_P(AttentionKernel, HeadDim64And128) {
  AttentionParams p;
  p.batch = 1; p.heads = 2; p.q_len = 18; p.k_len = 35; p.head_dim = 64;
  p.has_bias = true; p.bidirectional = true; p.num_buckets = 32; p.max_distance = 128; p.has_key_mask = true;
  std::vector<int32_t> mask(35, 1);
  mask[34] = mask[33] = 0;
  p.dropout = la3::kernels::DropoutParams{0.1f, 1, 2, 3};
  check(p, mask, "head_dim 64, dropout");
  p.heads = 1; p.q_len = 9; p.k_len = 20; p.head_dim = 128; p.dropout = {};
  check(p, std::vector<int32_t>(20, 1), "head_dim 128");
}

// More keys than the old kernels' k_len-sized shared buffers allowed (12288 forward, 6144
// backward), with tiny other dimensions to keep the emulated thread count small: every key
// tile of the forward is one block's loop, the backward has one block per key tile.
TEST_P(AttentionKernel, ManyKeys) {
  AttentionParams p;
  p.batch = 1; p.heads = 1; p.q_len = 3; p.k_len = 13000; p.head_dim = 2;
  p.has_bias = true; p.bidirectional = true; p.num_buckets = 32; p.max_distance = 128; p.has_key_mask = true;
  std::vector<int32_t> mask(13000, 1);
  for (size_t j = 0; j < mask.size(); j += 7) mask[j] = 0;
  p.dropout = la3::kernels::DropoutParams{0.25f, 9, 4, 1};
  check(p, mask, "13000 keys, padding, dropout");

  AttentionParams decoder = p;
  decoder.q_len = 2; decoder.k_len = 7000; decoder.causal = true; decoder.bidirectional = false;
  decoder.query_offset = 6990; decoder.has_key_mask = false; decoder.dropout = {};
  check(decoder, {}, "7000 keys, causal, query_offset 6990");
}

// The dropout masks themselves, bit for bit. q = k = 0 and no bias make every visible
// probability 1 / length; v[j] = e_j turns output row i into the dropped probability row i, and
// dout[i] = e_i turns dv[j][i] into the dropped probability (i, j) that backward recomputed. So
// the zero pattern of out and of dv is the mask of forward and of backward. Items have lengths
// {9, 4, 6, 7} (padding keys masked).
struct MaskProbe {
  std::vector<float> out, dv;  // [batch, len, heads, head_dim]
};

constexpr int64_t kProbeHeads = 2, kProbeHeadDim = 9;
const std::vector<int64_t> kProbeLengths = {9, 4, 6, 7};

AttentionParams probe_params(int64_t batch, int64_t len, int64_t row_offset) {
  AttentionParams p;
  p.batch = batch; p.heads = kProbeHeads; p.q_len = len; p.k_len = len; p.head_dim = kProbeHeadDim;
  p.has_key_mask = true;
  p.dropout = la3::kernels::DropoutParams{0.35f, 4242, 8, 12};
  p.dropout.row_offset = row_offset;
  return p;
}

// Items first_item.. of kProbeLengths as a batch padded to p.q_len, on the CPU or the kernels.
void probe_masks(const AttentionParams& p, int64_t first_item, bool on_kernels, MaskProbe* probe) {
  const int64_t len = p.q_len;
  const size_t size = static_cast<size_t>(p.batch * len * p.heads * p.head_dim);
  std::vector<float> zeros(size, 0.0f), v(size, 0.0f), dout(size, 0.0f);
  std::vector<int32_t> mask(static_cast<size_t>(p.batch * len), 0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t position = 0; position < len; ++position) {
      mask[static_cast<size_t>(b * len + position)] = position < kProbeLengths[static_cast<size_t>(first_item + b)];
      for (int64_t h = 0; h < p.heads; ++h) {
        v[static_cast<size_t>(((b * len + position) * p.heads + h) * p.head_dim + position)] = 1.0f;
        dout[static_cast<size_t>(((b * len + position) * p.heads + h) * p.head_dim + position)] = 1.0f;
      }
    }
  }
  if (on_kernels) {
    KernelOutputs kernel;
    run_kernels(p, mask.data(), nullptr, zeros, zeros, v, dout, {}, &kernel);
    probe->out = kernel.out;
    probe->dv = kernel.dv;
    return;
  }
  la3::Backend& cpu = la3::backend_for(la3::Device::cpu());
  std::vector<float> probs(static_cast<size_t>(cpu.attention_saved_elements(p))), dq(size), dk(size);
  probe->out.assign(size, 0.0f);
  probe->dv.assign(size, 0.0f);
  cpu.attention_forward(p, la3::DType::kF32, zeros.data(), zeros.data(), v.data(), nullptr, mask.data(), probe->out.data(), probs.data());
  cpu.attention_backward(p, la3::DType::kF32, dout.data(), zeros.data(), zeros.data(), v.data(), probe->out.data(), nullptr, mask.data(),
                         probs.data(), dq.data(), dk.data(), probe->dv.data(), nullptr);
}

// out[b, i, h, j] and dv[b, j, h, i]: the dropped probability (i, j) of item b, head h.
float probe_out(const MaskProbe& probe, int64_t len, int64_t b, int64_t h, int64_t i, int64_t j) {
  return probe.out[static_cast<size_t>(((b * len + i) * kProbeHeads + h) * kProbeHeadDim + j)];
}
float probe_dv(const MaskProbe& probe, int64_t len, int64_t b, int64_t h, int64_t i, int64_t j) {
  return probe.dv[static_cast<size_t>(((b * len + j) * kProbeHeads + h) * kProbeHeadDim + i)];
}

TEST_P(AttentionKernel, DropoutMasksAreTheCpuMasksBitForBit) {
  const AttentionParams p = probe_params(4, 9, 7);
  MaskProbe cpu, kernel;
  probe_masks(p, 0, false, &cpu);
  probe_masks(p, 0, true, &kernel);
  if (HasFatalFailure()) return;
  int64_t dropped = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        for (int64_t j = 0; j < p.k_len; ++j) {
          const float expected = probe_out(cpu, 9, b, h, i, j);
          const bool cpu_kept = expected != 0.0f;
          ASSERT_EQ(probe_out(kernel, 9, b, h, i, j) != 0.0f, cpu_kept) << "forward b " << b << " h " << h << " i " << i << " j " << j;
          ASSERT_EQ(probe_dv(kernel, 9, b, h, i, j) != 0.0f, cpu_kept) << "backward b " << b << " h " << h << " i " << i << " j " << j;
          ASSERT_EQ(probe_dv(cpu, 9, b, h, i, j) != 0.0f, cpu_kept) << "cpu backward b " << b << " h " << h << " i " << i << " j " << j;
          EXPECT_NEAR(probe_out(kernel, 9, b, h, i, j), expected, 1e-6f);
          const bool visible = j < kProbeLengths[static_cast<size_t>(b)];
          dropped += visible && !cpu_kept;
        }
      }
    }
  }
  EXPECT_GT(dropped, 50);  // 2 heads x 9 queries x 26 visible keys at p = 0.35
}

// Items 2 and 3 padded to 7 with row_offset 2 draw, on the kernels, the masks they draw as items 2
// and 3 of the whole batch padded to 9.
TEST_P(AttentionKernel, DropoutMaskOfAnItemIgnoresPaddingAndTheSplit) {
  MaskProbe whole, slice;
  probe_masks(probe_params(4, 9, 0), 0, true, &whole);
  probe_masks(probe_params(2, 7, 2), 2, true, &slice);
  if (HasFatalFailure()) return;
  int64_t dropped = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t h = 0; h < kProbeHeads; ++h) {
      for (int64_t i = 0; i < 7; ++i) {
        for (int64_t j = 0; j < 7; ++j) {
          const float expected = probe_out(whole, 9, 2 + b, h, i, j);
          ASSERT_EQ(probe_out(slice, 7, b, h, i, j) != 0.0f, expected != 0.0f) << "forward item " << 2 + b << " h " << h << " i " << i << " j " << j;
          ASSERT_EQ(probe_dv(slice, 7, b, h, i, j) != 0.0f, probe_dv(whole, 9, 2 + b, h, i, j) != 0.0f)
              << "backward item " << 2 + b << " h " << h << " i " << i << " j " << j;
          EXPECT_NEAR(probe_out(slice, 7, b, h, i, j), expected, 1e-6f);
          dropped += j < kProbeLengths[static_cast<size_t>(2 + b)] && expected == 0.0f;
        }
      }
    }
  }
  EXPECT_GT(dropped, 20);
}

// ---- bf16 activations ----------------------------------------------------------------------

std::vector<uint16_t> bf16_bits_of(const std::vector<float>& values) {
  std::vector<uint16_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = la3::kernels::to_bf16_bits(values[i]);
  return bits;
}

std::vector<float> widened(const std::vector<uint16_t>& bits) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = la3::kernels::from_bf16_bits(bits[i]);
  return values;
}

// Elements of a bf16 result that are not the f32 result rounded once (0 for a kernel that
// does fp32 arithmetic between load_act and store_act on the same numbers).
int64_t not_rounded_f32(const std::vector<uint16_t>& got, const std::vector<float>& f32) {
  int64_t mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) mismatches += got[i] != la3::kernels::to_bf16_bits(f32[i]);
  return mismatches;
}

// The bf16 instantiations (uint16_t activations) through the launchers against the f32 ones on
// the same bf16-representable q, k, v, dout. Everything between the loads and the stores is
// fp32 in both, so: lse is bit-identical and out is the f32 out rounded once; given the same
// `out` for D (the bf16 forward's, widened), dk and dv are the f32 kernel's rounded once, dq
// (summed by atomics in the launch's f32 accumulator, in a schedule-dependent order) is within
// one rounding, and dbias (f32 atomics) within f32 summation-order noise. Then against the f32
// kernels end to end (D from their own unrounded out): the NMSE the bf16 storage costs, printed.
// The launch must zero its dq accumulator and overwrite dq, dk and dv: they start as NaN.
void check_bf16(const AttentionParams& p, const std::vector<int32_t>& mask, const char* name) {
  SCOPED_TRACE(name);
  const la3::kernels::SimtLaunch launch;
  std::mt19937 rng(29);
  const size_t q_size = static_cast<size_t>(p.batch * p.q_len * p.heads * p.head_dim);
  const size_t kv_size = static_cast<size_t>(p.batch * p.k_len * p.heads * p.head_dim);
  const std::vector<uint16_t> q_bits = bf16_bits_of(random_values(q_size, rng)),
                              k_bits = bf16_bits_of(random_values(kv_size, rng)),
                              v_bits = bf16_bits_of(random_values(kv_size, rng)),
                              dout_bits = bf16_bits_of(random_values(q_size, rng));
  const std::vector<float> q = widened(q_bits), k = widened(k_bits), v = widened(v_bits), dout = widened(dout_bits);
  const std::vector<float> table = random_values(static_cast<size_t>(p.num_buckets * p.heads), rng);
  const int32_t* mask_data = p.has_key_mask ? mask.data() : nullptr;
  const float* table_data = p.has_bias ? table.data() : nullptr;
  const size_t lse_size = static_cast<size_t>(la3::kernels::attention_lse_floats(p));
  constexpr uint16_t kBf16Nan = 0x7fc0;

  // bf16.
  std::vector<uint16_t> out_bits(q_size, kBf16Nan);
  std::vector<float> lse(lse_size, -1.0f);
  ASSERT_GT(la3::kernels::launch_attention_forward(launch, p, q_bits.data(), k_bits.data(), v_bits.data(), table_data,
                                                   mask_data, out_bits.data(), lse.data())
                .rows,
            0);
  std::vector<float> scratch(static_cast<size_t>(la3::kernels::attention_backward_scratch_floats<uint16_t>(p)), NAN);
  ASSERT_EQ(scratch.size(), lse_size + q_size);  // D and the f32 dq accumulator
  std::vector<uint16_t> dq_bits(q_size, kBf16Nan), dk_bits(kv_size, kBf16Nan), dv_bits(kv_size, kBf16Nan);
  std::vector<float> dbias(table.size(), 0.0f);
  ASSERT_GT(la3::kernels::launch_attention_backward(launch, p, dout_bits.data(), q_bits.data(), k_bits.data(),
                                                    v_bits.data(), out_bits.data(), table_data, mask_data, lse.data(),
                                                    scratch.data(), dq_bits.data(), dk_bits.data(), dv_bits.data(),
                                                    p.has_bias ? dbias.data() : nullptr)
                .keys,
            0);

  // f32 on the same numbers; this backward reads the bf16 forward's output.
  std::vector<float> out32(q_size, NAN), lse32(lse_size, -1.0f);
  la3::kernels::launch_attention_forward(launch, p, q.data(), k.data(), v.data(), table_data, mask_data, out32.data(),
                                         lse32.data());
  const std::vector<float> out_bf16 = widened(out_bits);
  std::vector<float> row_dot(static_cast<size_t>(la3::kernels::attention_backward_scratch_floats(p)));
  std::vector<float> dq32(q_size, 0.0f), dk32(kv_size, NAN), dv32(kv_size, NAN), dbias32(table.size(), 0.0f);
  la3::kernels::launch_attention_backward(launch, p, dout.data(), q.data(), k.data(), v.data(), out_bf16.data(),
                                          table_data, mask_data, lse32.data(), row_dot.data(), dq32.data(), dk32.data(),
                                          dv32.data(), p.has_bias ? dbias32.data() : nullptr);

  int64_t lse_differs = 0;
  for (size_t i = 0; i < lse_size; ++i) lse_differs += !(lse[i] == lse32[i]);
  EXPECT_EQ(lse_differs, 0) << "lse";
  EXPECT_EQ(not_rounded_f32(out_bits, out32), 0) << "out";
  EXPECT_EQ(not_rounded_f32(dk_bits, dk32), 0) << "dk";
  EXPECT_EQ(not_rounded_f32(dv_bits, dv32), 0) << "dv";
  const std::vector<float> dq_bf16 = widened(dq_bits);
  for (float x : dq_bf16) ASSERT_TRUE(std::isfinite(x)) << "dq: an element the launch did not write";
  EXPECT_LT(la3::testing::normalized_error(dq_bf16, dq32), 1e-5) << "dq";  // one rounding: ~1.3e-6
  if (p.has_bias) {
    EXPECT_LT(la3::testing::normalized_error(dbias, dbias32), 1e-10) << "dbias";
  }

  // End to end against the f32 kernels (D from their own f32 out).
  std::vector<float> dq_f32(q_size, 0.0f), dk_f32(kv_size, NAN), dv_f32(kv_size, NAN), dbias_f32(table.size(), 0.0f);
  la3::kernels::launch_attention_backward(launch, p, dout.data(), q.data(), k.data(), v.data(), out32.data(), table_data,
                                          mask_data, lse32.data(), row_dot.data(), dq_f32.data(), dk_f32.data(),
                                          dv_f32.data(), p.has_bias ? dbias_f32.data() : nullptr);
  const double errors[] = {la3::testing::normalized_error(out_bf16, out32),
                           la3::testing::normalized_error(dq_bf16, dq_f32),
                           la3::testing::normalized_error(widened(dk_bits), dk_f32),
                           la3::testing::normalized_error(widened(dv_bits), dv_f32),
                           p.has_bias ? la3::testing::normalized_error(dbias, dbias_f32) : 0.0};
  std::printf("[attention bf16] %-52s nmse out %.2e dq %.2e dk %.2e dv %.2e dbias %.2e\n", name, errors[0], errors[1],
              errors[2], errors[3], errors[4]);
  for (double error : errors) EXPECT_LT(error, 1e-4);
}

TEST_P(AttentionKernel, Bf16ActivationsRoundTheF32KernelsResultsOnce) {
  const AttentionParams encoder = encoder_params();
  check_bf16(encoder, {1, 1, 1, 1, 1, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0}, "encoder, padding, fully padded item");

  AttentionParams step = encoder;
  step.batch = 1; step.q_len = 5; step.k_len = 70; step.query_offset = 65; step.causal = true;
  step.bidirectional = false; step.has_key_mask = false; step.num_buckets = 32; step.max_distance = 128;
  step.dropout = la3::kernels::DropoutParams{0.2f, 7, 3, 11};
  check_bf16(step, {}, "causal, query_offset 65, 70 keys, dropout");

  AttentionParams partial;
  partial.batch = 2; partial.heads = 2; partial.q_len = 41; partial.k_len = 41; partial.head_dim = 7;
  partial.has_bias = true; partial.bidirectional = false; partial.causal = true; partial.num_buckets = 32;
  partial.max_distance = 128; partial.has_key_mask = true;
  std::vector<int32_t> mask(82, 1);
  for (int j = 0; j < 3; ++j) mask[static_cast<size_t>(j)] = 0;
  for (int j = 41; j < 82; ++j) mask[static_cast<size_t>(j)] = 0;
  check_bf16(partial, mask, "causal, partial tiles, fully masked rows, head_dim 7");

  AttentionParams wide;
  wide.batch = 1; wide.heads = 2; wide.q_len = 18; wide.k_len = 35; wide.head_dim = 64;
  wide.has_bias = true; wide.bidirectional = true; wide.num_buckets = 32; wide.max_distance = 128;
  wide.has_key_mask = true;
  std::vector<int32_t> wide_mask(35, 1);
  wide_mask[34] = wide_mask[33] = 0;
  check_bf16(wide, wide_mask, "head_dim 64, padding");
}

TEST(AttentionTiles, FitTheDefaultSharedMemoryUpToHeadDim128) {
  for (int64_t head_dim = 1; head_dim <= 128; ++head_dim) {
    AttentionParams p;
    p.head_dim = head_dim;
    p.has_bias = true;
    p.num_buckets = 32;
    const la3::kernels::AttentionForwardTiles forward = la3::kernels::attention_forward_tiles(p);
    const la3::kernels::AttentionBackwardTiles backward = la3::kernels::attention_backward_tiles(p);
    EXPECT_GT(forward.rows, 0) << head_dim;
    EXPECT_LE(forward.shared_bytes, 48u * 1024u) << head_dim;
    EXPECT_GT(backward.keys, 0) << head_dim;
    EXPECT_LE(backward.shared_bytes, 48u * 1024u) << head_dim;
  }
  AttentionParams p;
  p.head_dim = 64;
  p.has_bias = true;
  EXPECT_EQ(la3::kernels::attention_forward_tiles(p).rows, 16);  // MolT5: the largest tiles
  EXPECT_EQ(la3::kernels::attention_backward_tiles(p).keys, 32);
  EXPECT_EQ(la3::kernels::attention_backward_tiles(p).rows, 16);
}

// The tile choosers count the kernels' static scratch (kAttentionStaticSharedBytes, what the
// emulation counts when they run) with the dynamic tiles against the 48 KB per block. Each
// configuration here has a candidate needing exactly 48 KB dynamic (49,152 + 16 bytes in all),
// which a GPU refuses to launch: the choosers must pass over it, and the launches run.
TEST(AttentionTiles, CountTheKernelsStaticSharedMemory) {
  const la3::kernels::SimtLaunch launch;
  AttentionParams backward_case;  // backward (16, 8) at head_dim 149 with 32 buckets: 49,152 bytes
  backward_case.head_dim = 149;
  backward_case.has_bias = true;
  backward_case.num_buckets = 32;
  ASSERT_EQ(la3::kernels::attention_backward_shared_bytes(backward_case, 16, 8), 48u * 1024u);
  AttentionParams forward_case;  // forward Br 16 at head_dim 100 with 2096 buckets: 49,152 bytes
  forward_case.head_dim = 100;
  forward_case.has_bias = true;
  forward_case.num_buckets = 2096;
  ASSERT_EQ(la3::kernels::attention_forward_shared_bytes(forward_case, 16), 48u * 1024u);
  for (AttentionParams p : {backward_case, forward_case}) {
    p.batch = 1;
    p.heads = 2;
    p.q_len = 3;
    p.k_len = 5;
    std::mt19937 rng(7);
    const size_t q_size = static_cast<size_t>(p.q_len * p.heads * p.head_dim);
    const size_t k_size = static_cast<size_t>(p.k_len * p.heads * p.head_dim);
    const std::vector<float> q = random_values(q_size, rng), k = random_values(k_size, rng),
                             v = random_values(k_size, rng), dout = random_values(q_size, rng),
                             table = random_values(static_cast<size_t>(p.num_buckets * p.heads), rng);
    std::vector<float> out(q_size, -1.0f), lse(static_cast<size_t>(la3::kernels::attention_lse_floats(p)));
    const la3::kernels::AttentionForwardTiles forward = la3::kernels::launch_attention_forward(
        launch, p, q.data(), k.data(), v.data(), table.data(), static_cast<const int32_t*>(nullptr), out.data(),
        lse.data());
    ASSERT_GT(forward.rows, 0) << p.head_dim;
    EXPECT_LE(forward.shared_bytes + la3::kernels::kAttentionStaticSharedBytes, 48u * 1024u) << p.head_dim;
    EXPECT_EQ(la3::simt::last_launch_static_shared_bytes(), la3::kernels::kAttentionStaticSharedBytes);
    std::vector<float> scratch(static_cast<size_t>(la3::kernels::attention_backward_scratch_floats(p)));
    std::vector<float> dq(q_size, 0.0f), dk(k_size), dv(k_size), dtable(table.size(), 0.0f);
    const la3::kernels::AttentionBackwardTiles backward = la3::kernels::launch_attention_backward(
        launch, p, dout.data(), q.data(), k.data(), v.data(), out.data(), table.data(),
        static_cast<const int32_t*>(nullptr), lse.data(), scratch.data(), dq.data(), dk.data(), dv.data(),
        dtable.data());
    ASSERT_GT(backward.keys, 0) << p.head_dim;
    EXPECT_LE(backward.shared_bytes + la3::kernels::kAttentionStaticSharedBytes, 48u * 1024u) << p.head_dim;
    EXPECT_EQ(la3::simt::last_launch_static_shared_bytes(), la3::kernels::kAttentionStaticSharedBytes);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    for (float x : dk) ASSERT_TRUE(std::isfinite(x));
  }
  EXPECT_EQ(la3::kernels::attention_backward_tiles(backward_case).rows, 8);  // (8, 8), after (16, 8)
  EXPECT_EQ(la3::kernels::attention_backward_tiles(backward_case).keys, 8);
  EXPECT_EQ(la3::kernels::attention_forward_tiles(forward_case).rows, 8);
}

INSTANTIATE_TEST_SUITE_P(Orders, AttentionKernel, ::testing::Values("forward", "reverse", "shuffled/2"), la3::testing::simt_mode_name);

}  // namespace
