// torch.save's file format since torch 1.6 (pytorch_model.bin): a zip archive
//
//   <name>/data.pkl      the pickled state dict (engine/io/torch_pickle.h reads it: no code runs)
//   <name>/data/<key>    one record per storage: its raw little-endian elements
//   <name>/version       (or <name>/.data/version) the format version, an integer
//   <name>/byteorder     "little" (torch >= 2.1 writes it; absent means little)
//
// The zip container itself is read by libzip (consistency checks on, CRCs verified on read).
// Each tensor is a view (offset, sizes, strides) of a storage; tied weights (T5 v1.0's
// shared / embed_tokens / lm_head) are views of one storage and each becomes its own copy.
// Non-contiguous views are gathered element by element. f32 and bf16 load as they are, f16
// widens to f32 exactly, as the safetensors reader does. The legacy pre-1.6 format (a bare
// pickle stream) is refused with a note to re-save it with a newer torch.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tensor.h"

namespace la3 {

// Reads every tensor of the state dict in `path`; errors name the file and the record.
absl::StatusOr<std::map<std::string, Tensor>> read_torch_archive(const std::string& path);

}  // namespace la3
