#include "engine/autograd/tape.h"

#include "engine/backend.h"

namespace la3 {

namespace {
thread_local Tape* active_tape = nullptr;
thread_local bool recording_disabled = false;
}  // namespace

Tape::Tape() : previous_(active_tape) { active_tape = this; }

Tape::~Tape() { active_tape = previous_; }

Tape* Tape::active() { return active_tape; }

void Tape::record(std::string op, std::vector<Tensor> inputs, const Tensor& output, BackwardFn backward) {
  nodes_.push_back(Node{std::move(op), std::move(inputs), output, std::move(backward)});
}

void Tape::backward(const Tensor& root, const Tensor& grad_root) {
  if (!root.defined()) Fail(ErrorKind::kInvalidArgument, "backward: the root tensor is undefined");
  if (!root.requires_grad()) {
    Fail(ErrorKind::kInvalidArgument, "backward: root ", root.describe(),
         " does not require a gradient (no recorded op produced it)");
  }
  Tensor seed = grad_root;
  if (!seed.defined()) {
    if (root.numel() != 1) {
      Fail(ErrorKind::kInvalidArgument, "backward: root ", root.describe(),
           " has more than one element; pass its gradient explicitly");
    }
    seed = Tensor::full(root.shape(), 1.0, DType::kF32, root.device());
  } else if (seed.shape() != root.shape() || seed.dtype() != DType::kF32) {
    Fail(ErrorKind::kInvalidArgument, "backward: gradient ", seed.describe(), " does not match root ",
         root.describe());
  }
  accumulate_grad(root, seed);

  // Reverse replay. Nodes are destroyed as soon as they are used so saved activations are
  // freed progressively, as in PyTorch.
  NoGradGuard no_grad;  // backward closures call forward kernels; they must not record
  std::vector<Node> nodes = std::move(nodes_);
  nodes_.clear();
  for (size_t i = nodes.size(); i-- > 0;) {
    Node node = std::move(nodes[i]);
    nodes.pop_back();
    const Tensor grad_output = node.output.grad();
    if (!grad_output.defined()) continue;  // nothing downstream of the root used this output
    std::vector<Tensor> grads = node.backward(grad_output);
    if (grads.size() != node.inputs.size()) {
      Fail(ErrorKind::kInternal, "backward of ", node.op, " returned ", grads.size(),
           " gradients for ", node.inputs.size(), " inputs");
    }
    for (size_t j = 0; j < grads.size(); ++j) {
      const Tensor& input = node.inputs[j];
      if (!grads[j].defined() || !input.requires_grad()) continue;
      if (grads[j].shape() != input.shape()) {
        Fail(ErrorKind::kInternal, "backward of ", node.op, ": gradient ", grads[j].describe(),
             " for input ", j, " ", input.describe());
      }
      accumulate_grad(input, grads[j]);
    }
    // An intermediate's gradient is consumed once its producer ran; only leaves keep theirs.
    if (!node.output.is_leaf() && !node.output.same(root)) node.output.zero_grad();
  }
}

NoGradGuard::NoGradGuard() : previous_(recording_disabled) { recording_disabled = true; }

NoGradGuard::~NoGradGuard() { recording_disabled = previous_; }

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (active_tape == nullptr || recording_disabled) return false;
  for (const Tensor* input : inputs) {
    if (input != nullptr && input->defined() && input->requires_grad()) return true;
  }
  return false;
}

void record_op(std::string op, std::vector<Tensor> inputs, const Tensor& output, BackwardFn backward) {
  output.mark_as_op_output();
  active_tape->record(std::move(op), std::move(inputs), output, std::move(backward));
}

void accumulate_grad(const Tensor& tensor, const Tensor& contribution) {
  const Tensor existing = tensor.grad();
  if (!existing.defined()) {
    // Own a private copy: the contribution may alias another tensor's gradient.
    tensor.set_grad(contribution.contiguous().clone());
    return;
  }
  const Tensor source = contribution.contiguous();
  backend_for(existing.device()).axpy(existing.numel(), 1.0f, source.data<float>(), existing.data<float>());
}

}  // namespace la3
