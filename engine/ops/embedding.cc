#include "engine/ops/embedding.h"

#include "engine/autograd/tape.h"
#include "engine/backend.h"
#include "engine/ops/op_checks.h"

namespace la3::ops {

namespace {

void check_ids(const char* op, const Tensor& ids_in, const Tensor& ids, int64_t vocab) {
  const Tensor host_ids = ids.host_accessible() ? ids : ids.to_device(Device::cpu());
  const int64_t* checked_ids = host_ids.data<int64_t>();
  for (int64_t i = 0; i < host_ids.numel(); ++i) {
    if (checked_ids[i] < 0 || checked_ids[i] >= vocab) {
      Fail(ErrorKind::kOutOfRange, op, ": id ", checked_ids[i], " at position ", i, " of ids ", ids_in.describe(),
           " is outside the table's vocabulary [0, ", vocab, ")");
    }
  }
}

}  // namespace

void check_embedding_ids(const Tensor& ids, int64_t vocab) {
  check_integer("embedding", "ids", ids);
  check_ids("embedding", ids, as_int64(ids), vocab);
}

Tensor embedding(const Tensor& table_in, const Tensor& ids_in, IdCheck check, DType out_dtype) {
  constexpr const char* kOp = "embedding";
  check_f32(kOp, "table", table_in);
  if (!is_floating(out_dtype)) {
    Fail(ErrorKind::kInvalidArgument, kOp, ": the output type must be f32 or bf16, got ", dtype_name(out_dtype));
  }
  const DType act = out_dtype;
  check_rank(kOp, "table", table_in, 2);
  check_integer(kOp, "ids", ids_in);
  check_same_device(kOp, {&table_in, &ids_in});
  const Tensor table = table_in.contiguous();
  const Tensor ids = as_int64(ids_in);
  kernels::EmbeddingParams p;
  p.count = ids.numel();
  p.vocab = table.size(0);
  p.dim = table.size(1);
  // Range check here, once, so every backend can trust the ids (ids on a GPU device are
  // checked on a host copy unless the caller checked them before the upload).
  if (check == IdCheck::kByOp || ids.host_accessible()) check_ids(kOp, ids_in, ids, p.vocab);
  const int64_t* id_data = ids.data<int64_t>();
  Shape out_shape = ids.shape();
  out_shape.push_back(p.dim);
  Tensor out = Tensor::empty(out_shape, act, table.device());
  backend_for(table.device()).embedding_forward(p, act, id_data, table.data<float>(), out.raw_data());
  if (should_record({&table_in})) {
    record_op(kOp, {table_in, ids_in}, out, [p, ids, table, act](const Tensor& dout_in) {
      const Tensor dout = dout_in.to(act).contiguous();
      // The kernel accumulates: straight into the parameter's gradient when it has one (no
      // zeroed [vocab, dim] table and no second pass to add it), else into a zeroed table.
      const Tensor into = leaf_gradient_to_accumulate_into(table);
      const Tensor dtable = into.defined() ? Tensor() : Tensor::zeros_like(table);
      backend_for(table.device()).embedding_backward(p, act, ids.data<int64_t>(), dout.raw_data(),
                                                     (into.defined() ? into : dtable).data<float>());
      return std::vector<Tensor>{dtable, Tensor()};
    });
  }
  return out;
}

}  // namespace la3::ops
