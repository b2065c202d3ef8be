// safetensors (https://github.com/huggingface/safetensors) reader and writer.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON
//   {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the data region; offsets are relative to its start. We accept F32, BF16, I32, I64
// (and F16/F64, converted to f32 on load, since HF checkpoints are sometimes saved in them)
// and reject everything else with an error that names the file and the tensor: unknown
// dtype, a shape whose byte size does not match its range, ranges outside the data region,
// overlapping ranges, holes, duplicate names, malformed JSON.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tensor.h"

namespace la3 {

struct SafetensorsContents {
  std::map<std::string, Tensor> tensors;  // on the cpu
  std::map<std::string, std::string> metadata;
};

// Reads and validates a whole file.
absl::StatusOr<SafetensorsContents> read_safetensors(const std::string& path);

// Parses an in-memory image of a file; `source` names it in error messages.
absl::StatusOr<SafetensorsContents> parse_safetensors(const std::string& bytes, const std::string& source);

// Serialises tensors (host-accessible, any strides; f32/bf16/i32/i64) in name order, header
// padded to a multiple of 8 bytes as the reference implementation does.
absl::StatusOr<std::string> serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                                  const std::map<std::string, std::string>& metadata = {});

// Writes atomically: to `path`.tmp-<pid>, fsync, then rename over `path`. On failure the
// previous file (if any) is untouched.
absl::Status write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace la3
