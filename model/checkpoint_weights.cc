#include "model/checkpoint_weights.h"

#include <filesystem>
#include <functional>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/io/file_io.h"
#include "engine/io/json_duplicate_keys.h"
#include "engine/io/safetensors.h"
#include "engine/io/torch_archive.h"

namespace la3 {

namespace {

using ReadWeightsFile = std::function<absl::StatusOr<std::map<std::string, Tensor>>(const std::string&)>;

absl::StatusOr<std::map<std::string, Tensor>> read_safetensors_tensors(const std::string& path) {
  absl::StatusOr<SafetensorsContents> contents = read_safetensors(path);
  if (!contents.ok()) return contents.status();
  return std::move(contents->tensors);
}

CheckpointWeights single_file(const std::string& path, std::map<std::string, Tensor> tensors) {
  CheckpointWeights weights;
  for (const auto& entry : tensors) weights.files[entry.first] = path;
  weights.tensors = std::move(tensors);
  weights.path = path;
  return weights;
}

absl::Status index_error(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// A shard must be a file right in the index's directory.
bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

absl::StatusOr<CheckpointWeights> read_sharded_weights(const std::string& index_path) {
  const bool safetensors = absl::EndsWith(index_path, ".safetensors.index.json");
  const ReadWeightsFile read_shard = safetensors ? ReadWeightsFile(read_safetensors_tensors)
                                                 : ReadWeightsFile(read_torch_archive);
  absl::StatusOr<std::string> text = read_file(index_path);
  if (!text.ok()) return text.status();
  DuplicateKeyGuard guard;
  const nlohmann::json index = nlohmann::json::parse(*text, std::ref(guard), /*allow_exceptions=*/false);
  if (index.is_discarded()) return index_error(index_path, "not valid JSON");
  if (guard.found()) return index_error(index_path, guard.description());
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    return index_error(index_path, "expected a JSON object with a \"weight_map\" object (tensor name -> shard file)");
  }
  std::map<std::string, std::string> shard_of;  // the weight map
  std::set<std::string> shards;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) return index_error(index_path, absl::StrCat("weight_map[\"", name, "\"] is not a file name"));
    const std::string file = shard.get<std::string>();
    if (!plain_file_name(file)) {
      return index_error(index_path, absl::StrCat("weight_map[\"", name, "\"] names shard \"", file,
                                                  "\": a shard must be a plain file name in the checkpoint directory"));
    }
    shard_of[name] = file;
    shards.insert(file);
  }
  if (shards.empty()) return index_error(index_path, "the weight map is empty");

  const std::string directory = std::filesystem::path(index_path).parent_path().string();
  for (const std::string& shard : shards) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(std::filesystem::path(directory) / shard, error)) {
      return absl::NotFoundError(absl::StrCat(index_path, ": shard \"", shard, "\" named by the weight map does not exist in ",
                                              directory.empty() ? "." : directory));
    }
  }
  CheckpointWeights weights;
  weights.path = index_path;
  for (const std::string& shard : shards) {
    const std::string shard_path = (std::filesystem::path(directory) / shard).string();
    absl::StatusOr<std::map<std::string, Tensor>> tensors = read_shard(shard_path);
    if (!tensors.ok()) return tensors.status();
    for (auto& [name, tensor] : *tensors) {
      if (auto seen = weights.files.find(name); seen != weights.files.end()) {
        return index_error(index_path, absl::StrCat("tensor \"", name, "\" is in two shards: ", seen->second, " and ",
                                                    shard_path));
      }
      auto listed = shard_of.find(name);
      if (listed == shard_of.end()) {
        return index_error(index_path, absl::StrCat("shard ", shard_path, " holds tensor \"", name,
                                                    "\", which the weight map does not list"));
      }
      if (listed->second != shard) {
        return index_error(index_path, absl::StrCat("tensor \"", name, "\" is in shard ", shard_path,
                                                    " but the weight map puts it in ", listed->second));
      }
      weights.files[name] = shard_path;
      weights.tensors.emplace(name, std::move(tensor));
    }
  }
  for (const auto& [name, shard] : shard_of) {
    if (!weights.tensors.count(name)) {
      return index_error(index_path, absl::StrCat("the weight map puts tensor \"", name, "\" in shard ", shard,
                                                  ", which does not hold it"));
    }
  }
  return weights;
}

absl::StatusOr<CheckpointWeights> read_checkpoint_weights(const std::string& directory) {
  struct Layout {
    const char* file;
    bool sharded;
    ReadWeightsFile read;
  };
  const Layout layouts[] = {
      {"model.safetensors", false, read_safetensors_tensors},
      {"model.safetensors.index.json", true, nullptr},
      {"pytorch_model.bin", false, read_torch_archive},
      {"pytorch_model.bin.index.json", true, nullptr},
  };
  for (const Layout& layout : layouts) {
    const std::string path = directory + "/" + layout.file;
    std::error_code error;
    if (!std::filesystem::exists(path, error)) continue;
    if (layout.sharded) return read_sharded_weights(path);
    absl::StatusOr<std::map<std::string, Tensor>> tensors = layout.read(path);
    if (!tensors.ok()) return tensors.status();
    return single_file(path, std::move(*tensors));
  }
  return absl::NotFoundError(absl::StrCat(directory, " holds no weights: expected model.safetensors, "
                                          "model.safetensors.index.json, pytorch_model.bin or "
                                          "pytorch_model.bin.index.json"));
}

}  // namespace la3
