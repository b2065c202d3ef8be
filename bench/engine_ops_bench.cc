// CPU microbenchmarks of the engine's GEMM-bound ops at MolT5-small shapes
// (d_model 512, d_ff 1024, 6 heads x 64, batch 8, sequence 128 and 512).
//
//   build/bench/la3_bench_engine                      # 1 thread (default)
//   LA3_THREADS=2 build/bench/la3_bench_engine
//
// Each benchmark reports GFLOP/s ("flops" counter, forward + backward where named).
// BM_SgemmPeak is the raw OpenBLAS figure at a MolT5-small GEMM shape: divide an op's
// GFLOP/s by it to get the fraction of peak.
#include <benchmark/benchmark.h>

#include <random>

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/attention.h"
#include "engine/ops/matmul.h"

namespace {

using la3::Shape;
using la3::Tensor;

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(la3::shape_numel(shape)));
  for (float& v : values) v = dist(rng);
  return Tensor::from_vector<float>(shape, values);
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["flops"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Raw backend GEMM C[M,N] = A[M,K] B[K,N]^T: the ceiling for everything below.
void BM_SgemmPeak(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const Tensor a = random_tensor({m, k}, 1), b = random_tensor({n, k}, 2);
  Tensor c = Tensor::empty({m, n}, la3::DType::kF32);
  la3::kernels::GemmParams p;
  p.trans_b = true;
  p.m = m; p.n = n; p.k = k;
  p.lda = k; p.ldb = k; p.ldc = n;
  la3::Backend& backend = la3::backend_for(la3::Device::cpu());
  for (auto _ : state) {
    backend.gemm(p, a.data<float>(), b.data<float>(), c.data<float>());
    benchmark::DoNotOptimize(c.data<float>());
  }
  set_flops(state, 2.0 * static_cast<double>(m * n * k));
}
BENCHMARK(BM_SgemmPeak)->Args({4096, 512, 512})->Args({4096, 1024, 512})->Args({4096, 512, 1024})
    ->Unit(benchmark::kMillisecond);

// A linear layer x[8, L, in] W[out, in]^T, forward only and forward + backward (dx and dW).
void linear_bench(benchmark::State& state, bool with_backward) {
  const int64_t batch = 8, length = state.range(0), in = state.range(1), out = state.range(2);
  const Tensor x = random_tensor({batch, length, in}, 3);
  const Tensor w = random_tensor({out, in}, 4);
  x.set_requires_grad(with_backward);
  w.set_requires_grad(with_backward);
  const Tensor upstream = random_tensor({batch, length, out}, 5);
  for (auto _ : state) {
    la3::Tape tape;
    Tensor y = la3::ops::linear(x, w);
    if (with_backward) {
      tape.backward(y, upstream);
      x.zero_grad();
      w.zero_grad();
    }
    benchmark::DoNotOptimize(y.data<float>());
  }
  const double gemm_flops = 2.0 * static_cast<double>(batch * length * in * out);
  set_flops(state, with_backward ? 3.0 * gemm_flops : gemm_flops);
}
void BM_LinearForward(benchmark::State& state) { linear_bench(state, false); }
void BM_LinearForwardBackward(benchmark::State& state) { linear_bench(state, true); }
BENCHMARK(BM_LinearForward)->Args({128, 512, 512})->Args({512, 512, 512})->Args({512, 512, 1024})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LinearForwardBackward)->Args({128, 512, 512})->Args({512, 512, 512})->Args({512, 512, 1024})
    ->Unit(benchmark::kMillisecond);

// T5 attention core, batch 8, 6 heads x 64, with the relative-position table and a key
// mask, forward only and forward + backward. FLOPs counted: the four (forward) plus eight
// (backward) L x L x 64 products per head: 4 B H L^2 D forward, 8 B H L^2 D backward.
void attention_bench(benchmark::State& state, bool with_backward, bool causal) {
  const int64_t batch = 8, heads = 6, head_dim = 64, length = state.range(0);
  const Tensor q = random_tensor({batch, length, heads, head_dim}, 6);
  const Tensor k = random_tensor({batch, length, heads, head_dim}, 7);
  const Tensor v = random_tensor({batch, length, heads, head_dim}, 8);
  const Tensor table = random_tensor({32, heads}, 9);
  const Tensor mask = Tensor::full({batch, length}, 1.0, la3::DType::kI32);
  for (const Tensor* t : {&q, &k, &v, &table}) t->set_requires_grad(with_backward);
  const Tensor upstream = random_tensor({batch, length, heads, head_dim}, 10);
  la3::ops::AttentionOptions options;
  options.causal = causal;
  options.bidirectional = !causal;
  for (auto _ : state) {
    la3::Tape tape;
    Tensor out = la3::ops::attention(q, k, v, table, mask, options);
    if (with_backward) {
      tape.backward(out, upstream);
      for (const Tensor* t : {&q, &k, &v, &table}) t->zero_grad();
    }
    benchmark::DoNotOptimize(out.data<float>());
  }
  const double unit = static_cast<double>(batch * heads * length * length * head_dim);
  set_flops(state, with_backward ? 12.0 * unit : 4.0 * unit);
}
void BM_AttentionForward(benchmark::State& state) { attention_bench(state, false, false); }
void BM_AttentionForwardBackward(benchmark::State& state) { attention_bench(state, true, false); }
void BM_CausalAttentionForwardBackward(benchmark::State& state) { attention_bench(state, true, true); }
BENCHMARK(BM_AttentionForward)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionForwardBackward)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CausalAttentionForwardBackward)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

}  // namespace
