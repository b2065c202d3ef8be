// A small reverse-mode autograd tape.
//
// While a Tape is alive it is the active tape of its thread. A differentiable op
// (engine/ops/*) whose inputs require a gradient records a node: its inputs, its output and a
// closure that maps the output gradient to input gradients. The closure captures exactly the
// tensors backward needs (saved activations). Tape::backward() replays the nodes in reverse,
// accumulates gradients into every tensor that requires one (leaves keep theirs; intermediate
// gradients are dropped once consumed), and destroys each node after use, which frees its
// saved activations. Without an active tape, or inside a NoGradGuard, ops record nothing
// (inference).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace la3 {

// Maps the gradient of a node's output to one gradient per input (undefined = none).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

class Tape {
 public:
  Tape();   // becomes this thread's active tape
  ~Tape();  // restores the previously active tape
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // The active tape of this thread, or nullptr.
  static Tape* active();

  void record(std::string op, std::vector<Tensor> inputs, const Tensor& output, BackwardFn backward);

  // Called during backward() once a leaf's gradient is final: the last recorded node that
  // reads the leaf has been replayed (data parallelism starts the leaf's all-reduce then,
  // while backward goes on).
  using LeafReadyFn = std::function<void(const Tensor& leaf)>;

  // Back-propagates from `root`. `grad_root` defaults to 1 for a one-element root and must
  // be given (same shape, any floating type: converted to the root's) otherwise. Consumes the tape: it is empty afterwards.
  void backward(const Tensor& root, const Tensor& grad_root = Tensor(), const LeafReadyFn& on_leaf_ready = nullptr);

  // The leaves requiring a gradient that the recorded nodes read, in the order backward()
  // will make their gradients final (the reverse order of their first use).
  std::vector<Tensor> leaves_in_ready_order() const;

  size_t size() const { return nodes_.size(); }
  void clear() { nodes_.clear(); }

 private:
  struct Node {
    std::string op;
    std::vector<Tensor> inputs;
    Tensor output;
    BackwardFn backward;
  };
  std::vector<Node> nodes_;
  Tape* previous_;
};

// Disables recording on this thread while alive (nestable).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Enables recording on this thread while alive, inside a NoGradGuard (a backward closure that
// recomputes part of the forward on a tape of its own: checkpoint()).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// Activation checkpointing: returns fn(inputs) computed without recording, and records one node
// whose backward runs fn again on fresh leaf aliases of the inputs, on a tape of its own, and
// back-propagates through it. So nothing fn computes stays alive between the forward and the
// backward; the price is running fn twice. fn must compute the same values when run again
// (dropout masks are Philox-keyed, so a replay draws the same ones). `leaves` are the
// parameters fn reads: their gradients accumulate during the replay's backward, and they are
// listed as the node's inputs so the leaf-ready order (data-parallel buckets) still sees them.
// An input's gradient contributions reach it as one sum per input slot, so a caller that needs
// the exact summation order of the unrecomputed graph passes a tensor once per use.
Tensor checkpoint(std::string op, const std::vector<Tensor>& inputs, const std::vector<Tensor>& leaves,
                  const std::function<Tensor(const std::vector<Tensor>&)>& fn);

// True when an op with these inputs must record itself: a tape is active, recording is not
// disabled, and at least one input requires a gradient.
bool should_record(std::initializer_list<const Tensor*> inputs);

// Records `output` as produced by `op` (marks it as requiring a gradient, non-leaf).
void record_op(std::string op, std::vector<Tensor> inputs, const Tensor& output, BackwardFn backward);

// The gradient a backward closure may add its contribution for `input` into directly (a
// kernel that accumulates, or a GEMM with beta = 1), instead of returning a fresh tensor for
// the tape to add: the input's own gradient when the input is a trainable leaf that already
// has one (a parameter's slot in a gradient bucket), dense f32 on the input's device. Undefined
// otherwise. A closure that uses it returns an undefined gradient for that input.
Tensor leaf_gradient_to_accumulate_into(const Tensor& input);

// grad += contribution. Both f32, same shape. The first contribution becomes the gradient:
// taken over as it is when the caller hands over the only reference to its memory (a fresh
// backward output), copied otherwise (it may alias another tensor's gradient or a caller's).
void accumulate_grad(const Tensor& tensor, Tensor contribution);

}  // namespace la3
