#include "bench/cudnn_attention.h"

#include <cudnn.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace la3::bench {
namespace {

void check(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS) {
    throw std::runtime_error(std::string(call) + ": " + cudnnGetErrorString(status));
  }
}
void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(call) + ": " + cudaGetErrorString(status));
}
#define LA3_CUDNN(call) check((call), #call)

}  // namespace

struct CudnnAttention::State {
  CudnnAttentionShape shape;
  cudnnHandle_t handle = nullptr;
  cudnnAttnDescriptor_t attn = nullptr;
  cudnnSeqDataDescriptor_t q_desc = nullptr, kv_desc = nullptr;
  std::vector<int> lo_window, hi_window;  // host arrays, one entry per query position
  int* seq_q = nullptr;                   // device, batch x heads entries
  int* seq_kv = nullptr;
  void* workspace = nullptr;
  void* reserve = nullptr;
  size_t workspace_bytes = 0, reserve_bytes = 0;

  ~State() {
    cudaFree(reserve);
    cudaFree(workspace);
    cudaFree(seq_kv);
    cudaFree(seq_q);
    if (kv_desc != nullptr) cudnnDestroySeqDataDescriptor(kv_desc);
    if (q_desc != nullptr) cudnnDestroySeqDataDescriptor(q_desc);
    if (attn != nullptr) cudnnDestroyAttnDescriptor(attn);
    if (handle != nullptr) cudnnDestroy(handle);
  }
};

namespace {

// [batch, len, heads, head_dim] in memory = cuDNN axes (batch, time, beam, vect), outermost first.
void set_sequence(cudnnSeqDataDescriptor_t desc, const CudnnAttentionShape& s, int len) {
  int dims[CUDNN_SEQDATA_DIM_COUNT];
  dims[CUDNN_SEQDATA_TIME_DIM] = len;
  dims[CUDNN_SEQDATA_BATCH_DIM] = s.batch;
  dims[CUDNN_SEQDATA_BEAM_DIM] = s.heads;
  dims[CUDNN_SEQDATA_VECT_DIM] = s.head_dim;
  const cudnnSeqDataAxis_t axes[CUDNN_SEQDATA_DIM_COUNT] = {CUDNN_SEQDATA_BATCH_DIM, CUDNN_SEQDATA_TIME_DIM,
                                                            CUDNN_SEQDATA_BEAM_DIM, CUDNN_SEQDATA_VECT_DIM};
  const std::vector<int> lengths(static_cast<size_t>(s.batch) * static_cast<size_t>(s.heads), len);
  LA3_CUDNN(cudnnSetSeqDataDescriptor(desc, CUDNN_DATA_FLOAT, CUDNN_SEQDATA_DIM_COUNT, dims, axes, lengths.size(),
                                      lengths.data(), nullptr));
}

int* device_lengths(const CudnnAttentionShape& s, int len) {
  const std::vector<int> lengths(static_cast<size_t>(s.batch) * static_cast<size_t>(s.heads), len);
  int* device = nullptr;
  check(cudaMalloc(reinterpret_cast<void**>(&device), lengths.size() * sizeof(int)), "cudaMalloc");
  check(cudaMemcpy(device, lengths.data(), lengths.size() * sizeof(int), cudaMemcpyHostToDevice), "cudaMemcpy");
  return device;
}

}  // namespace

CudnnAttention::CudnnAttention(const CudnnAttentionShape& shape, cudaStream_t stream)
    : state_(std::make_unique<State>()) {
  State& st = *state_;
  st.shape = shape;
  LA3_CUDNN(cudnnCreate(&st.handle));
  LA3_CUDNN(cudnnSetStream(st.handle, stream));
  LA3_CUDNN(cudnnCreateAttnDescriptor(&st.attn));
  // One head of head_dim per beam entry; projections (sizes 0) and their biases disabled.
  LA3_CUDNN(cudnnSetAttnDescriptor(st.attn, CUDNN_ATTN_QUERYMAP_ONE_TO_ONE | CUDNN_ATTN_DISABLE_PROJ_BIASES,
                                   /*nHeads=*/1, /*smScaler=*/1.0, CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT,
                                   CUDNN_DEFAULT_MATH, nullptr, nullptr, shape.head_dim, shape.head_dim,
                                   shape.head_dim, 0, 0, 0, 0, shape.q_len, shape.k_len, shape.batch, shape.heads));
  size_t weight_bytes = 0;
  LA3_CUDNN(cudnnGetMultiHeadAttnBuffers(st.handle, st.attn, &weight_bytes, &st.workspace_bytes, &st.reserve_bytes));
  if (weight_bytes != 0) throw std::runtime_error("cuDNN attention: projections are disabled but weights are requested");
  LA3_CUDNN(cudnnCreateSeqDataDescriptor(&st.q_desc));
  LA3_CUDNN(cudnnCreateSeqDataDescriptor(&st.kv_desc));
  set_sequence(st.q_desc, shape, shape.q_len);
  set_sequence(st.kv_desc, shape, shape.k_len);
  st.seq_q = device_lengths(shape, shape.q_len);
  st.seq_kv = device_lengths(shape, shape.k_len);
  // Query t sees keys [lo, hi): all of them, or 0..t when causal.
  st.lo_window.assign(static_cast<size_t>(shape.q_len), 0);
  st.hi_window.resize(static_cast<size_t>(shape.q_len));
  for (int t = 0; t < shape.q_len; ++t) st.hi_window[static_cast<size_t>(t)] = shape.causal ? t + 1 : shape.k_len;
  if (st.workspace_bytes > 0) check(cudaMalloc(&st.workspace, st.workspace_bytes), "cudaMalloc workspace");
  if (st.reserve_bytes > 0) check(cudaMalloc(&st.reserve, st.reserve_bytes), "cudaMalloc reserve");
}

CudnnAttention::~CudnnAttention() = default;

void CudnnAttention::forward(const float* q, const float* k, const float* v, float* out) {
  State& st = *state_;
  // currIdx -1: training mode, every query position at once, reserve space kept for backward.
  LA3_CUDNN(cudnnMultiHeadAttnForward(st.handle, st.attn, -1, st.lo_window.data(), st.hi_window.data(), st.seq_q,
                                      st.seq_kv, st.q_desc, q, nullptr, st.kv_desc, k, st.kv_desc, v, st.q_desc, out, 0,
                                      nullptr, st.workspace_bytes, st.workspace, st.reserve_bytes, st.reserve));
}

void CudnnAttention::backward(const float* dout, const float* q, const float* k, const float* v, float* dq, float* dk,
                              float* dv) {
  State& st = *state_;
  LA3_CUDNN(cudnnMultiHeadAttnBackwardData(st.handle, st.attn, st.lo_window.data(), st.hi_window.data(), st.seq_q,
                                           st.seq_kv, st.q_desc, dout, st.q_desc, dq, q, st.kv_desc, dk, k, st.kv_desc,
                                           dv, v, 0, nullptr, st.workspace_bytes, st.workspace, st.reserve_bytes,
                                           st.reserve));
}

std::string CudnnAttention::version() {
  const size_t v = cudnnGetVersion();
  return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
}

}  // namespace la3::bench
