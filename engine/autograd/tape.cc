#include "engine/autograd/tape.h"

#include <algorithm>
#include <unordered_map>

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

namespace {

bool is_trainable_leaf(const Tensor& tensor) { return tensor.defined() && tensor.is_leaf() && tensor.requires_grad(); }

}  // namespace

std::vector<Tensor> Tape::leaves_in_ready_order() const {
  // A leaf becomes final when backward replays its first use (replay runs backwards), so the
  // leaf whose first use is latest is ready first.
  std::unordered_map<const void*, size_t> first_use;
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    for (const Tensor& input : nodes_[i].inputs) {
      if (is_trainable_leaf(input) && first_use.emplace(input.identity(), i).second) leaves.push_back(input);
    }
  }
  std::stable_sort(leaves.begin(), leaves.end(), [&](const Tensor& a, const Tensor& b) {
    return first_use.at(a.identity()) > first_use.at(b.identity());
  });
  return leaves;
}

void Tape::backward(const Tensor& root, const Tensor& grad_root, const LeafReadyFn& on_leaf_ready) {
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
    seed = Tensor::full(root.shape(), 1.0, root.dtype(), root.device());
  } else if (seed.shape() != root.shape() || !is_floating(seed.dtype())) {
    // A floating gradient of another type is converted to the root's (accumulate_grad).
    Fail(ErrorKind::kInvalidArgument, "backward: gradient ", seed.describe(), " does not match root ",
         root.describe());
  }
  accumulate_grad(root, seed);

  // Reverse replay. Nodes are destroyed as soon as they are used so saved activations are
  // freed progressively, as in PyTorch.
  NoGradGuard no_grad;  // backward closures call forward kernels; they must not record
  std::vector<Node> nodes = std::move(nodes_);
  nodes_.clear();
  // Uses of each trainable leaf not replayed yet (only tracked when someone listens).
  std::unordered_map<const void*, int> pending_uses;
  if (on_leaf_ready) {
    for (const Node& node : nodes) {
      for (const Tensor& input : node.inputs) {
        if (is_trainable_leaf(input)) ++pending_uses[input.identity()];
      }
    }
  }
  auto release_leaves = [&](const Node& node) {
    if (!on_leaf_ready) return;
    for (const Tensor& input : node.inputs) {
      if (is_trainable_leaf(input) && --pending_uses[input.identity()] == 0) on_leaf_ready(input);
    }
  };
  for (size_t i = nodes.size(); i-- > 0;) {
    Node node = std::move(nodes[i]);
    nodes.pop_back();
    std::vector<Tensor> grads;
    {
      const Tensor grad_output = node.output.grad();
      if (!grad_output.defined()) {  // nothing downstream of the root used this output
        release_leaves(node);
        continue;
      }
      grads = node.backward(grad_output);
    }
    // An intermediate's gradient is consumed once its producer ran; only leaves keep theirs.
    // Dropped before the inputs' gradients are accumulated, so a gradient an op passes straight
    // through (the add of a fused add_rmsnorm, a reshape's view) is referenced by nothing else
    // and its input takes it over without a copy.
    if (!node.output.is_leaf() && !node.output.same(root)) node.output.zero_grad();
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
      accumulate_grad(input, std::move(grads[j]));
    }
    release_leaves(node);
  }
}

NoGradGuard::NoGradGuard() : previous_(recording_disabled) { recording_disabled = true; }

NoGradGuard::~NoGradGuard() { recording_disabled = previous_; }

EnableGradGuard::EnableGradGuard() : previous_(recording_disabled) { recording_disabled = false; }

EnableGradGuard::~EnableGradGuard() { recording_disabled = previous_; }

Tensor checkpoint(std::string op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& leaves,
                  const std::function<Tensor(const std::vector<Tensor>&)>& fn) {
  bool record = false;
  for (const std::vector<Tensor>* list : {&inputs, &leaves}) {
    for (const Tensor& tensor : *list) record = record || should_record({&tensor});
  }
  if (!record) return fn(inputs);
  Tensor out;
  {
    NoGradGuard no_grad;
    out = fn(inputs);
  }
  std::vector<Tensor> node_inputs = inputs;
  node_inputs.insert(node_inputs.end(), leaves.begin(), leaves.end());
  const size_t input_count = inputs.size(), leaf_count = leaves.size();
  record_op(std::move(op), node_inputs, out, [inputs, input_count, leaf_count, fn](const Tensor& dout) {
    std::vector<Tensor> aliases;
    aliases.reserve(input_count);
    for (const Tensor& input : inputs) {
      if (!input.defined() || !input.requires_grad()) {
        aliases.push_back(input);
        continue;
      }
      // A new leaf on the same storage: the replay's graph ends here.
      Tensor alias = (input.is_contiguous() ? input : input.contiguous()).view(input.shape());
      alias.set_requires_grad(true);
      aliases.push_back(alias);
    }
    std::vector<Tensor> grads;
    {
      EnableGradGuard enable;
      Tape replay;
      const Tensor again = fn(aliases);
      if (again.requires_grad()) replay.backward(again, dout.contiguous());
    }
    for (size_t i = 0; i < input_count; ++i) {
      grads.push_back(inputs[i].defined() && inputs[i].requires_grad() ? aliases[i].grad() : Tensor());
    }
    grads.resize(input_count + leaf_count);  // the leaves got theirs during the replay
    return grads;
  });
  return out;
}

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

Tensor leaf_gradient_to_accumulate_into(const Tensor& input) {
  if (!input.defined() || !input.is_leaf() || !input.requires_grad()) return Tensor();
  Tensor grad = input.grad();
  if (!grad.defined() || !grad.is_contiguous() || grad.dtype() != DType::kF32 || grad.device() != input.device() ||
      grad.shape() != input.shape()) {
    return Tensor();
  }
  return grad;
}

void accumulate_grad(const Tensor& tensor, Tensor contribution) {
  // A gradient has its tensor's element type (bf16 activations get bf16 gradients, f32
  // parameters f32 ones, as torch.autocast); an op whose backward produced another type for an
  // input is converted here, once.
  if (contribution.dtype() != tensor.dtype()) contribution = contribution.to(tensor.dtype());
  const Tensor existing = tensor.grad();
  if (!existing.defined()) {
    // The gradient must be private memory: later contributions are added into it. A fresh
    // backward output nobody else references is taken over; anything shared (the same
    // gradient sent to two inputs, a view of another gradient, a caller's tensor) is copied.
    // Skipping that copy saves a read and a write of every activation gradient per step.
    contribution = contribution.contiguous();
    tensor.set_grad(contribution.sole_owner() ? contribution : contribution.clone());
    return;
  }
  const Tensor source = contribution.contiguous();
  backend_for(existing.device()).axpy(existing.numel(), existing.dtype(), 1.0f, source.raw_data(), existing.raw_data());
}

}  // namespace la3
