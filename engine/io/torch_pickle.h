// The pickle inside a torch.save file (data.pkl), read by a strict interpreter.
//
// Why not "just unpickle": a pickle is a program. Its GLOBAL opcode imports any callable
// (os.system, builtins.eval, subprocess.Popen, ...) and REDUCE calls it, so loading an
// untrusted pytorch_model.bin with a real unpickler runs whatever its author wrote. We never
// import or call anything: this is an interpreter for the small subset of the pickle
// machine that torch.save emits for a state dict, with a whitelist of global names that are
// only *recognised*, never executed:
//
//   collections.OrderedDict            the state dict and the (empty) backward-hook dicts
//   torch._utils._rebuild_tensor_v2    (storage, offset, sizes, strides, requires_grad,
//                                      hooks[, metadata]) -> a tensor record
//   torch._utils._rebuild_parameter    (tensor, requires_grad, hooks) -> the same record
//   torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage
//                                      the storage types of f32/f16/bf16 weights, named in
//                                      the persistent id ("storage", type, key, location, numel)
//
// Any other global is refused at the GLOBAL opcode, before anything could use it; REDUCE
// applies only the callables above, each checking its arguments; opcodes outside the subset
// (INST, OBJ, NEWOBJ, EXT*, PERSID, ...) are refused naming the byte and its offset. The
// input is hostile until proven otherwise: every read is bounds-checked, and the stack, the
// mark stack, the memo, string lengths, the object count and the nesting depth are bounded,
// so arbitrary bytes give an error, never a crash or an unbounded allocation (the entry point
// takes a byte span, independent of files, for fuzzing). Objects live in one arena indexed
// by integers, so reference cycles built through the memo leak nothing and no code recurses
// into a value.
//
// Accepted: protocols 2 (torch.save's default) to 5, i.e. PROTO, FRAME, STOP, MARK, POP,
// POP_MARK, NONE, NEWTRUE, NEWFALSE, BININT, BININT1, BININT2, LONG1, BINFLOAT, BINUNICODE,
// SHORT_BINUNICODE, BINUNICODE8, EMPTY_TUPLE, TUPLE, TUPLE1-3, EMPTY_LIST, APPEND, APPENDS,
// EMPTY_DICT, SETITEM, SETITEMS, GLOBAL, STACK_GLOBAL, BINPUT, LONG_BINPUT, MEMOIZE, BINGET,
// LONG_BINGET, BINPERSID, REDUCE, BUILD (on a dict only: the state dict's _metadata, ignored).
// The pickled object must be a dict or OrderedDict from names to tensors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace la3 {

// The storage element types we accept (the storage's own type, before any conversion).
enum class TorchStorageType : uint8_t { kFloat, kHalf, kBFloat16 };

// "torch.FloatStorage", ...
const char* torch_storage_type_name(TorchStorageType type);
size_t torch_storage_element_size(TorchStorageType type);

// One tensor of the state dict: a strided view of a storage that the archive holds under
// data/<storage_key>. Sizes and strides are in elements; the pickle reader has checked that
// every element the view reaches lies inside the declared storage_numel.
struct TorchTensorRecord {
  std::string name;
  std::string storage_key;
  TorchStorageType storage_type = TorchStorageType::kFloat;
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
};

// Limits that make hostile input cheap to refuse. Real state dicts are far below all of them
// (MolT5-large: ~550 tensors, ~7,000 objects, stack depth < 10, memo < 3,000 entries).
struct TorchPickleLimits {
  size_t max_stack = 100'000;
  size_t max_marks = 256;
  size_t max_memo_index = 1u << 20;
  size_t max_string_bytes = 1u << 20;
  size_t max_objects = 1u << 20;  // ~150 MB of arena at most
  int max_depth = 64;       // nesting of containers
  int max_dimensions = 16;  // of one tensor
};

// Interprets `bytes` (a data.pkl); `source` names it in errors ("<file> (archive/data.pkl)").
// Errors read "<source>: byte <offset>: <what>", naming the refused global as module.name or
// the refused opcode as its byte value.
absl::StatusOr<std::vector<TorchTensorRecord>> parse_torch_pickle(std::string_view bytes, const std::string& source,
                                                                 const TorchPickleLimits& limits = {});

}  // namespace la3
