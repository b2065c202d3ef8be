// The weights of a Hugging Face checkpoint directory, in each layout save_pretrained writes
// and the hub serves, looked for in transformers' order of preference:
//
//   model.safetensors                 one safetensors file
//   model.safetensors.index.json      sharded safetensors
//   pytorch_model.bin                 one torch.save zip archive (engine/io/torch_archive.h)
//   pytorch_model.bin.index.json      sharded torch.save archives
//
// An index is {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>"}}. We check what
// transformers trusts: every shard name is a plain file name in the directory (no '/', '\',
// '..': an index must not reach outside it), every shard exists, each tensor is in exactly
// one shard, and that shard is the one the weight map names (no tensor missing, none extra).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tensor.h"

namespace la3 {

struct CheckpointWeights {
  std::map<std::string, Tensor> tensors;     // on the cpu
  std::map<std::string, std::string> files;  // tensor name -> the file it was read from
  std::string path;                          // the weights file, or the index of a sharded set
};

// The weights of `directory` (the first layout present in the order above).
absl::StatusOr<CheckpointWeights> read_checkpoint_weights(const std::string& directory);

// One sharded set; the shard format follows the index's name (model.safetensors.index.json:
// safetensors, anything else ending in .bin.index.json: torch archives).
absl::StatusOr<CheckpointWeights> read_sharded_weights(const std::string& index_path);

}  // namespace la3
