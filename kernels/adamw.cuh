// The AdamW update (f32 master weights and moments, optional bf16 copy of the result), in the
// operation order of engine/cpu/adamw_cpu.cc (torch.optim.AdamW's single-tensor path).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/adamw_scalars.h"
#include "kernels/host_device.h"
#include "kernels/bf16.cuh"
#include "kernels/launch.h"
#include "kernels/multi_tensor.cuh"
#include "kernels/op_params.h"
#include "kernels/pointwise.cuh"
#include "kernels/simt/simt.h"

namespace la3::kernels {

// The update of element i of one tensor: the arithmetic of every AdamW kernel, so the
// per-tensor and the multi-tensor launches write the same bits.
__device__ __forceinline__ void adamw_element(const AdamWScalars& s, int64_t i, float* param, const float* grad,
                                              float* exp_avg, float* exp_avg_sq, uint16_t* param_bf16) {
  const float g = mul_rn(grad[i], s.grad_scale);
  float w = param[i] * s.decay;
  const float m = exp_avg[i] + s.avg_weight * (g - exp_avg[i]);
  const float v = exp_avg_sq[i] * s.beta2 + s.sq_weight * g * g;
  const float denom = sqrtf(v) / s.bias_correction2_sqrt + s.eps;
  w += -s.step_size * (m / denom);
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  param[i] = w;
  if (param_bf16 != nullptr) param_bf16[i] = to_bf16_bits(w);
}

// The fp32 master update; when param_bf16 is not null it also receives the updated weight
// rounded to bf16 (the copy the bf16 GEMMs read), in the same pass.
__global__ void adamw_kernel(AdamWScalars s, int64_t count, float* param, const float* grad, float* exp_avg,
                             float* exp_avg_sq, uint16_t* param_bf16) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    adamw_element(s, i, param, grad, exp_avg, exp_avg_sq, param_bf16);
  }
}

// Many tensors in one launch (the optimizer step over every parameter tensor). Passed by value
// as a kernel parameter (about 1.8 KB, under the 4 KB limit); tensor t owns the launch's blocks
// [first_block[t], first_block[t + 1]), as many as its own adamw_kernel launch would have.
constexpr int kAdamWTensorsPerLaunch = 32;
struct AdamWTensorTable {
  int count = 0;  // tensors in this launch
  float* param[kAdamWTensorsPerLaunch] = {};
  const float* grad[kAdamWTensorsPerLaunch] = {};
  float* exp_avg[kAdamWTensorsPerLaunch] = {};
  float* exp_avg_sq[kAdamWTensorsPerLaunch] = {};
  uint16_t* param_bf16[kAdamWTensorsPerLaunch] = {};
  int64_t elements[kAdamWTensorsPerLaunch] = {};
  int64_t first_block[kAdamWTensorsPerLaunch + 1] = {};
};

__global__ void adamw_multi_kernel(AdamWScalars s, AdamWTensorTable table) {
  const int t = table_owner_of_block(table.first_block, table.count, blockIdx.x);
  const int64_t first = table.first_block[t];
  const int64_t stride = (table.first_block[t + 1] - first) * blockDim.x;
  float* param = table.param[t];
  const float* grad = table.grad[t];
  float* exp_avg = table.exp_avg[t];
  float* exp_avg_sq = table.exp_avg_sq[t];
  uint16_t* param_bf16 = table.param_bf16[t];
  const int64_t count = table.elements[t];
  for (int64_t i = (blockIdx.x - first) * blockDim.x + threadIdx.x; i < count; i += stride) {
    adamw_element(s, i, param, grad, exp_avg, exp_avg_sq, param_bf16);
  }
}

// --- launcher (kernels/launch.h) ---------------------------------------------------------------

template <typename Launch>
void launch_adamw(const Launch& launch, const AdamWParams& p, float* param, const float* grad, float* exp_avg,
                  float* exp_avg_sq, uint16_t* param_bf16) {
  launch_pointwise(launch, adamw_kernel, p.count, adamw_scalars(p), p.count, param, grad, exp_avg, exp_avg_sq,
                   param_bf16);
}

// Every tensor of `tensors` updated with the same step p (p.count ignored): empty tensors are
// skipped, the others go kAdamWTensorsPerLaunch to a launch. The tensors must not overlap: the
// blocks of a launch update them concurrently. Returns the launches made.
template <typename Launch>
int64_t launch_adamw_multi(const Launch& launch, const AdamWParams& p, const AdamWTensor* tensors,
                           int64_t tensor_count) {
  const AdamWScalars scalars = adamw_scalars(p);
  int64_t launches = 0;
  AdamWTensorTable table;
  int64_t table_blocks = 0;
  const auto flush = [&] {
    if (table.count == 0) return;
    std::vector<const void*> buffers;
    for (int t = 0; t < table.count; ++t) {
      buffers.insert(buffers.end(), {table.param[t], table.grad[t], table.exp_avg[t], table.exp_avg_sq[t],
                                     table.param_bf16[t]});
    }
    declare_table_buffers(launch, "adamw_multi_kernel", buffers);
    launch(adamw_multi_kernel, dim3(static_cast<unsigned>(table_blocks)), dim3(kPointwiseThreads), 0, scalars, table);
    ++launches;
    table = AdamWTensorTable{};
    table_blocks = 0;
  };
  for (int64_t k = 0; k < tensor_count; ++k) {
    const AdamWTensor& tensor = tensors[k];
    if (tensor.count == 0) continue;
    const int n = table.count;
    table.param[n] = tensor.param;
    table.grad[n] = tensor.grad;
    table.exp_avg[n] = tensor.exp_avg;
    table.exp_avg_sq[n] = tensor.exp_avg_sq;
    table.param_bf16[n] = tensor.param_bf16;
    table.elements[n] = tensor.count;
    table.first_block[n] = table_blocks;
    table_blocks += pointwise_grid(tensor.count).x;
    table.first_block[++table.count] = table_blocks;
    if (table.count == kAdamWTensorsPerLaunch) flush();
  }
  flush();
  return launches;
}

}  // namespace la3::kernels
