#include "engine/ops/matmul.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"
#include "engine/ops/reshape.h"

namespace la3::ops {

namespace {

// A row-major matrix stack as GEMM sees it: `batch` matrices of rows x cols, `batch_stride`
// elements apart (0 = one matrix shared by all batch items), of element type `dtype`.
struct MatrixStack {
  const void* data;
  DType dtype;
  int64_t rows, cols, batch_stride;
};

MatrixStack stack_of(const Tensor& t, bool shared) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  return MatrixStack{t.raw_data(), t.dtype(), rows, cols, shared ? 0 : rows * cols};
}

// The tensor's storage as one matrix of `rows` x its last dimension (a batch folded into M).
MatrixStack flat_of(const Tensor& t, int64_t rows) { return MatrixStack{t.raw_data(), t.dtype(), rows, t.size(-1), 0}; }

// Batch item `item` of a contiguous [batch, rows, cols] tensor as one matrix.
MatrixStack item_of(const Tensor& t, int64_t item) {
  const int64_t rows = t.size(-2), cols = t.size(-1);
  const char* base = static_cast<const char*>(t.raw_data());
  return MatrixStack{base + item * rows * cols * static_cast<int64_t>(dtype_size(t.dtype())), t.dtype(), rows, cols, 0};
}

// The element type of a product: bf16 when either operand is a bf16 activation (its GEMM runs
// on bf16 operands whatever the other's type), else f32.
DType product_type(const Tensor& a, const Tensor& b) {
  return a.dtype() == DType::kBF16 || b.dtype() == DType::kBF16 ? DType::kBF16 : DType::kF32;
}

// out[b] (+)= alpha * op(x[b]) op(y[b]) for b < batch; out is contiguous [batch, m, n] of type
// out_type. The operands keep their own types (GemmParams::a_type, b_type).
void run_gemm(Backend& backend, const MatrixStack& x, bool trans_x, const MatrixStack& y, bool trans_y,
              void* out, DType out_type, int64_t batch, float alpha, float beta) {
  kernels::GemmParams p;
  p.trans_a = trans_x;
  p.trans_b = trans_y;
  p.m = trans_x ? x.cols : x.rows;
  p.k = trans_x ? x.rows : x.cols;
  p.n = trans_y ? y.rows : y.cols;
  p.alpha = alpha;
  p.beta = beta;
  p.lda = x.cols;
  p.ldb = y.cols;
  p.ldc = p.n;
  p.batch = batch;
  p.stride_a = x.batch_stride;
  p.stride_b = y.batch_stride;
  p.stride_c = p.m * p.n;
  p.a_type = x.dtype;
  p.b_type = y.dtype;
  p.c_type = out_type;
  backend.gemm(p, x.data, y.data, out);
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, const MatmulOptions& options) {
  constexpr const char* kOp = "matmul";
  // Activations in f32 or bf16 (a weight is an f32 master: beside a bf16 activation it is read
  // through its bf16 copy); the product has the activation type (product_type).
  check_activation(kOp, "a", a_in);
  check_activation(kOp, "b", b_in);
  check_same_device(kOp, {&a_in, &b_in});
  if (a_in.rank() < 2 || b_in.rank() < 2) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": both operands need at least 2 dimensions, got a ",
         a_in.describe(), " and b ", b_in.describe());
  }
  const bool b_shared = b_in.rank() == 2 && a_in.rank() > 2;
  if (!b_shared) {
    const Shape a_lead(a_in.shape().begin(), a_in.shape().end() - 2);
    const Shape b_lead(b_in.shape().begin(), b_in.shape().end() - 2);
    if (a_lead != b_lead) {
      Fail(ErrorKind::kInvalidArgument, kOp, ": batch dimensions differ: a ", a_in.describe(), ", b ",
           b_in.describe());
    }
  }
  const int64_t m = options.trans_a ? a_in.size(-1) : a_in.size(-2);
  const int64_t k_a = options.trans_a ? a_in.size(-2) : a_in.size(-1);
  const int64_t k_b = options.trans_b ? b_in.size(-1) : b_in.size(-2);
  const int64_t n = options.trans_b ? b_in.size(-2) : b_in.size(-1);
  if (k_a != k_b) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": inner dimensions differ (", k_a, " vs ", k_b, "): a ",
         a_in.describe(), (options.trans_a ? " (transposed)" : ""), ", b ", b_in.describe(),
         (options.trans_b ? " (transposed)" : ""));
  }
  const Tensor a = a_in.contiguous();
  const Tensor b = b_in.contiguous();
  const int64_t batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(m);
  out_shape.push_back(n);
  const DType out_type = product_type(a, b);
  Tensor out = Tensor::empty(out_shape, out_type, a.device());
  Backend& backend = backend_for(a.device());

  if (b_shared && !options.trans_a) {
    // A linear layer: fold the batch into M, one GEMM.
    run_gemm(backend, flat_of(a, batch * a.size(-2)), false, stack_of(b, true), options.trans_b, out.raw_data(),
             out_type, 1, options.alpha, 0.0f);
  } else {
    run_gemm(backend, stack_of(a, false), options.trans_a, stack_of(b, b_shared), options.trans_b, out.raw_data(),
             out_type, batch, options.alpha, 0.0f);
  }

  if (should_record({&a_in, &b_in})) {
    const MatmulOptions opt = options;
    const bool need_da = a_in.requires_grad(), need_db = b_in.requires_grad();
    record_op(kOp, {a_in, b_in}, out, [a, b, opt, b_shared, batch, need_da, need_db, out_type](const Tensor& dout_in) {
      // Each gradient has its operand's type: an activation's in the activation type, a
      // weight's (an f32 master) in f32, from bf16 operands with fp32 accumulation.
      const Tensor dout = dout_in.to(out_type).contiguous();
      Backend& bk = backend_for(dout.device());
      Tensor da, db;
      const MatrixStack dc = stack_of(dout, false);
      if (need_da) {
        da = Tensor::empty_like(a);
        if (!opt.trans_a) {
          // dA = alpha dC op(B)^T
          if (b_shared) {
            run_gemm(bk, flat_of(dout, batch * dout.size(-2)), false, stack_of(b, true), !opt.trans_b, da.raw_data(),
                     da.dtype(), 1, opt.alpha, 0.0f);
          } else {
            run_gemm(bk, dc, false, stack_of(b, false), !opt.trans_b, da.raw_data(), da.dtype(), batch, opt.alpha,
                     0.0f);
          }
        } else {
          // A^T = op(A): dA = alpha op(B) dC^T
          run_gemm(bk, stack_of(b, b_shared), opt.trans_b, dc, true, da.raw_data(), da.dtype(), batch, opt.alpha,
                   0.0f);
        }
      }
      // dB (a weight's gradient) goes straight into the parameter's gradient when it has one,
      // by a GEMM with beta = 1: no fresh [out, in] buffer and no second pass to add it.
      const Tensor db_into = need_db ? leaf_gradient_to_accumulate_into(b) : Tensor();
      const float db_beta = db_into.defined() ? 1.0f : 0.0f;
      if (need_db) {
        db = db_into.defined() ? db_into : Tensor::empty_like(b);
        void* db_data = db.raw_data();
        const DType db_type = db.dtype();
        if (b_shared) {
          // The shared matrix collects the sum over the batch.
          if (!opt.trans_a) {
            const MatrixStack a_flat = flat_of(a, batch * a.size(-2));
            const MatrixStack dc_flat = flat_of(dout, batch * dout.size(-2));
            if (!opt.trans_b) {
              run_gemm(bk, a_flat, true, dc_flat, false, db_data, db_type, 1, opt.alpha, db_beta);
            } else {
              run_gemm(bk, dc_flat, true, a_flat, false, db_data, db_type, 1, opt.alpha, db_beta);
            }
          } else {
            for (int64_t item = 0; item < batch; ++item) {
              const MatrixStack a_item = item_of(a, item);
              const MatrixStack dc_item = item_of(dout, item);
              const float beta = item == 0 ? db_beta : 1.0f;
              if (!opt.trans_b) {
                run_gemm(bk, a_item, !opt.trans_a, dc_item, false, db_data, db_type, 1, opt.alpha, beta);
              } else {
                run_gemm(bk, dc_item, true, a_item, opt.trans_a, db_data, db_type, 1, opt.alpha, beta);
              }
            }
            if (batch == 0 && !db_into.defined()) db.fill(0.0);
          }
        } else if (!opt.trans_b) {
          // dB = alpha op(A)^T dC
          run_gemm(bk, stack_of(a, false), !opt.trans_a, dc, false, db_data, db_type, batch, opt.alpha, db_beta);
        } else {
          // B^T = op(B): dB = alpha dC^T op(A)
          run_gemm(bk, dc, true, stack_of(a, false), opt.trans_a, db_data, db_type, batch, opt.alpha, db_beta);
        }
      }
      return std::vector<Tensor>{da, db_into.defined() ? Tensor() : db};
    });
  }
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight) {
  // The weight is an f32 master; x an f32 or bf16 activation (the output has its type).
  check_f32("linear", "weight", weight);
  check_rank("linear", "weight", weight, 2);
  check_activation("linear", "x", x);
  if (x.rank() < 1 || x.size(-1) != weight.size(1)) {
    Fail(ErrorKind::kInvalidArgument, "linear: input ", x.describe(), " does not match weight ",
         weight.describe(), " (expected last dimension ", weight.size(1), ")");
  }
  if (x.rank() == 1) {
    return reshape(matmul(reshape(x, {1, x.size(0)}), weight, {.trans_b = true}), {weight.size(0)});
  }
  return matmul(x, weight, {.trans_b = true});
}

}  // namespace la3::ops
