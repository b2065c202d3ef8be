// Every backend kernel method checked across backends, as ggml's test-backend-ops does: one
// table of cases, each run through the Backend interface on `cpu` (the reference), on
// `cuda-emu` (the CUDA kernels under the SIMT emulation) and on `cuda` when a GPU is present,
// with the same inputs. Each written buffer is compared with the CPU's by the normalised error
// NMSE = sum((x - ref)^2) / sum(ref^2) against the case's tolerance, and must be free of NaN
// and inf. Buffers a method overwrites start as NaN on every backend, so a kernel that skips
// an element fails the NaN check instead of passing with stale memory; buffers a method
// accumulates into start from the same random values everywhere.
//
// Activation types: an op that takes `DType act` (engine/backend_ops.h) has its activation
// buffers declared with ain/aout/aacc, and the table holds its case twice: as written (f32
// everywhere) and as "<name>_bf16act", where the CUDA backends run with bf16 activations and the
// CPU reference runs in f32 on the same values (every floating input rounded to bf16 first, so
// both start from identical numbers). A bf16 output carries one rounding to 8 significant bits
// (relative error up to 2^-9, NMSE ~1.3e-6 for uniform inputs); kBf16Activations allows that with
// a margin, and anything a kernel gets wrong (an index, a missing term) is orders above it.
//
// The per-op suites (tests/engine) check the CPU backend against double references and finite
// differences; this table is what makes every other backend answer to the CPU one.
//
// Timing mode: LA3_OP_TIMING=<repetitions> also times each case on each backend after the
// check and prints microseconds per call (a device synchronisation closes each timed run):
//   LA3_OP_TIMING=20 build/tests/la3_simt_tests --gtest_filter='*BackendOps*'
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/decoding_params.h"
#include "engine/cuda/cuda_devices.h"
#include "engine/tensor.h"

namespace la3 {
namespace {

using kernels::AdamWParams;
using kernels::BinaryParams;
using kernels::CaptionLossMode;
using kernels::CaptionLossParams;
using kernels::CrossEntropyParams;
using kernels::DropoutParams;
using kernels::EmbeddingParams;
using kernels::GemmParams;
using kernels::RmsNormParams;
using kernels::SoftmaxParams;

// What a buffer is to the method under test.
enum class Role {
  kInput,       // read only; not compared
  kOutput,      // overwritten: starts as NaN, compared
  kAccumulate,  // read and updated: starts from the given values, compared
  kState,       // written by one method and read by the next of the same case (saved state a
                // backend may lay out its own way, e.g. attention's); not compared
};

struct Buffer {
  std::string name;
  Role role;
  Tensor host;  // initial values (ignored for kOutput beyond shape and dtype)
  // An activation buffer has the case's activation type on the backend under test (bf16 in a
  // "_bf16act" case) instead of host's dtype.
  bool activation = false;
};

// The buffers of one case on one backend, by name.
class Buffers {
 public:
  // act: the activation type this backend runs the case with; round_inputs: round every
  // floating initial value to bf16 (a "_bf16act" case, on every backend).
  Buffers(const std::vector<Buffer>& buffers, Device device, DType act, bool round_inputs) : act_(act) {
    for (const Buffer& b : buffers) {
      Tensor initial = b.host;
      if (round_inputs && initial.dtype() == DType::kF32) initial = initial.to(DType::kBF16).to(DType::kF32);
      if (b.role == Role::kOutput || b.role == Role::kState) {
        initial = Tensor::full(b.host.shape(), std::numeric_limits<double>::quiet_NaN(), b.host.dtype());
        if (!is_floating(b.host.dtype())) initial = Tensor::full(b.host.shape(), -7, b.host.dtype());
      }
      // A fresh copy on every backend, the CPU included: the case's initial values must not
      // be updated by the run that reads them.
      Tensor copy = Tensor::empty(b.host.shape(), b.activation ? act : b.host.dtype(), device);
      copy.copy_from(initial);
      tensors_.emplace(b.name, copy);
    }
  }
  // The activation type of this run and an activation buffer's memory (of that type).
  DType act() const { return act_; }
  void* v(const std::string& name) const { return at(name).raw_data(); }
  float* f(const std::string& name) const { return at(name).data<float>(); }
  uint16_t* bf(const std::string& name) const { return bf16_bits(at(name)); }
  int64_t* i64(const std::string& name) const { return at(name).data<int64_t>(); }
  int32_t* i32(const std::string& name) const { return at(name).data<int32_t>(); }
  const Tensor& at(const std::string& name) const {
    auto found = tensors_.find(name);
    if (found == tensors_.end()) throw std::runtime_error("case has no buffer \"" + name + "\"");
    return found->second;
  }

 private:
  DType act_;
  std::map<std::string, Tensor> tensors_;
};

struct OpCase {
  std::string name;
  std::vector<Buffer> buffers;
  double max_nmse;
  // Runs the method(s) under test; scalar results a method returns (sum_of_squares) go to
  // `scalars` and are compared like a buffer.
  std::function<void(Backend&, const Buffers&, std::vector<double>& scalars)> run;
  // Runs the case with fp32 GEMM operands on every backend (default): the CPU is fp32 only,
  // so a bf16 GEMM is compared at a bf16 tolerance in its own case.
  GemmPrecision precision = GemmPrecision::kFp32;
  // Outputs may hold -inf/+inf (a banned token's score): their positions must then match the
  // CPU's exactly and the finite elements are compared; NaN is never allowed.
  bool allow_infinite = false;
  // The activation type on the backends under test (the CPU reference always runs f32);
  // with_bf16_twins sets it for the "_bf16act" copies.
  DType act = DType::kF32;
  // The tolerance of the "_bf16act" copy (0: kBf16Activations).
  double bf16_max_nmse = 0.0;
};

// gtest prints a failing parameter with this (the name, not the bytes of the struct).
void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name; }

// ---- inputs ------------------------------------------------------------------------------

Tensor uniform(const Shape& shape, uint32_t seed, float low = -1.0f, float high = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(low, high);
  Tensor t = Tensor::empty(shape, DType::kF32);
  float* data = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) data[i] = dist(rng);
  return t;
}

Tensor like(const Shape& shape, DType dtype = DType::kF32) { return Tensor::zeros(shape, dtype); }

Tensor ids(const Shape& shape, int64_t vocab, uint32_t seed, int64_t ignore_every = 0) {
  std::mt19937 rng(seed);
  Tensor t = Tensor::empty(shape, DType::kI64);
  int64_t* data = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    data[i] = ignore_every > 0 && i % ignore_every == ignore_every - 1 ? -100 : static_cast<int64_t>(rng() % vocab);
  }
  return t;
}

Tensor bf16_of(const Tensor& f32) { return f32.to(DType::kBF16); }

Buffer in(std::string name, Tensor t) { return {std::move(name), Role::kInput, std::move(t)}; }
// Activation buffers (of the case's activation type; see the top of this file).
Buffer ain(std::string name, Tensor t) { return {std::move(name), Role::kInput, std::move(t), true}; }
Buffer aout(std::string name, const Shape& shape) { return {std::move(name), Role::kOutput, Tensor::zeros(shape), true}; }
Buffer aacc(std::string name, Tensor t) { return {std::move(name), Role::kAccumulate, std::move(t), true}; }
Buffer out(std::string name, const Shape& shape, DType dtype = DType::kF32) {
  return {std::move(name), Role::kOutput, like(shape, dtype)};
}
Buffer acc(std::string name, Tensor t) { return {std::move(name), Role::kAccumulate, std::move(t)}; }
Buffer state(std::string name, const Shape& shape, DType dtype = DType::kF32) {
  return {std::move(name), Role::kState, like(shape, dtype)};
}
// Saved state that is an activation (a forward's output its backward reads).
Buffer astate(std::string name, const Shape& shape) { return {std::move(name), Role::kState, Tensor::zeros(shape), true}; }

constexpr double kExact = 1e-12;  // same arithmetic up to summation order
constexpr double kTranscendental = 1e-10;  // tanh/exp/log implementations differ in the last bits
// bf16 activations against the fp32 CPU on the same (bf16-representable) inputs: one rounding
// of each stored value, NMSE ~1.3e-6, with a margin for outputs computed from rounded
// intermediates (a backward reading its forward's bf16 output).
constexpr double kBf16Activations = 1e-5;

// ---- the table ---------------------------------------------------------------------------

std::vector<OpCase> gemm_cases() {
  std::vector<OpCase> cases;
  struct G {
    const char* name;
    bool ta, tb;
    int64_t m, n, k, batch;
    float alpha, beta;
  };
  for (const G& g : {G{"gemm_nn_37x29x53", false, false, 37, 29, 53, 1, 1.0f, 0.0f},
                     G{"gemm_nt_64x96x40_beta", false, true, 64, 96, 40, 1, 0.5f, 1.0f},
                     G{"gemm_tn_batched_3x16x24x8", true, false, 16, 24, 8, 3, 1.0f, 0.0f},
                     // k = 0: C = beta C, nothing to multiply (with a bf16 operand, a scale of C).
                     G{"gemm_nn_empty_sum_2x5x7x0_beta", false, false, 5, 7, 0, 2, 1.0f, 0.5f}}) {
    GemmParams p;
    p.trans_a = g.ta;
    p.trans_b = g.tb;
    p.m = g.m;
    p.n = g.n;
    p.k = g.k;
    p.alpha = g.alpha;
    p.beta = g.beta;
    p.lda = g.ta ? g.m : g.k;
    p.ldb = g.tb ? g.k : g.n;
    p.ldc = g.n;
    p.batch = g.batch;
    p.stride_a = g.m * g.k;
    p.stride_b = g.k * g.n;
    p.stride_c = g.m * g.n;
    // The operand types are those of the buffers on the backend under test (f32 on the CPU
    // reference; in a "_bf16act" twin, bf16 for the activation buffers).
    auto run = [p](Backend& be, const Buffers& b, std::vector<double>&) {
      GemmParams typed = p;
      typed.a_type = b.at("a").dtype();
      typed.b_type = b.at("b").dtype();
      typed.c_type = b.at("c").dtype();
      be.gemm(typed, b.v("a"), b.v("b"), b.v("c"));
    };
    const Shape a_shape{g.batch * g.m * g.k}, b_shape{g.batch * g.k * g.n}, c_shape{g.batch * g.m * g.n};
    for (GemmPrecision precision : {GemmPrecision::kFp32, GemmPrecision::kBf16}) {
      const bool bf16 = precision == GemmPrecision::kBf16;
      // The f32-activation case has bf16 A, B and C in its "_bf16act" twin: the CPU stand-in of
      // cuda-emu computes the same fp32 sums of the same (rounded) operands, so the twin's error is
      // C's one rounding to bf16 (kBf16Activations); on a GPU the tensor cores' summation order
      // adds ~1e-13.
      OpCase c{std::string(g.name) + (bf16 ? "_bf16" : ""),
               {bf16 ? in("a", uniform(a_shape, 1)) : ain("a", uniform(a_shape, 1)),
                bf16 ? in("b", uniform(b_shape, 2)) : ain("b", uniform(b_shape, 2)),
                bf16 ? acc("c", uniform(c_shape, 3)) : aacc("c", uniform(c_shape, 3))},
               // bf16 operands: each carries a relative error up to 2^-9 against the fp32 CPU.
               bf16 ? 5e-5 : kExact, run, precision};
      if (g.beta == 0.0f) c.buffers[2] = bf16 ? out("c", c_shape) : aout("c", c_shape);
      cases.push_back(std::move(c));
    }
    // Per-operand types (their "_bf16act" twins): bf16 A and B with an f32 C (a weight gradient;
    // the same fp32 sums as the CPU on the same values, kExact), and a bf16 activation A times an
    // f32 weight B read through its bf16 copy or cast (exact here: B's values are bf16-rounded
    // in the twin) into a bf16 C (one rounding, kBf16Activations).
    OpCase f32_c{std::string(g.name) + "_f32c", {ain("a", uniform(a_shape, 1)), ain("b", uniform(b_shape, 2)),
                                                 acc("c", uniform(c_shape, 3))},
                 kExact, run};
    f32_c.bf16_max_nmse = kExact;
    if (g.beta == 0.0f) f32_c.buffers[2] = out("c", c_shape);
    cases.push_back(std::move(f32_c));
    OpCase f32_weight{std::string(g.name) + "_f32b", {ain("a", uniform(a_shape, 1)), in("b", uniform(b_shape, 2)),
                                                      aacc("c", uniform(c_shape, 3))},
                      kExact, run};
    if (g.beta == 0.0f) f32_weight.buffers[2] = aout("c", c_shape);
    cases.push_back(std::move(f32_weight));
  }
  return cases;
}

std::vector<OpCase> elementwise_cases() {
  std::vector<OpCase> cases;
  const int64_t n = 6007, period = 1001;  // b broadcast over 6 rows of `period`
  const BinaryParams same{n, n}, broadcast{6 * period, period};
  cases.push_back({"add_forward_broadcast",
                   {ain("a", uniform({6 * period}, 4)), ain("b", uniform({period}, 5)), aout("out", {6 * period})},
                   kExact, [broadcast](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.add_forward(broadcast, b.act(), b.v("a"), b.v("b"), b.v("out"));
                   }});
  cases.push_back({"add_backward_broadcast",
                   {ain("dout", uniform({6 * period}, 6)), aout("da", {6 * period}), aacc("db", uniform({period}, 7))},
                   kExact, [broadcast](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.add_backward(broadcast, b.act(), b.v("dout"), b.v("da"), b.v("db"));
                   }});
  cases.push_back({"mul_forward", {ain("a", uniform({n}, 8)), ain("b", uniform({n}, 9)), aout("out", {n})}, kExact,
                   [same](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.mul_forward(same, b.act(), b.v("a"), b.v("b"), b.v("out"));
                   }});
  cases.push_back({"mul_backward_broadcast",
                   {ain("dout", uniform({6 * period}, 10)), ain("a", uniform({6 * period}, 11)),
                    ain("b", uniform({period}, 12)), aout("da", {6 * period}), aacc("db", uniform({period}, 13))},
                   kExact, [broadcast](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.mul_backward(broadcast, b.act(), b.v("dout"), b.v("a"), b.v("b"), b.v("da"), b.v("db"));
                   }});
  // Wider than one clamped grid (1,024 blocks x 256 threads): every column of db is written.
  const int64_t wide = 300000;
  const BinaryParams wide_rows{2 * wide, wide};
  cases.push_back({"add_backward_wide_broadcast",
                   {ain("dout", uniform({2 * wide}, 30)), aout("da", {2 * wide}), aacc("db", uniform({wide}, 31))},
                   kExact, [wide_rows](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.add_backward(wide_rows, b.act(), b.v("dout"), b.v("da"), b.v("db"));
                   }});
  cases.push_back({"scale", {ain("x", uniform({n}, 14)), aout("out", {n})}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) { be.scale(n, b.act(), -0.37f, b.v("x"), b.v("out")); }});
  cases.push_back({"axpy", {ain("x", uniform({n}, 15)), aacc("y", uniform({n}, 16))}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) { be.axpy(n, b.act(), 1.5f, b.v("x"), b.v("y")); }});
  cases.push_back({"fill", {aout("out", {n})}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) { be.fill(n, b.act(), 0.25f, b.v("out")); }});
  cases.push_back({"sum_of_squares", {in("x", uniform({n}, 17))}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>& s) { s.push_back(be.sum_of_squares(n, b.f("x"))); }});
  cases.push_back({"sum_of_squares_spans", {in("x", uniform({n}, 18)), in("y", uniform({333}, 19))}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>& s) {
                     s.push_back(be.sum_of_squares(std::vector<Backend::Span>{{b.f("x"), n}, {b.f("y"), 333}}));
                   }});
  cases.push_back({"sum_to_scalar", {in("x", uniform({n}, 20)), out("out", {1})}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) { be.sum_to_scalar(n, b.f("x"), 0.125, b.f("out")); }});
  cases.push_back({"scale_by_device_scalar", {in("s", uniform({1}, 21)), aacc("x", uniform({n}, 22))}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.scale_by_device_scalar(n, b.act(), b.f("s"), b.v("x"));
                   }});
  // Conversion is exact arithmetic (round to nearest even, or widening): bit-identical everywhere.
  cases.push_back({"convert_f32_to_bf16", {in("x", uniform({n}, 23, -100.0f, 100.0f)), out("out", {n}, DType::kBF16)}, 0.0,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.convert(n, DType::kF32, b.v("x"), DType::kBF16, b.v("out"));
                   }});
  cases.push_back({"convert_bf16_to_f32", {in("x", bf16_of(uniform({n}, 24, -100.0f, 100.0f))), out("out", {n})}, 0.0,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.convert(n, DType::kBF16, b.v("x"), DType::kF32, b.v("out"));
                   }});
  return cases;
}

std::vector<OpCase> activation_cases() {
  std::vector<OpCase> cases;
  const int64_t n = 4099;
  cases.push_back({"relu_forward", {ain("x", uniform({n}, 30)), aout("out", {n})}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.relu_forward(n, b.act(), b.v("x"), b.v("out"));
                   }});
  cases.push_back({"relu_backward", {ain("dout", uniform({n}, 31)), ain("x", uniform({n}, 32)), aout("dx", {n})}, kExact,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.relu_backward(n, b.act(), b.v("dout"), b.v("x"), b.v("dx"));
                   }});
  cases.push_back({"gelu_new_forward", {ain("x", uniform({n}, 33, -5.0f, 5.0f)), aout("out", {n})}, kTranscendental,
                   [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.gelu_new_forward(n, b.act(), b.v("x"), b.v("out"));
                   }});
  cases.push_back({"gelu_new_backward",
                   {ain("dout", uniform({n}, 34)), ain("x", uniform({n}, 35, -5.0f, 5.0f)), aout("dx", {n})},
                   kTranscendental, [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.gelu_new_backward(n, b.act(), b.v("dout"), b.v("x"), b.v("dx"));
                   }});
  cases.push_back({"gated_gelu_forward",
                   {ain("gate", uniform({n}, 36, -5.0f, 5.0f)), ain("linear", uniform({n}, 37)), aout("out", {n})},
                   kTranscendental, [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.gated_gelu_forward(n, b.act(), b.v("gate"), b.v("linear"), b.v("out"));
                   }});
  cases.push_back({"gated_gelu_backward",
                   {ain("dout", uniform({n}, 38)), ain("gate", uniform({n}, 39, -5.0f, 5.0f)), ain("linear", uniform({n}, 40)),
                    aout("dgate", {n}), aout("dlinear", {n})},
                   kTranscendental, [n](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.gated_gelu_backward(n, b.act(), b.v("dout"), b.v("gate"), b.v("linear"), b.v("dgate"),
                                            b.v("dlinear"));
                   }});
  return cases;
}

std::vector<OpCase> norm_cases() {
  std::vector<OpCase> cases;
  for (int64_t cols : {13, 512}) {  // an odd width, and MolT5's d_model
    const int64_t rows = 67;
    const RmsNormParams p{rows, cols, 1e-6f};
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    // The "_bf16act" twins are the bf16 RMSNorm (x, sum, out, dout, dx in bf16; weight, rstd
    // and dweight f32): inputs exactly representable, outputs rounded once (one ulp apart at
    // most where the fp32 statistics differ in the last bit).
    cases.push_back({"rmsnorm_forward_" + shape,
                     {ain("x", uniform({rows, cols}, 50)), in("w", uniform({cols}, 51, 0.5f, 1.5f)),
                      aout("out", {rows, cols}), out("rstd", {rows})},
                     kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.rmsnorm_forward(p, b.act(), b.v("x"), b.f("w"), b.v("out"), b.f("rstd"));
                     }});
    cases.push_back({"rmsnorm_backward_" + shape,
                     {ain("x", uniform({rows, cols}, 52)), in("w", uniform({cols}, 53, 0.5f, 1.5f)),
                      ain("dout", uniform({rows, cols}, 54)), astate("out", {rows, cols}), state("rstd", {rows}),
                      aout("dx", {rows, cols}), acc("dw", uniform({cols}, 55))},
                     kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.rmsnorm_forward(p, b.act(), b.v("x"), b.f("w"), b.v("out"), b.f("rstd"));
                       be.rmsnorm_backward(p, b.act(), b.v("dout"), b.v("x"), b.f("w"), b.f("rstd"), b.v("dx"),
                                           b.f("dw"));
                     }});
    cases.push_back({"add_rmsnorm_forward_" + shape,
                     {ain("residual", uniform({rows, cols}, 56)), ain("branch", uniform({rows, cols}, 57)),
                      in("w", uniform({cols}, 58, 0.5f, 1.5f)), aout("sum", {rows, cols}), aout("out", {rows, cols}),
                      out("rstd", {rows})},
                     kTranscendental,
                     [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.add_rmsnorm_forward(p, b.act(), b.v("residual"), b.v("branch"), b.f("w"), b.v("sum"),
                                              b.v("out"), b.f("rstd"));
                     },
                     GemmPrecision::kFp32, false, DType::kF32,
                     // Two roundings in bf16: the sum is rounded before it is normalised (the
                     // CPU reference normalises the exact f32 sum), then out (NMSE ~6e-6).
                     2e-5});
  }
  for (int64_t cols : {1, 37, 1000}) {
    const int64_t rows = 19;
    const SoftmaxParams p{rows, cols};
    const std::string shape = std::to_string(rows) + "x" + std::to_string(cols);
    cases.push_back({"softmax_forward_" + shape,
                     {ain("x", uniform({rows, cols}, 70, -20.0f, 20.0f)), aout("out", {rows, cols})}, kTranscendental,
                     [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.softmax_forward(p, b.act(), b.v("x"), b.v("out"));
                     }});
    cases.push_back({"softmax_backward_" + shape,
                     {ain("x", uniform({rows, cols}, 71, -20.0f, 20.0f)), ain("dout", uniform({rows, cols}, 72)),
                      astate("out", {rows, cols}), aout("dx", {rows, cols})},
                     kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.softmax_forward(p, b.act(), b.v("x"), b.v("out"));
                       be.softmax_backward(p, b.act(), b.v("dout"), b.v("out"), b.v("dx"));
                     }});
  }
  return cases;
}

std::vector<OpCase> embedding_dropout_loss_cases() {
  std::vector<OpCase> cases;
  const EmbeddingParams e{45, 101, 24};
  cases.push_back({"embedding_forward",
                   {in("ids", ids({45}, 101, 80)), in("table", uniform({101, 24}, 81)), aout("out", {45, 24})}, kExact,
                   [e](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.embedding_forward(e, b.act(), b.i64("ids"), b.f("table"), b.v("out"));
                   }});
  // Repeated ids: several rows add into one table row (atomics on CUDA).
  cases.push_back({"embedding_backward_repeated_ids",
                   {in("ids", ids({45}, 7, 82)), ain("dout", uniform({45, 24}, 83)), acc("dtable", uniform({101, 24}, 84))},
                   1e-12, [e](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.embedding_backward(e, b.act(), b.i64("ids"), b.v("dout"), b.f("dtable"));
                   }});
  DropoutParams d;
  d.p = 0.1f;
  d.seed = 42;
  d.step = 3;
  d.stream = 9;
  d.row_offset = 5;
  d.positions = 7;
  d.width = 33;
  cases.push_back({"dropout_forward", {ain("x", uniform({4, 7, 33}, 85)), aout("out", {4, 7, 33})}, kExact,
                   [d](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.dropout_forward(d, 4 * 7 * 33, b.act(), b.v("x"), b.v("out"));
                   }});
  const CrossEntropyParams ce{23, 1031, -100};
  cases.push_back({"cross_entropy_forward",
                   {ain("logits", uniform({23, 1031}, 86, -8.0f, 8.0f)), in("labels", ids({23}, 1031, 87, 5)),
                    out("loss", {23}), out("lse", {23})},
                   kTranscendental, [ce](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.cross_entropy_forward(ce, b.act(), b.v("logits"), b.i64("labels"), b.f("loss"), b.f("lse"));
                   }});
  cases.push_back({"cross_entropy_backward",
                   {ain("logits", uniform({23, 1031}, 88, -8.0f, 8.0f)), in("labels", ids({23}, 1031, 89, 5)),
                    in("weight", uniform({23}, 90, 0.0f, 1.0f)), state("loss", {23}), state("lse", {23}),
                    aout("dlogits", {23, 1031})},
                   kTranscendental, [ce](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.cross_entropy_forward(ce, b.act(), b.v("logits"), b.i64("labels"), b.f("loss"), b.f("lse"));
                     be.cross_entropy_backward(ce, b.act(), b.v("logits"), b.i64("labels"), b.f("lse"), b.f("weight"),
                                               b.v("dlogits"));
                   }});
  // The k+1-caption loss: 3 molecules with 3, 1 and 2 captions, every mode.
  const int64_t rows = 6, length = 9, vocab = 257;
  const Tensor group = Tensor::from_vector<int64_t>({rows}, {0, 0, 0, 1, 2, 2});
  for (CaptionLossMode mode : {CaptionLossMode::kMean, CaptionLossMode::kTokenMixture, CaptionLossMode::kSequenceMixture}) {
    CaptionLossParams p;
    p.rows = rows;
    p.length = length;
    p.vocab = vocab;
    p.groups = 3;
    p.max_group_rows = 3;
    p.mode = mode;
    const std::string m = mode == CaptionLossMode::kMean ? "mean" : mode == CaptionLossMode::kTokenMixture ? "token_mixture"
                                                                                                          : "sequence_mixture";
    std::vector<Buffer> buffers = {ain("logits", uniform({rows, length, vocab}, 91, -6.0f, 6.0f)),
                                   in("labels", ids({rows, length}, vocab, 92, 4)),
                                   in("group", group),
                                   in("upstream", uniform({1}, 93, 0.5f, 2.0f)),
                                   out("log_prob", {rows, length}),
                                   out("lse", {rows, length}),
                                   out("token_weight", {rows, length}),
                                   out("loss", {1}),
                                   out("inverse_tokens", {1}),
                                   aout("dlogits", {rows, length, vocab})};
    // The "_bf16act" twins: log p, lse, the weights and the loss are fp32 from the same
    // (rounded) logits; dlogits carry one bf16 rounding each. Their norm is dominated by the
    // label entries, ~ -coef with one coef shared by many tokens (mode mean: every token), so
    // the roundings are correlated instead of averaging out: up to (2^-8)^2 = 1.5e-5 relative
    // squared, hence 2e-5 rather than kBf16Activations (measured 9.0e-6 for mode mean, 1.2e-6 to
    // 1.8e-6 for the others).
    constexpr double kBf16Dlogits = 2e-5;
    cases.push_back({"caption_loss_" + m, buffers, kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                       be.caption_loss_log_probs(p, b.act(), b.v("logits"), b.i64("labels"), b.f("log_prob"), b.f("lse"));
                       be.caption_loss_combine(p, b.f("log_prob"), b.i64("labels"), b.i64("group"), b.f("token_weight"),
                                               b.f("loss"), b.f("inverse_tokens"));
                       be.caption_loss_backward(p, b.act(), b.v("logits"), b.i64("labels"), b.f("lse"), b.f("token_weight"),
                                                b.f("upstream"), b.f("inverse_tokens"), b.v("dlogits"));
                     }});
    cases.back().bf16_max_nmse = kBf16Dlogits;
    if (mode == CaptionLossMode::kMean) {
      std::vector<Buffer> fused = {buffers[0], buffers[1], out("log_prob", {rows, length}), out("inverse_tokens", {1}),
                                   aout("dlogits", {rows, length, vocab})};
      cases.push_back({"caption_loss_mean_fused", fused, kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                         be.caption_loss_mean_fused(p, b.act(), b.v("logits"), b.i64("labels"), b.f("log_prob"),
                                                    b.f("inverse_tokens"), b.v("dlogits"));
                       }});
      cases.back().bf16_max_nmse = kBf16Dlogits;
    }
  }
  return cases;
}

std::vector<OpCase> optimizer_cases() {
  std::vector<OpCase> cases;
  AdamWParams p;
  p.count = 5003;
  p.lr = 3e-3;
  p.weight_decay = 0.01;
  p.step = 7;
  p.grad_scale = 0.37f;  // a clipping coefficient, read with each gradient
  cases.push_back({"adamw_step_with_bf16_copy",
                   {acc("param", uniform({p.count}, 100)), in("grad", uniform({p.count}, 101)),
                    acc("exp_avg", uniform({p.count}, 102, -0.1f, 0.1f)), acc("exp_avg_sq", uniform({p.count}, 103, 0.0f, 0.01f)),
                    out("param_bf16", {p.count}, DType::kBF16)},
                   kTranscendental, [p](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.adamw_step(p, b.f("param"), b.f("grad"), b.f("exp_avg"), b.f("exp_avg_sq"), b.bf("param_bf16"));
                   }});
  // Three tensors in one call: sizes across block boundaries, the middle one without a bf16 copy.
  const std::vector<int64_t> sizes = {5003, 257, 1};
  std::vector<Buffer> buffers;
  for (size_t k = 0; k < sizes.size(); ++k) {
    const std::string t = std::to_string(k);
    const auto seed = static_cast<uint32_t>(110 + 10 * k);
    buffers.push_back(acc("param" + t, uniform({sizes[k]}, seed)));
    buffers.push_back(in("grad" + t, uniform({sizes[k]}, seed + 1)));
    buffers.push_back(acc("exp_avg" + t, uniform({sizes[k]}, seed + 2, -0.1f, 0.1f)));
    buffers.push_back(acc("exp_avg_sq" + t, uniform({sizes[k]}, seed + 3, 0.0f, 0.01f)));
    if (k != 1) buffers.push_back(out("param_bf16" + t, {sizes[k]}, DType::kBF16));
  }
  cases.push_back({"adamw_step_multi_three_tensors", buffers, kTranscendental,
                   [p, sizes](Backend& be, const Buffers& b, std::vector<double>&) {
                     std::vector<kernels::AdamWTensor> tensors;
                     for (size_t k = 0; k < sizes.size(); ++k) {
                       const std::string t = std::to_string(k);
                       tensors.push_back({b.f("param" + t), b.f("grad" + t), b.f("exp_avg" + t), b.f("exp_avg_sq" + t),
                                          k != 1 ? b.bf("param_bf16" + t) : nullptr, sizes[k]});
                     }
                     be.adamw_step_multi(p, tensors.data(), static_cast<int64_t>(tensors.size()));
                   }});
  return cases;
}

Tensor key_mask_flags(int64_t batch, int64_t k_len) {
  // Row 0 attends to everything; row 1 has its last third padded.
  Tensor t = Tensor::empty({batch, k_len}, DType::kI32);
  int32_t* data = t.data<int32_t>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < k_len; ++j) data[b * k_len + j] = b % 2 == 1 && j >= 2 * k_len / 3 ? 0 : 1;
  }
  return t;
}

std::vector<OpCase> attention_cases() {
  std::vector<OpCase> cases;
  struct A {
    const char* name;
    int64_t q_len, k_len;
    bool causal, bias, mask, dropout;
    int64_t query_offset;
  };
  // Encoder self-attention (bias, padding), decoder self-attention (causal), cross-attention
  // with dropout, and one decoding step over a longer cache (causal with a query offset).
  for (const A& a : {A{"encoder_self", 37, 37, false, true, true, false, 0},
                     A{"decoder_self_causal", 33, 33, true, true, false, false, 0},
                     A{"cross_dropout", 21, 45, false, false, true, true, 0},
                     A{"decoding_step", 1, 40, true, true, false, false, 17}}) {
    kernels::AttentionParams p;
    p.batch = 2;
    p.heads = 3;
    p.q_len = a.q_len;
    p.k_len = a.k_len;
    p.head_dim = 16;
    p.causal = a.causal;
    p.query_offset = a.query_offset;
    p.has_bias = a.bias;
    p.bidirectional = !a.causal;
    p.num_buckets = 8;
    p.max_distance = 20;
    p.has_key_mask = a.mask;
    if (a.dropout) {
      p.dropout.p = 0.1f;
      p.dropout.seed = 5;
      p.dropout.stream = 2;
    }
    const Shape q_shape{p.batch, p.q_len, p.heads, p.head_dim}, kv_shape{p.batch, p.k_len, p.heads, p.head_dim};
    // q, k, v, out, dout and the q/k/v gradients are activations (bf16 in the twins); the
    // bias table, its gradient and the saved state stay f32.
    std::vector<Buffer> inputs = {ain("q", uniform(q_shape, 110)), ain("k", uniform(kv_shape, 111)),
                                  ain("v", uniform(kv_shape, 112)), in("bias", uniform({8, p.heads}, 113)),
                                  in("mask", key_mask_flags(p.batch, p.k_len))};
    // The saved state is the backend's own (attention_saved_elements): allocated per backend
    // inside the run, never compared.
    auto forward = [p](Backend& be, const Buffers& b, Tensor& saved) {
      saved = Tensor::empty({std::max<int64_t>(be.attention_saved_elements(p), 1)}, DType::kF32, be.device());
      be.attention_forward(p, b.act(), b.v("q"), b.v("k"), b.v("v"), p.has_bias ? b.f("bias") : nullptr,
                           p.has_key_mask ? b.i32("mask") : nullptr, b.v("out"), saved.data<float>());
    };
    std::vector<Buffer> f = inputs;
    f.push_back(aout("out", q_shape));
    cases.push_back({std::string("attention_forward_") + a.name, f, kTranscendental,
                     [forward](Backend& be, const Buffers& b, std::vector<double>&) {
                       Tensor saved;
                       forward(be, b, saved);
                     }});
    std::vector<Buffer> bw = inputs;
    bw.push_back(Buffer{"out", Role::kState, like(q_shape), true});  // the forward's output, of type act
    bw.push_back(ain("dout", uniform(q_shape, 114)));
    bw.push_back(aout("dq", q_shape));
    bw.push_back(aout("dk", kv_shape));
    bw.push_back(aout("dv", kv_shape));
    if (a.bias) bw.push_back(acc("dbias", uniform({8, p.heads}, 115)));
    cases.push_back({std::string("attention_backward_") + a.name, bw, 1e-9,
                     [forward, p](Backend& be, const Buffers& b, std::vector<double>&) {
                       Tensor saved;
                       forward(be, b, saved);
                       be.attention_backward(p, b.act(), b.v("dout"), b.v("q"), b.v("k"), b.v("v"), b.v("out"),
                                             p.has_bias ? b.f("bias") : nullptr, p.has_key_mask ? b.i32("mask") : nullptr,
                                             saved.data<float>(), b.v("dq"), b.v("dk"), b.v("dv"),
                                             p.has_bias ? b.f("dbias") : nullptr);
                     }});
    // bf16: the backward reads the forward's bf16 output for D = rowsum(dout * out), whose
    // rounding (2^-9 relative per element) enters dS = P (dP - D) where dP - D cancels, so dq, dk
    // and dbias carry ~2-5x the NMSE of one rounding (4e-6 to 7e-6 measured here, 1.3e-5 for
    // dbias at head_dim 64 in attention_kernel_test); dv (P^T dout) is one rounding.
    cases.back().bf16_max_nmse = 3e-5;
  }
  return cases;
}

std::vector<OpCase> decoding_cases() {
  std::vector<OpCase> cases;
  const kernels::CacheWriteParams w{6, 24, 24 * 10, 24 * 3};  // position 3 of a 10-position cache
  // The cache write and the reorder move values: their bf16 twins are exact too (the inputs are
  // bf16-representable), so they carry kExact as their bf16 tolerance.
  OpCase write{"cache_write", {ain("src", uniform({6, 24}, 120)), aacc("cache", uniform({6, 10, 24}, 121))}, kExact,
               [w](Backend& be, const Buffers& b, std::vector<double>&) { be.cache_write(w, b.act(), b.v("src"), b.v("cache")); }};
  write.bf16_max_nmse = kExact;
  cases.push_back(std::move(write));
  // 2 segments (keys, values) of 2 inputs x 3 beams; rows move within their input's beams.
  const kernels::RowReorderParams r{2, 6, 3, 40, 6 * 40, 32};
  OpCase reorder{"reorder_rows_in_place",
                 {in("source", Tensor::from_vector<int64_t>({6}, {2, 2, 0, 3, 5, 4})), aacc("data", uniform({2, 6, 40}, 122))},
                 kExact, [r](Backend& be, const Buffers& b, std::vector<double>&) {
                   be.reorder_rows(r, b.act(), b.i64("source"), b.v("data"));
                 }};
  reorder.bf16_max_nmse = kExact;
  cases.push_back(std::move(reorder));
  const int64_t rows = 4, vocab = 300, history = 7;
  Tensor history_ids = ids({rows, history}, 20, 123);  // small ids: repeats and n-grams to ban
  for (bool beam : {false, true}) {
    kernels::LogitsProcessParams p;
    p.rows = rows;
    p.vocab = vocab;
    p.history_len = history;
    p.eos = 1;
    p.ban_eos = 1;
    p.log_softmax = beam ? 1 : 0;
    p.no_repeat_ngram = 2;
    p.repetition_penalty = 1.3f;
    p.temperature = beam ? 1.0 : 0.7;
    OpCase c{beam ? "process_logits_beam" : "process_logits_sampling",
             {ain("logits", uniform({rows, vocab}, 124, -5.0f, 5.0f)), in("history", history_ids),
              in("beam_scores", uniform({rows}, 125, -3.0f, 0.0f)), out("processed", {rows, vocab}),
              out("log_probs", {rows, vocab})},
             kTranscendental,
             [p, beam](Backend& be, const Buffers& b, std::vector<double>&) {
               be.process_logits(p, b.act(), b.v("logits"), b.i64("history"), beam ? b.f("beam_scores") : nullptr,
                                 b.f("processed"), b.f("log_probs"));
             }};
    c.allow_infinite = true;
    // bf16 logits, f32 scores: the same fp32 arithmetic on the same (rounded) values as the CPU.
    c.bf16_max_nmse = kTranscendental;
    cases.push_back(std::move(c));
  }
  const kernels::TopKParams k{5, 777, 6};
  cases.push_back({"top_k_with_companion",
                   {in("scores", uniform({5, 777}, 126)), in("companion", uniform({5, 777}, 127)), out("indices", {5, 6}, DType::kI64),
                    out("values", {5, 6}), out("companion_values", {5, 6})},
                   0.0, [k](Backend& be, const Buffers& b, std::vector<double>&) {
                     be.top_k(k, b.f("scores"), b.f("companion"), b.i64("indices"), b.f("values"), b.f("companion_values"));
                   }});
  return cases;
}

bool has_activations(const OpCase& c) {
  return std::any_of(c.buffers.begin(), c.buffers.end(), [](const Buffer& b) { return b.activation; });
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  for (auto family : {gemm_cases, elementwise_cases, activation_cases, norm_cases, attention_cases,
                      embedding_dropout_loss_cases, optimizer_cases, decoding_cases}) {
    for (OpCase& c : family()) {
      // The bf16-activation twin of every case with activation buffers.
      if (has_activations(c)) {
        OpCase twin = c;
        twin.name += "_bf16act";
        twin.act = DType::kBF16;
        twin.max_nmse = c.bf16_max_nmse > 0.0 ? c.bf16_max_nmse : kBf16Activations;
        cases.push_back(std::move(c));
        cases.push_back(std::move(twin));
      } else {
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// ---- running a case ------------------------------------------------------------------------

struct Result {
  std::map<std::string, std::vector<double>> buffers;  // compared buffers, as doubles
  std::vector<double> scalars;
};

std::vector<double> as_doubles(const Tensor& device_tensor) {
  const Tensor host = device_tensor.to_device(Device::cpu());
  std::vector<double> values(static_cast<size_t>(host.numel()));
  if (host.dtype() == DType::kBF16) {
    const bf16* data = host.data<bf16>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = bf16_to_float(data[i]);
  } else if (host.dtype() == DType::kI64) {
    const int64_t* data = host.data<int64_t>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(data[i]);
  } else {
    const float* data = host.data<float>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = data[i];
  }
  return values;
}

// The CPU is the f32 reference of every case; the other backends run with the case's type.
DType act_on(const OpCase& c, const Backend& backend) {
  return backend.device().type == DeviceType::kCpu ? DType::kF32 : c.act;
}

Result run_case(const OpCase& c, Backend& backend) {
  const GemmPrecision saved = backend.gemm_precision();
  backend.set_gemm_precision(c.precision);
  Buffers buffers(c.buffers, backend.device(), act_on(c, backend), c.act == DType::kBF16);
  Result result;
  c.run(backend, buffers, result.scalars);
  backend.synchronize();
  backend.set_gemm_precision(saved);
  for (const Buffer& b : c.buffers) {
    if (b.role == Role::kOutput || b.role == Role::kAccumulate) result.buffers[b.name] = as_doubles(buffers.at(b.name));
  }
  return result;
}

double nmse(const std::vector<double>& x, const std::vector<double>& ref) {
  double error = 0.0, norm = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(ref[i]) || std::isinf(x[i])) {
      // An infinity must be the same one in the same place: anything else is an infinite error.
      if (x[i] != ref[i]) return std::numeric_limits<double>::infinity();
      continue;
    }
    error += (x[i] - ref[i]) * (x[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0.0 ? error / norm : error;
}

// The first non-finite element (with allow_infinite: the first NaN), or -1.
int64_t first_non_finite(const std::vector<double>& x, bool allow_infinite = false) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || (!allow_infinite && std::isinf(x[i]))) return static_cast<int64_t>(i);
  }
  return -1;
}

double time_case_us(const OpCase& c, Backend& backend, int repetitions) {
  const GemmPrecision saved = backend.gemm_precision();
  backend.set_gemm_precision(c.precision);
  Buffers buffers(c.buffers, backend.device(), act_on(c, backend), c.act == DType::kBF16);
  std::vector<double> scalars;
  c.run(backend, buffers, scalars);  // warm-up (caches, allocator, first-touch)
  backend.synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < repetitions; ++i) c.run(backend, buffers, scalars);
  backend.synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  backend.set_gemm_precision(saved);
  return seconds * 1e6 / repetitions;
}

// The backends besides the CPU reference: cuda-emu always, cuda when a GPU answers.
std::vector<Backend*> backends_under_test() {
  register_cuda_emu_backend();
  std::vector<Backend*> backends = {&backend_for(Device{DeviceType::kCudaEmu, 0})};
  std::string why_not;
  if (try_register_cuda_backend(&why_not)) backends.push_back(&backend_for(Device{DeviceType::kCuda, 0}));
  return backends;
}

class BackendOps : public ::testing::TestWithParam<OpCase> {};

TEST_P(BackendOps, MatchesTheCpuBackend) {
  const OpCase& c = GetParam();
  Backend& cpu = backend_for(Device::cpu());
  const Result reference = run_case(c, cpu);
  for (const auto& [name, values] : reference.buffers) {
    ASSERT_EQ(first_non_finite(values, c.allow_infinite), -1) << c.name << ": the CPU reference wrote a non-finite " << name;
  }
  for (Backend* backend : backends_under_test()) {
    const Result result = run_case(c, *backend);
    for (const auto& [name, values] : reference.buffers) {
      const std::vector<double>& got = result.buffers.at(name);
      const int64_t bad = first_non_finite(got, c.allow_infinite);
      EXPECT_EQ(bad, -1) << c.name << " on " << backend->name() << ": " << name << "[" << bad
                         << "] is not finite (an element the kernel did not write starts as NaN)";
      if (bad != -1) continue;
      const double error = nmse(got, values);
      std::printf("[backend-ops] %-40s %-9s %-14s nmse %.2e (max %.0e)\n", c.name.c_str(), backend->name().c_str(),
                  name.c_str(), error, c.max_nmse);
      EXPECT_LE(error, c.max_nmse) << c.name << " on " << backend->name() << ": " << name;
    }
    ASSERT_EQ(result.scalars.size(), reference.scalars.size());
    EXPECT_LE(nmse(result.scalars, reference.scalars), c.max_nmse) << c.name << " on " << backend->name() << ": scalars";
  }
  if (const char* timing = std::getenv("LA3_OP_TIMING"); timing != nullptr && std::atoi(timing) > 0) {
    const int repetitions = std::atoi(timing);
    std::printf("[backend-ops timing] %-40s %-9s %10.1f us\n", c.name.c_str(), cpu.name().c_str(),
                time_case_us(c, cpu, repetitions));
    for (Backend* backend : backends_under_test()) {
      std::printf("[backend-ops timing] %-40s %-9s %10.1f us\n", c.name.c_str(), backend->name().c_str(),
                  time_case_us(c, *backend, repetitions));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, BackendOps, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<OpCase>& test) { return test.param.name; });

// Every method of the op list (engine/backend_ops.h) has a case named after it, or is named
// here with the cases that call it: adding an op without a case fails this test.
TEST(BackendOpsHarness, EveryOpOfTheListHasACase) {
  const std::map<std::string, std::string> called_within = {
      {"attention_saved_elements", "attention_forward_encoder_self"},
      {"caption_loss_log_probs", "caption_loss_mean"},
      {"caption_loss_combine", "caption_loss_token_mixture"},
      {"caption_loss_backward", "caption_loss_sequence_mixture"},
      {"add_rmsnorm_forward", "add_rmsnorm_forward_67x13"},
      {"gemm", "gemm_nn_37x29x53"},
      {"convert", "convert_f32_to_bf16"},
  };
  std::vector<std::string> names;
  for (const OpCase& c : all_cases()) names.push_back(c.name);
  const std::vector<std::string> ops = {
#define LA3_BACKEND_OP(return_type, name, parameters) #name,
#include "engine/backend_ops.h"
  };
  EXPECT_GT(ops.size(), 35u);
  for (const std::string& op : ops) {
    auto within = called_within.find(op);
    const std::string wanted = within != called_within.end() ? within->second : op;
    bool found = false;
    for (const std::string& name : names) found = found || name.rfind(wanted, 0) == 0;
    EXPECT_TRUE(found) << "no case in the backend op table calls " << op;
  }
}

// Every op that takes an activation type has a bf16-activation case ("every op in bf16").
TEST(BackendOpsHarness, EveryActivationOpHasABf16Case) {
  const std::map<std::string, std::string> called_within = {
      {"caption_loss_log_probs", "caption_loss_mean"},
      {"caption_loss_backward", "caption_loss_sequence_mixture"},
      {"add_rmsnorm_forward", "add_rmsnorm_forward_67x13"},
      {"gemm", "gemm_nn_37x29x53"},
  };
  std::vector<std::string> bf16_cases;
  for (const OpCase& c : all_cases()) {
    if (c.act == DType::kBF16) bf16_cases.push_back(c.name);
  }
  const std::vector<std::pair<std::string, std::string>> ops = {
#define LA3_BACKEND_OP(return_type, name, parameters) {#name, #parameters},
#include "engine/backend_ops.h"
  };
  int with_act = 0;
  for (const auto& [op, parameters] : ops) {
    if (parameters.find("DType act") == std::string::npos) continue;
    ++with_act;
    auto within = called_within.find(op);
    const std::string wanted = within != called_within.end() ? within->second : op;
    bool found = false;
    for (const std::string& name : bf16_cases) found = found || name.rfind(wanted, 0) == 0;
    EXPECT_TRUE(found) << "no bf16-activation case in the backend op table calls " << op;
  }
  EXPECT_GE(with_act, 7);
  // gemm takes its operand types in GemmParams (a_type, b_type, c_type), not as `DType act`:
  // its bf16 cases are the twins of the per-operand cases (bf16 A, B and C; f32 C; f32 B).
  for (const std::string wanted : {"gemm_nn_37x29x53_bf16act", "gemm_nn_37x29x53_f32c_bf16act",
                                   "gemm_nn_37x29x53_f32b_bf16act"}) {
    EXPECT_NE(std::find(bf16_cases.begin(), bf16_cases.end(), wanted), bf16_cases.end())
        << "no bf16 GEMM case " << wanted << " in the backend op table";
  }
}

// The table is not vacuous: a wrong kernel result, or an element left unwritten, fails it.
TEST(BackendOpsHarness, DetectsAWrongAndAnUnwrittenElement) {
  const std::vector<double> ref = {1.0, 2.0, 3.0};
  EXPECT_EQ(nmse(ref, ref), 0.0);
  EXPECT_GT(nmse({1.0, 2.0, 3.001}, ref), 1e-8);
  // An overwritten buffer starts as NaN on the device: a method that writes nothing leaves it so.
  register_cuda_emu_backend();
  Backend& emu = backend_for(Device{DeviceType::kCudaEmu, 0});
  OpCase untouched{"untouched", {out("out", {5})}, kExact, [](Backend&, const Buffers&, std::vector<double>&) {}};
  const Result result = run_case(untouched, emu);
  EXPECT_EQ(first_non_finite(result.buffers.at("out")), 0);
}

}  // namespace
}  // namespace la3
